"""Builds the sqlite_sync_ext wheel with the standard library only (a wheel is a zip file).
Usage: build_wheel.py VERSION PLATFORM_TAG LIBRARY OUT_DIR  (LIBRARY: sync0.so/.dylib/.dll)"""
import base64
import hashlib
import os
import sys
import zipfile

version, plat, library, out_dir = sys.argv[1:5]
here = os.path.dirname(os.path.abspath(__file__))
name, dist_info = "sqlite_sync_ext", "sqlite_sync_ext-%s.dist-info" % version


def read(path):
    with open(path, "rb") as f:
        return f.read()


with open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    readme = f.read()
metadata = "\n".join([
    "Metadata-Version: 2.1",
    "Name: sqlite-sync-ext",
    "Version: " + version,
    "Summary: sqlite-sync: a SQLite extension that syncs disconnected devices through bundle files",
    "Requires-Python: >=3.7",
    "Classifier: Programming Language :: Python :: 3",
    "Classifier: Topic :: Database",
    "Description-Content-Type: text/markdown",
    "", readme])
wheel = "\n".join([
    "Wheel-Version: 1.0",
    "Generator: sqlite-sync packaging/python/build_wheel.py",
    "Root-Is-Purelib: false",
    "Tag: py3-none-" + plat, ""])

# (path in the wheel, bytes, unix mode)
files = [
    (name + "/__init__.py", read(os.path.join(here, name, "__init__.py")), 0o644),
    (name + "/" + os.path.basename(library), read(library), 0o755),
    (dist_info + "/METADATA", metadata.encode("utf-8"), 0o644),
    (dist_info + "/WHEEL", wheel.encode("utf-8"), 0o644),
]
record = []
for path, data, _ in files:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
record.append(dist_info + "/RECORD,,")
files.append((dist_info + "/RECORD", ("\n".join(record) + "\n").encode(), 0o644))

whl = os.path.join(out_dir, "%s-%s-py3-none-%s.whl" % (name, version, plat))
with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
    for path, data, mode in files:
        info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
print(whl)
