#!/usr/bin/env bash
# Regenerates coolbpf-build/include/vmlinux.h from the running kernel's BTF.
#
# The checked-in header lets probes compile without BTF on the build machine; CO-RE
# relocations make the compiled objects portable to other kernels at load time.
set -euo pipefail
btf=${1:-/sys/kernel/btf/vmlinux}
out=$(dirname "$0")/../coolbpf-build/include/vmlinux.h
command -v bpftool >/dev/null || { echo "gen-vmlinux: bpftool not found (apt-get install bpftool)" >&2; exit 1; }
[ -r "$btf" ] || { echo "gen-vmlinux: $btf not readable: this kernel has no BTF" >&2; exit 1; }
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l < "$out") lines, from $btf, kernel $(uname -r))"
