#!/bin/sh
# Packages the built library (make dist): a Python wheel, an npm tarball and a .tar.gz with its
# .sha256, written to OUT_DIR. Only Linux x86-64 is built and tested; the other platforms' names
# follow their usual conventions. Usage: packaging/build.sh dist/sync0.so OUT_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lib=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$(mkdir -p "$2" && cd "$2" && pwd)
libname=$(basename "$lib")                      # sync0.so / sync0.dylib / sync0.dll
stage="$root/target/dist-build"
rm -rf "$stage" && mkdir -p "$stage"

# the version of [package] in Cargo.toml
version=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' "$root/Cargo.toml")
[ -n "$version" ] || { echo "dist: no version in Cargo.toml" >&2; exit 1; }

os=$(uname -s)
arch=$(uname -m)
case "$arch" in amd64) arch=x86_64 ;; esac
case "$arch" in x86_64) cpu=x64 ;; aarch64 | arm64) cpu=arm64 ;; *) cpu=$arch ;; esac   # npm's names
case "$os" in
Linux)
    npm_os=linux; archive_os=linux
    # manylinux_2_17 promises glibc <= 2.17: true only if no symbol needs a later version
    glibc=$( (objdump -T "$lib" 2>/dev/null || true) | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n | tail -1)
    if [ -n "$glibc" ] && [ "$(printf '%s\n2.17\n' "$glibc" | sort -t. -k1,1n -k2,2n | tail -1)" = 2.17 ]; then
        plat=manylinux_2_17_$arch
    else
        plat=linux_$arch
    fi
    echo "dist: highest glibc symbol version ${glibc:-unknown}: wheel tag $plat" ;;
Darwin)   # untested
    npm_os=darwin; archive_os=macos
    case "$arch" in arm64) plat=macosx_11_0_arm64 ;; *) plat=macosx_10_12_$arch ;; esac ;;
*)        # MINGW/MSYS/CYGWIN: Windows, untested
    npm_os=win32; archive_os=windows
    case "$arch" in x86_64) plat=win_amd64 ;; *) plat=win_$arch ;; esac ;;
esac

rm -f "$out"/sqlite_sync_ext-*.whl "$out"/sqlite-sync-ext-*

# Python wheel
python3 "$here/python/build_wheel.py" "$version" "$plat" "$lib" "$out" >/dev/null

# npm tarball, packed from a staging folder
mkdir -p "$stage/npm/lib"
cp "$here/npm/index.js" "$here/npm/index.d.ts" "$here/npm/README.md" "$stage/npm/"
cp "$lib" "$stage/npm/lib/"
grep -v '^  "//"' "$here/npm/package.template.json" |
    sed -e "s/@VERSION@/$version/" -e "s/@OS@/$npm_os/" -e "s/@CPU@/$cpu/" > "$stage/npm/package.json"
(cd "$stage/npm" && npm pack --silent --pack-destination "$out" >/dev/null)

# the bare library, with a README (and the LICENSE when the repository has one), and its checksum
name="sqlite-sync-ext-$version-$archive_os-$arch"
mkdir -p "$stage/$name"
cp "$lib" "$here/archive/README.md" "$stage/$name/"
[ ! -f "$root/LICENSE" ] || cp "$root/LICENSE" "$stage/$name/"
tar -czf "$out/$name.tar.gz" -C "$stage" "$name"
if command -v sha256sum >/dev/null 2>&1; then sum="sha256sum"; else sum="shasum -a 256"; fi
(cd "$out" && $sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo "dist: $libname packaged, version $version:"
(cd "$out" && ls -l sqlite_sync_ext-*.whl sqlite-sync-ext-* | awk '{ print "  " $NF " (" $5 " bytes)" }')
