#!/usr/bin/env bash
# Builds the seed corpus of the symbolize_elf fuzz target into DIR (default
# corpus/symbolize_elf next to this script): small real binaries of the test programs
# in every shape the symbolizer reads. GCC and Clang DWARF 4 and 5, zlib, zstd and
# .zdebug compressed sections, a relocatable object, a split-DWARF skeleton, line tables
# only, stripped binaries, .gnu_debuglink and .gnu_debugdata (MiniDebugInfo), C++ and
# Rust. A seed whose tool is missing is skipped with a message. About 0.4 MB in all.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/corpus/symbolize_elf}"
programs="$here/../tests/programs"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

have() { command -v "$1" >/dev/null 2>&1; }
# seed NAME COMMAND...: runs COMMAND (which writes $work/$NAME) and keeps the result.
seed() {
  local name="$1"
  shift
  if "$@" >/dev/null 2>&1 && [ -s "$work/$name" ]; then
    cp "$work/$name" "$out/seed-$name"
  else
    echo "seeds: skipped $name (${1} failed or is missing)" >&2
  fi
}

c="$programs/prog.c"
seed gcc-dwarf5 gcc -O2 -g -Wl,--build-id "$c" -o "$work/gcc-dwarf5"
seed gcc-dwarf4-gz gcc -O2 -gdwarf-4 -gz -Wl,--build-id "$c" -o "$work/gcc-dwarf4-gz"
seed gcc-dwarf3 gcc -O1 -gdwarf-3 -fno-inline-small-functions "$c" -o "$work/gcc-dwarf3"
seed gcc-object gcc -O2 -g -c "$c" -o "$work/gcc-object"
seed gcc-split gcc -O2 -g -gsplit-dwarf "$c" -o "$work/gcc-split"
seed clang-dwarf5 clang -O2 -g "$c" -o "$work/clang-dwarf5"
seed clang-dwarf4 clang -O2 -gdwarf-4 "$c" -o "$work/clang-dwarf4"
seed clang-line-tables clang -O2 -gline-tables-only "$c" -o "$work/clang-line-tables"

# Variants of the GCC binary: other compressions, and stripped in each way.
base="$work/gcc-dwarf5"
if [ -s "$base" ]; then
  seed zdebug objcopy --compress-debug-sections=zlib-gnu "$base" "$work/zdebug"
  seed zstd objcopy --compress-debug-sections=zstd "$base" "$work/zstd"
  # A regression: the zstd .debug_info's header claims 6 GiB (ruzstd zero-fills the
  # claimed size before decoding), past the fuzzer's memory limit unless refused.
  info="$(readelf -SW "$work/zstd" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == ".debug_info") print $(i + 3) }')"
  if [ -n "$info" ] && cp "$work/zstd" "$work/zstd-claims-6g"; then
    # Elf64_Chdr.ch_size, little endian: 0x1_8000_0000.
    seed zstd-claims-6g dd of="$work/zstd-claims-6g" bs=1 seek=$((0x$info + 8)) conv=notrunc \
      < <(printf '\x00\x00\x00\x80\x01\x00\x00\x00')
  fi
  seed symtab-only objcopy --strip-debug "$base" "$work/symtab-only"
  seed dynsym-only objcopy --strip-all "$base" "$work/dynsym-only"
  if objcopy --only-keep-debug "$base" "$work/prog.debug" 2>/dev/null; then
    seed debug-file cp "$work/prog.debug" "$work/debug-file"
    seed debuglink objcopy --strip-all --add-gnu-debuglink="$work/prog.debug" \
      "$base" "$work/debuglink"
  fi
  # MiniDebugInfo as Fedora builds it: the function symbols, xz-compressed, in
  # .gnu_debugdata of a fully stripped binary.
  if have xz && objcopy -S --remove-section=.comment "$work/symtab-only" "$work/mini" 2>/dev/null \
    && xz -f "$work/mini"; then
    seed gnu-debugdata objcopy --strip-all --add-section ".gnu_debugdata=$work/mini.xz" \
      "$base" "$work/gnu-debugdata"
  else
    echo "seeds: skipped gnu-debugdata (xz failed or is missing)" >&2
  fi
fi

# C++: namespaces, templates, lambdas; mangled names. Small on purpose: the test
# program pulls in enough of libstdc++ to make a 0.5 MB input.
cat >"$work/small.cpp" <<'CPP'
#include <cstdio>
namespace geo {
template <typename T> struct Vec { T x, y; };
template <typename T> static inline T dot(Vec<T> a, Vec<T> b) { return a.x * b.x + a.y * b.y; }
struct Shape { virtual ~Shape() = default; virtual double area() const = 0; };
struct Square : Shape { double s; explicit Square(double v) : s(v) {} double area() const override { return s * s; } };
}
__attribute__((noinline)) double total(const geo::Shape *const *shapes, int n) {
  double sum = 0;
  auto add = [&](const geo::Shape *s) { sum += s->area(); };
  for (int i = 0; i < n; i++) add(shapes[i]);
  return sum + geo::dot(geo::Vec<double>{sum, 1}, geo::Vec<double>{2, sum});
}
int main(int argc, char **) {
  geo::Square a(argc), b(argc + 1);
  const geo::Shape *shapes[] = {&a, &b};
  std::printf("%f\n", total(shapes, 2));
}
CPP
seed cpp-gcc g++ -O2 -g "$work/small.cpp" -o "$work/cpp-gcc"
seed cpp-clang clang++ -O2 -g "$work/small.cpp" -o "$work/cpp-clang"

# Rust: an object file (a linked Rust binary is megabytes), with rustc's DWARF.
cat >"$work/small.rs" <<'RS'
#[inline(always)]
fn square<T: std::ops::Mul<Output = T> + Copy>(x: T) -> T { x * x }
pub struct Meter(pub f64);
impl Meter { #[inline(never)] pub fn area(&self) -> f64 { square(self.0) } }
#[inline(never)]
pub fn sum(values: &[u32]) -> u64 { values.iter().map(|&v| u64::from(square(v))).sum() }
pub fn apply(f: &dyn Fn(u32) -> u32, v: u32) -> u32 { f(v) + sum(&[v]) as u32 }
RS
seed rust-object rustc --edition 2021 --crate-type lib --emit obj -O -g -C panic=abort \
  "$work/small.rs" -o "$work/rust-object"

du -sh "$out" >&2
