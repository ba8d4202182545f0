#!/usr/bin/env bash
# Python 3.14 for CI's matrix on Debian 12, which has no build of it (nor has pyenv here:
# CI reaches no download site but the package registries). Takes CPython 3.14 as Debian
# unstable packages it, from the machine's own Debian mirror: the interpreter, its
# standard library, and the C library and the few libraries it was built against, newer
# than Debian 12's. They are unpacked into one folder ($PYTHON314_PREFIX, default
# /opt/python3.14-sid), never installed system-wide: apt's state for "sid" lives in a
# temporary folder, and patchelf points the interpreter at its own loader and libraries.
# Prints the interpreter's path; does nothing when it is already there and works.
set -euo pipefail
prefix=${PYTHON314_PREFIX:-/opt/python3.14-sid}
python=$prefix/usr/bin/python3.14
works() { "$python" -c 'import ctypes, hashlib, sqlite3, ssl, zlib' 2>/dev/null; }
if [ -x "$python" ] && works; then
  echo "$python"
  exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  echo "scripts/python314.sh: only for amd64 machines" >&2
  exit 1
fi
command -v patchelf >/dev/null || {
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q patchelf >&2
}

# The mirror this machine's apt already uses (Debian 12 writes deb822 .sources files).
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" \
  >"$work/sid.list"
apt=(
  -o Dir::Etc::SourceList="$work/sid.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$work/lists" -o Dir::Cache::archives="$work/debs"
  -o APT::Sandbox::User=root
)
apt-get "${apt[@]}" update -q >&2
(cd "$work/debs" && apt-get "${apt[@]}" download python3.14 python3.14-minimal \
  libpython3.14-minimal libpython3.14-stdlib libc6 libssl3t64 libzstd1 libexpat1 \
  libsqlite3-0 libffi8 >&2)

rm -rf "$prefix.new"
mkdir -p "$prefix.new"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix.new"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
# RPATH, not RUNPATH: it also applies to what the extension modules load (libssl, ...).
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" \
  "$prefix.new/usr/bin/python3.14"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
works || { echo "scripts/python314.sh: $python does not run" >&2; exit 1; }
"$python" -c 'import sys; print("Python", sys.version.split()[0], "in", sys.prefix)' >&2
echo "$python"
