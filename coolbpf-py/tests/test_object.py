"""A user's own BPF object: compiled from source, loaded with globals, attached by
target, its maps read and its ring buffer delivering exactly what the program produced."""

import os
import threading

import pytest

import coolbpf

pytestmark = pytest.mark.usefixtures("bpf")

SOURCE = r"""
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tid = 0;
__u64 produced = 0;

struct event {
    __u64 seq;
    __u32 tid;
    __u32 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 one = 1, *count;
    struct event *event;

    if (tid != target_tid)
        return 0;
    count = bpf_map_lookup_elem(&calls, &tid);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bpf_map_update_elem(&calls, &tid, &one, BPF_NOEXIST);
    event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
    if (!event) {
        __sync_fetch_and_add(&produced, 1);
        return 0;
    }
    event->seq = __sync_fetch_and_add(&produced, 1);
    event->tid = tid;
    event->pad = 0;
    bpf_ringbuf_submit(event, 0);
    return 0;
}
"""


def produce(count):
    """Makes `count` getppid calls from a new thread; returns the thread's id."""
    ready, go, tid = threading.Event(), threading.Event(), []

    def body():
        tid.append(threading.get_native_id())
        ready.set()
        go.wait()
        for _ in range(count):
            os.getppid()

    thread = threading.Thread(target=body)
    thread.start()
    ready.wait()
    return tid[0], go, thread


def read_all(ring, expected, timeout=10.0):
    events = []
    while len(events) < expected:
        batch = ring.read(timeout=timeout)
        if not batch:
            break
        events.extend(batch)
    return events


def test_ring_buffer_delivers_what_the_program_produced():
    count = 20000
    tid, go, thread = produce(count)
    with coolbpf.Object.from_source(SOURCE, globals={"target_tid": tid}) as obj:
        assert "on_getppid" in obj.programs
        assert {"events", "calls"} <= set(obj.maps)
        obj.attach("on_getppid", "tracepoint:syscalls:sys_enter_getppid")
        ring = obj.ring_buffer("events")
        go.set()
        thread.join()
        events = read_all(ring, count)
        ring.stop()
        events.extend(ring.read(timeout=0))
        produced = obj.global_int("produced")
        losses = ring.losses()
        calls = obj.map("calls")
        assert calls.counter(tid) == count
        assert calls.lookup(tid) == count.to_bytes(8, "little")
    assert produced == count
    assert len(events) + losses["total_lost"] == produced
    assert losses["delivered"] == len(events) == count
    assert all(len(e) == 16 for e in events)
    seqs = [int.from_bytes(e[:8], "little") for e in events]
    assert seqs == list(range(count))
    assert {int.from_bytes(e[8:12], "little") for e in events} == {tid}


def test_losses_are_counted_when_the_ring_is_too_small():
    count = 5000
    tid, go, thread = produce(count)
    obj = coolbpf.Object.from_source(
        SOURCE, globals={"target_tid": tid}, max_entries={"events": 4096}
    )
    try:
        obj.attach("on_getppid", "tracepoint:syscalls:sys_enter_getppid")
        # A queue of 8 events: most events are lost, in the kernel or in the queue.
        ring = obj.ring_buffer("events", capacity=8)
        go.set()
        thread.join()
        ring.stop()
        events = ring.read(timeout=0)
        losses = ring.losses()
        produced = obj.global_int("produced")
    finally:
        obj.close()
    assert produced == count
    assert losses["total_lost"] > 0
    assert len(events) + losses["total_lost"] == produced
    # What the full queue turned away is lost, not delivered.
    assert losses["delivered"] == len(events) <= 8
    assert losses["channel_overflow"] > 0


def test_object_from_path_attach_errors_and_globals():
    path = coolbpf.Object.compile(SOURCE)
    with pytest.raises(LookupError):
        coolbpf.Object(path, globals={"no_such_global": 1})
    with pytest.raises(ValueError):
        coolbpf.Object(path, globals={"target_tid": 2**40})
    with coolbpf.Object(path, globals={"target_tid": 7}) as obj:
        assert obj.global_int("target_tid") == 7
        with pytest.raises(LookupError):
            obj.attach("no_such_program", "tracepoint:syscalls:sys_enter_getppid")
        with pytest.raises(ValueError):
            obj.attach("on_getppid", "not a target")
        with pytest.raises(LookupError):
            obj.map("no_such_map")
        with pytest.raises(ValueError):
            obj.ring_buffer("calls")
        obj.attach("on_getppid")  # where its SEC() says
        assert obj.attachments == 1
    with pytest.raises(coolbpf.ClosedError):
        obj.programs


def test_read_times_out_empty_and_releases_the_gil():
    with coolbpf.Object.from_source(SOURCE, globals={"target_tid": 1}) as obj:
        ring = obj.ring_buffer("events")
        ticks = []
        stop = threading.Event()

        def ticker():
            while not stop.is_set():
                ticks.append(1)
                stop.wait(0.01)

        thread = threading.Thread(target=ticker)
        thread.start()
        assert ring.read(timeout=0.5) == []
        stop.set()
        thread.join()
        # The other thread ran while read() waited.
        assert len(ticks) >= 10
