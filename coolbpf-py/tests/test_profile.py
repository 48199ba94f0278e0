"""The profiler finds a hot function; the symbolizer names addresses."""

import gzip
import os
import subprocess
import sys
import time

import pytest

import coolbpf


def nm_address(binary, symbol):
    out = subprocess.run(["nm", str(binary)], check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol:
            return int(parts[0], 16)
    raise AssertionError(f"{symbol} not in nm output")


@pytest.mark.usefixtures("bpf")
@pytest.mark.parametrize("debug_info", [True, False])
def test_profiler_finds_the_hot_function(burn, tmp_path, debug_info):
    child = subprocess.Popen([str(burn), "4"])
    try:
        profiler = coolbpf.Profiler(freq=99, pid=child.pid, debug_info=debug_info)
        profile = profiler.run(2.0)
    finally:
        child.wait(timeout=10)
    stacks = [s for s in profile.stacks() if s["pid"] == child.pid]
    total = sum(s["count"] for s in stacks)
    hot = sum(s["count"] for s in stacks if "hot_spin" in s.get("frames", []))
    # ~2 s at 99 Hz on one thread.
    assert total >= 100, profile.folded()
    assert hot / total >= 0.8, profile.folded()
    assert "hot_spin" in profile.folded()
    top = profile.top(3)
    assert top[0]["function"] == "hot_spin" and not top[0]["kernel"]
    assert top[0]["self"] <= top[0]["total"] <= profile.total_weight
    profile.write_pprof(tmp_path / "cpu.pb.gz")
    assert len(gzip.decompress((tmp_path / "cpu.pb.gz").read_bytes())) > 0
    profile.write_svg(tmp_path / "flame.svg")
    svg = (tmp_path / "flame.svg").read_text()
    assert "<svg" in svg and "hot_spin" in svg


SLEEPER = r"""
import sys, time
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(10):
    time.sleep(0.2)
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


@pytest.mark.usefixtures("bpf")
def test_off_cpu_profile_sees_a_sleeper():
    child = subprocess.Popen(
        [sys.executable, "-c", SLEEPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "ready\n"
        with coolbpf.Profiler(pid=child.pid, off_cpu=True) as profiler:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
        profile = profiler.profile()
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    stacks = [s for s in profile.stacks() if s["pid"] == child.pid]
    assert stacks, profile.folded()
    # Microseconds off the CPU: at least the 10 x 0.2 s of sleep.
    asleep = sum(s["count"] for s in stacks)
    assert 2_000_000 <= asleep < 4_000_000, profile.folded()
    assert any("sleep" in frame for s in stacks for frame in s.get("frames", []))


def test_symbolize_elf(burn):
    address = nm_address(burn, "hot_spin")
    [result] = coolbpf.Symbolizer().symbolize([address + 1], elf=burn)
    assert result["function"] == "hot_spin"
    assert result["frames"][0]["file"].endswith("burn.c")
    assert result["unknown"] is None


def test_symbolize_process(burn):
    child = subprocess.Popen([str(burn), "2"])
    try:
        offset = nm_address(burn, "hot_spin")
        # Wait until the exec has mapped the binary (a PIE's first segment maps file
        # offset 0; virtual address = base + symbol address).
        path = os.path.realpath(burn)
        deadline = time.monotonic() + 5
        while True:
            with open(f"/proc/{child.pid}/maps") as maps:
                bases = [
                    int(line.split("-")[0], 16)
                    for line in maps.read().splitlines()
                    if line.endswith(path) and line.split()[2] == "00000000"
                ]
            if bases:
                break
            assert time.monotonic() < deadline, "burn did not start"
            time.sleep(0.01)
        base = min(bases)
        is_pie = base > offset
        virtual = base + offset if is_pie else offset
        [result] = coolbpf.Symbolizer().symbolize([virtual], pid=child.pid)
    finally:
        child.kill()
        child.wait()
    assert result["function"] == "hot_spin"


@pytest.mark.usefixtures("bpf")
def test_symbolize_kernel():
    wanted = None
    with open("/proc/kallsyms") as kallsyms:
        for line in kallsyms:
            address, kind, name = line.split()[:3]
            if name == "schedule" and kind in "tT":
                wanted = int(address, 16)
                break
    assert wanted, "schedule not in /proc/kallsyms"
    [result] = coolbpf.Symbolizer().symbolize([wanted + 1], kernel=True)
    assert result["function"] == "schedule"
