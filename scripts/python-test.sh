#!/usr/bin/env bash
# Builds coolbpf's Python module (coolbpf-py) into a virtual environment and runs its
# pytest suite. Idempotent: the venv, maturin and pytest are made only when missing, and
# `maturin develop` (debug) reuses the workspace's cargo build.
#
#   scripts/python-test.sh [PYTEST ARGS...]
#
# Environment: COOLBPF_VENV (default: .venv at the repository root), PYTHON (the
# interpreter that creates the venv, default python3), COOLBPF_REQUIRE_BPF=1 (tests that
# need BPF fail instead of skipping). Debian needs python3-venv and python3-dev.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${COOLBPF_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "python-test: creating $venv" >&2
    "$python" -m venv "$venv"
fi
if [ ! -x "$venv/bin/maturin" ] || ! "$venv/bin/python" -c "import pytest" 2>/dev/null; then
    echo "python-test: installing maturin and pytest into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.5,<2" pytest
fi

cd "$root/coolbpf-py"
VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" "$venv/bin/maturin" develop
cd "$root"
exec "$venv/bin/python" -m pytest -q "$root/coolbpf-py/tests" "$@"
