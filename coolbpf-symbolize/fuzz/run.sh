#!/usr/bin/env bash
# Fuzzes the symbolizer's ELF and DWARF parsing for SECONDS (default 60), from the seed
# corpus that seeds.sh builds: a panic, a hang (an input over 10 s) or memory past 2 GiB
# fails, leaving the input in artifacts/symbolize_elf/. Needs cargo-fuzz
# (scripts/install-deps.sh installs it) and a C++ compiler for libFuzzer; the stable
# toolchain is enough (no sanitizer: the code under test is safe Rust). Extra arguments
# go to libFuzzer, e.g. `run.sh 600 -jobs=2`. FUZZ_TARGET picks the target
# (symbolize_elf, the default, or unwind_table); both start from the same ELF seeds.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-60}"
shift || true
cargo="${CARGO:-cargo}"
# libfuzzer-sys compiles libFuzzer with `c++`; Debian's clang (installed for BPF) has
# clang++ when g++ is missing.
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null 2>&1; then
  export CXX=clang++
fi

target="${FUZZ_TARGET:-symbolize_elf}"

"$here/seeds.sh" "$here/corpus/$target"
exec "$cargo" fuzz run --sanitizer none --fuzz-dir "$here" --target-dir "$root/target/fuzz" \
  "$target" "$here/corpus/$target" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$@"
