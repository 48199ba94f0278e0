#!/usr/bin/env bash
# Installs the real NVIDIA libraries the GPU tests run against, from PyPI's wheels, into a
# cache outside the repository (they are large): libcudart 12 and 13, NCCL, and nvcc 13
# (with its crt headers and cicc) to compile a real .cu test program. No driver is needed:
# without one their calls fail at once, and uprobes still see the real code.
#
#   scripts/nvidia-libs.sh        idempotent; prints nothing when the cache is complete
#
# Environment: COOLBPF_NVIDIA_ROOT (default ~/.cache/coolbpf/nvidia), PYTHON (python3).
set -euo pipefail

root="${COOLBPF_NVIDIA_ROOT:-$HOME/.cache/coolbpf/nvidia}"
wheels="$root/../wheels"
python="${PYTHON:-python3}"
# Pinned, so that every machine tests the same code.
packages=(
  nvidia-cuda-runtime-cu12==12.9.79
  nvidia-cuda-runtime==13.5.37
  nvidia-cuda-nvcc==13.5.37
  nvidia-cuda-crt==13.5.37
  nvidia-nvvm==13.5.37
  nvidia-nccl-cu12==2.32.3
)
stamp="$root/.complete-$(echo "${packages[*]}" | sha256sum | cut -c1-16)"
[ -e "$stamp" ] && exit 0

mkdir -p "$root" "$wheels"
echo "nvidia-libs: downloading ${packages[*]} into $wheels" >&2
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --python-version 3.11 -d "$wheels" "${packages[@]}"
for package in "${packages[@]}"; do
  name="${package%%==*}"
  version="${package##*==}"
  wheel=$(ls "$wheels"/"${name//-/_}"-"$version"-*.whl | head -n1)
  "$python" -m zipfile -e "$wheel" "$root"
done
# nvcc links -lcudart; the wheel ships only the versioned name.
ln -sf libcudart.so.13 "$root/nvidia/cu13/lib/libcudart.so"
chmod +x "$root"/nvidia/cu13/bin/* "$root"/nvidia/cu13/nvvm/bin/* 2>/dev/null || true
touch "$stamp"
echo "nvidia-libs: ready in $root" >&2
