#!/usr/bin/env bash
# Installs the Debian packages coolbpf needs to build, test and demo, when missing.
# Run as root (or with sudo); without root it only says what is missing.
set -euo pipefail

packages=(
  clang            # compiles the BPF C programs (-target bpf)
  llvm             # llvm-strip/llvm-objdump for BPF objects
  libelf-dev       # libbpf (vendored by libbpf-sys) links against libelf
  zlib1g-dev       # ... and zlib
  liblzma-dev      # xz, for .gnu_debugdata (MiniDebugInfo) in the symbolizer
  pkg-config
  libbpf-dev       # bpf/bpf_helpers.h and friends for the BPF side
  linux-libc-dev   # asm/unistd_64.h, asm/errno.h
  bpftool          # scripts/gen-vmlinux.sh
  bpftrace         # reference peer in tests
  linux-perf       # reference peer in tests and benchmarks (perf record, perf stat)
  golang-go        # `go tool pprof` validates our pprof output in tests
  dwz              # builds the dwz (supplementary debug file) test variants
  gcc
  make
  valgrind         # the C example runs under memcheck in tests
  python3-venv     # the Python bindings are built and tested in a venv (.venv)
  python3-pip
  python3-dev      # libpython, which coolbpf-py links against outside a wheel
  fio              # direct-IO workloads for the IO probes' tests and benchmarks
  util-linux       # losetup: the IO probes' tests run on loop devices they create
  iproute2         # ip netns, veth, tc netem, ss: the network probes' tests
  nftables         # drop rules whose drops tcpdrop must report
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found: install a Rust toolchain (rustup or Debian's cargo)" >&2
  exit 1
fi

# cargo-fuzz, for `make fuzz` (coolbpf-symbolize/fuzz): built on the stable toolchain.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz --version '^0.13'
fi
