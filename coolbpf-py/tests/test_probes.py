"""Registry probes through coolbpf.Probe, checked against what the workload really did."""

import os
import shutil
import subprocess
import sys
import time

import pytest

import coolbpf

pytestmark = pytest.mark.usefixtures("bpf")

# A child that makes exactly N getppid calls when told to, then waits to be told to exit
# (so that it is alive while the probe collects).
CHILD = r"""
import os, sys
n = int(sys.argv[1])
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for _ in range(n):
    os.getppid()
sys.stdout.write("done\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def test_syscount_counts_a_childs_getppid_calls_exactly():
    calls = 4321
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(calls)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "ready\n"
        with coolbpf.Probe("syscount", pid=child.pid, interval=0.2) as probe:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
        records = list(probe.records(timeout=0))
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    counts = [
        r["value"]
        for r in records
        if r["kind"] == "counter"
        and r["name"] == "syscalls_total"
        and r["labels"].get("syscall") == "getppid"
        and r["labels"].get("pid") == child.pid
    ]
    assert counts, records
    # Counters are cumulative: the last one is the total.
    assert counts[-1] == calls
    # Nothing was dropped on the way.
    assert probe.dropped == 0


def test_execsnoop_sees_a_subprocess():
    true = shutil.which("true") or "/bin/true"
    marker = f"coolbpf-py-{os.getpid()}-{time.monotonic_ns()}"
    with coolbpf.Probe("execsnoop", interval=0.2) as probe:
        child = subprocess.run([true, marker], check=True)
        del child
        seen = []
        deadline = time.monotonic() + 5
        for record in probe.records(timeout=5):
            if record["kind"] == "event" and marker in record.get("args", []):
                seen.append(record)
                break
            if time.monotonic() > deadline:
                break
    assert seen, "execsnoop did not report the subprocess"
    event = seen[0]
    assert os.path.realpath(event["filename"]) == os.path.realpath(true)
    assert event["ppid"] == os.getpid()
    assert event["args"] == [true, marker]
    assert isinstance(event["ts_ns"], int) and event["pid"] > 0


def test_execsnoop_pid_matches_popen():
    true = shutil.which("true") or "/bin/true"
    with coolbpf.Probe("execsnoop", interval=0.2) as probe:
        child = subprocess.Popen([true, "pid-check"])
        child.wait()
    events = [
        r for r in probe.records(timeout=0)
        if r["kind"] == "event" and r.get("args") == [true, "pid-check"]
    ]
    assert [e["pid"] for e in events] == [child.pid]


def test_runqlat_histogram_has_buckets_and_percentiles():
    records = coolbpf.Probe("runqlat", interval=0.5).run(1.0)
    histograms = [r for r in records if r["kind"] == "histogram"]
    assert histograms, records
    last = histograms[-1]
    assert last["unit"] == "us"
    assert last["count"] == sum(b["count"] for b in last["buckets"]) > 0
    assert last["sum"] >= 0
    les = [b["le"] for b in last["buckets"]]
    assert les == sorted(les)
    p = last["percentiles"]
    assert p["p50"] <= p["p90"] <= p["p99"] <= p["p999"] <= les[-1]
    assert p["p50"] in les


def test_records_stay_readable_after_stop_and_context_manager_stops():
    probe = coolbpf.Probe("runqlat", interval=10)
    with probe:
        assert probe.running
        time.sleep(0.2)
    assert not probe.running
    # The final collect at stop emitted the histogram.
    assert any(r["kind"] == "histogram" for r in probe.poll(0))
