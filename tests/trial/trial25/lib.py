# tiny helpers shared by the repro scripts (apsw and the library EXT names; WORK: where the
# devices' files go)
import os, sys, json, shutil, apsw
DIR = os.path.join(os.environ.get("WORK", "/tmp/t25"), "run-" + os.path.basename(sys.argv[0]).replace(".py", ""))
shutil.rmtree(DIR, ignore_errors=True); os.makedirs(DIR)
MODE = {"compact": None, "auto": None}
def P(l): return os.path.join(DIR, l + ".db")
class C:
    """An apsw connection with the extension loaded (or not), as the scripts use it."""
    def __init__(s, path, ext):
        s.c = apsw.Connection(path)
        if ext:
            s.c.enable_load_extension(True)
            s.c.load_extension(os.environ.get("EXT", "dist/sync0"))
    def execute(s, sql, params=()): return s.c.execute(sql, params)
    def close(s): s.c.close()
def conn(l, ext=True):
    return C(P(l), ext)
def new(l):
    db = conn(l); db.execute("SELECT sync_init()"); db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")
    db.execute("SELECT sync_enable('t')")
    if MODE["auto"] is not None:
        db.execute("INSERT OR REPLACE INTO _sync_state(name, value) VALUES ('compact_every', ?)", (MODE["auto"],))
    db.close()
def write(l, sql, ext=True):
    db = conn(l, ext); db.execute(sql); db.close()
def devid(l):
    db = conn(l); r = db.execute("SELECT sync_device_id()").fetchone()[0]; db.close(); return r
def sync(src, dst, full=False):
    peer = None if full else devid(dst)
    s = conn(src); b = s.execute("SELECT sync_bundle_out(?)", (peer,)).fetchone()[0]; s.close()
    d = conn(dst)
    try:
        r = json.loads(d.execute("SELECT sync_bundle_in(?)", (b,)).fetchone()[0])
        if MODE["compact"] == "explicit": d.execute("SELECT sync_compact()").fetchone()
        return r
    except Exception as e:
        print(f"  import {src}->{dst} ERROR: {e}"); return None
    finally: d.close()
def cp(src_path, dst_path): shutil.copyfile(src_path, dst_path)
def everyone(labels, rounds=3):
    for r in range(rounds):
        pairs = [(a, b) for a in labels for b in labels if a != b]
        for a, b in (pairs if r % 2 == 0 else pairs[::-1]): sync(a, b)
def forget_gone(labels):
    ids = {devid(l) for l in labels}; gone = set()
    for l in labels:
        db = conn(l); gone |= set(json.loads(db.execute("SELECT sync_status()").fetchone()[0])["former_ids"]) - ids; db.close()
    db = conn(labels[0])
    for g in sorted(gone): print("  sync_forget:", db.execute("SELECT sync_forget(?)", (g,)).fetchone()[0])
    db.close()
def show(labels, watch=()):
    for l in labels:
        db = conn(l); st = json.loads(db.execute("SELECT sync_status()").fetchone()[0])
        rows = db.execute("SELECT id, v FROM t ORDER BY id").fetchall()
        lost = db.execute("SELECT pk, kind, cell_values, certain FROM sync_lost").fetchall()
        conf = db.execute("SELECT kind, pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved").fetchall()
        logs = db.execute("SELECT count(*) FROM sync_log WHERE \"values\" LIKE '%' || ? || '%'", (watch[0],)).fetchone()[0] if watch else None
        print(f"{l}: rows={rows}\n   pending={st['pending']['ops']} open_conflicts={conf} sync_lost={lost}" + (f" sync_log ops naming {watch[0]!r}: {logs}" if watch else ""))
        db.close()
