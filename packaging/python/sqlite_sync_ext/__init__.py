"""sqlite_sync_ext: the sqlite-sync SQLite extension (offline sync through bundle files) for Python.

    import sqlean, sqlite_sync_ext        # or sqlite3, apsw, pysqlite3.dbapi2
    conn = sqlean.connect("app.db")
    sqlite_sync_ext.load(conn)
    conn.execute("SELECT sync_init()")
"""
import os
import sys

__all__ = ["loadable_path", "load", "ExtensionLoadingUnsupported"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_SUFFIX = {"win32": ".dll", "cygwin": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


class ExtensionLoadingUnsupported(RuntimeError):
    """The connection's sqlite3 module was built without extension loading."""


def loadable_path():
    """Full path of the bundled library (sync0.so/.dylib/.dll). SQLite derives the entry point
    sqlite3_sync_init from the name; the path without its suffix loads as well."""
    return os.path.join(_HERE, "sync0" + _SUFFIX)


def load(conn):
    """Loads the extension into `conn`: a connection of the stdlib sqlite3, sqlean.py, pysqlite3
    or apsw. Extension loading is switched on for the load only (SQL load_extension() stays off)."""
    path = loadable_path()
    if type(conn).__module__.split(".")[0] == "apsw":
        # apsw: load_extension(filename, entrypoint=None); the entry point comes from the name
        conn.enable_load_extension(True)
        try:
            conn.load_extension(path)
        finally:
            conn.enable_load_extension(False)
        return
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None or not hasattr(conn, "load_extension"):
        raise ExtensionLoadingUnsupported(
            "%s.%s cannot load SQLite extensions: this Python's sqlite3 module was built without "
            "extension loading (common with pyenv and the macOS system Python). Use "
            "`pip install sqlean.py` (import sqlean as sqlite3) or `pip install apsw`, or a Python "
            "built with --enable-loadable-sqlite-extensions."
            % (type(conn).__module__, type(conn).__name__))
    enable(True)
    try:
        conn.load_extension(path)
    finally:
        enable(False)
