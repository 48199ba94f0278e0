"""Shared fixtures: BPF availability (skip, or fail under COOLBPF_REQUIRE_BPF=1), and
small helper programs compiled with the local C compiler."""

import os
import shutil
import subprocess

import pytest

import coolbpf

REQUIRE_BPF = os.environ.get("COOLBPF_REQUIRE_BPF") == "1"


def _bpf_unavailable():
    if os.geteuid() != 0:
        return "not root: loading BPF needs root (or CAP_BPF and CAP_PERFMON)"
    try:
        features = coolbpf.features()
    except coolbpf.Error as err:  # pragma: no cover - depends on the machine
        return f"kernel feature detection failed: {err}"
    if not features.get("ringbuf", {}).get("available", True):
        return "the kernel has no BPF ring buffer"
    return None


@pytest.fixture(scope="session")
def bpf():
    """Skips a test that needs BPF when it cannot run here; with
    COOLBPF_REQUIRE_BPF=1 (CI), fails it instead."""
    reason = _bpf_unavailable()
    if reason:
        if REQUIRE_BPF:
            pytest.fail(f"COOLBPF_REQUIRE_BPF=1 but BPF is unavailable: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def cc():
    """A C compiler (cc, gcc or clang)."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    if REQUIRE_BPF:
        pytest.fail("no C compiler (install gcc or clang)")
    pytest.skip("no C compiler")


@pytest.fixture(scope="session")
def burn(cc, tmp_path_factory):
    """A program that spins in `hot_spin` for argv[1] seconds (frame pointers on, so
    its stacks unwind)."""
    directory = tmp_path_factory.mktemp("burn")
    source = directory / "burn.c"
    source.write_text(
        r"""
#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
__attribute__((noinline)) void hot_spin(double seconds)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        for (int i = 0; i < 1000000; i++)
            sink += i;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
}
int main(int argc, char **argv)
{
    hot_spin(argc > 1 ? atof(argv[1]) : 1.0);
    return 0;
}
"""
    )
    binary = directory / "burn"
    subprocess.run(
        [cc, "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(binary), str(source)],
        check=True,
    )
    return binary
