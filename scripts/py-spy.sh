#!/usr/bin/env bash
# Installs py-spy (PyPI), the peer the Python-frame tests compare coolbpf's stacks with,
# into a cache outside the repository (COOLBPF_PY_SPY_ROOT, default ~/.cache/coolbpf/py-spy),
# when missing. The tests find it there (or at $PY_SPY).
set -euo pipefail

version=0.4.3
root="${COOLBPF_PY_SPY_ROOT:-$HOME/.cache/coolbpf/py-spy}"
python="${PYTHON:-python3}"

if [ -x "$root/bin/py-spy" ] && "$root/bin/py-spy" --version 2>/dev/null | grep -q "$version"; then
    exit 0
fi
echo "py-spy: installing py-spy $version into $root" >&2
"$python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --upgrade --target "$root" "py-spy==$version"
"$root/bin/py-spy" --version >/dev/null
