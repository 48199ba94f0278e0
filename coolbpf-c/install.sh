#!/bin/sh
# Installs coolbpf's C library under PREFIX as C programs expect it:
#
#   PREFIX/lib/libcoolbpf.so.0         the shared library (its soname)
#   PREFIX/lib/libcoolbpf.so           -> libcoolbpf.so.0 (what -lcoolbpf finds)
#   PREFIX/lib/libcoolbpf.a            the static library
#   PREFIX/lib/pkgconfig/coolbpf.pc    for pkg-config --cflags --libs coolbpf
#   PREFIX/include/coolbpf.h           the header
#
# Cargo builds the library as libcoolbpf_c (the name `coolbpf` is the Rust facade
# crate's, and two libraries of one name would overwrite each other in target/); this
# script gives it its C name.
#
# Usage: coolbpf-c/install.sh [--lib-dir DIR] PREFIX
#   --lib-dir DIR   where cargo put libcoolbpf_c.{so,a} (default: target/release, after
#                   `cargo build --release -p coolbpf-c`)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
lib_dir="$here/../target/release"
if [ "${1:-}" = "--lib-dir" ]; then
	lib_dir=$2
	shift 2
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--lib-dir DIR] PREFIX" >&2
	exit 2
fi
prefix=$1

for file in libcoolbpf_c.so libcoolbpf_c.a; do
	if [ ! -f "$lib_dir/$file" ]; then
		echo "$0: $lib_dir/$file is missing: run cargo build --release -p coolbpf-c first" >&2
		exit 1
	fi
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../Cargo.toml" | head -n 1)
# What the static library needs besides itself (libbpf's libelf and zlib, and the Rust
# standard library's system libraries).
libs_private="-lelf -lz -lpthread -ldl -lm -lrt -lutil -lgcc_s"

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$lib_dir/libcoolbpf_c.so" "$prefix/lib/libcoolbpf.so.0.tmp"
mv -f "$prefix/lib/libcoolbpf.so.0.tmp" "$prefix/lib/libcoolbpf.so.0"
ln -sf libcoolbpf.so.0 "$prefix/lib/libcoolbpf.so"
cp "$lib_dir/libcoolbpf_c.a" "$prefix/lib/libcoolbpf.a"
cp "$here/include/coolbpf.h" "$prefix/include/coolbpf.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@LIBS_PRIVATE@|$libs_private|" \
	"$here/coolbpf.pc.in" >"$prefix/lib/pkgconfig/coolbpf.pc"
echo "installed coolbpf $version under $prefix"
