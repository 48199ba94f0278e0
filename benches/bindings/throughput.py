#!/usr/bin/env python3
"""Ring-buffer throughput through coolbpf's Python binding.

Loads benches/bpf/transport.bpf.c (one 64-byte ring-buffer event per getppid syscall of
one thread, every attempt counted in its `produced` global) through `coolbpf.Object`,
produces N events from one thread, consumes them in batches with `RingBuffer.read`
(checking each event's sequence number, as the Rust and C consumers do), and prints the
line the C program of benches/bindings prints:

    delivered=D produced=P lost=L out_of_order=O ns=T cpu_ns=C

delivered: events that reached Python; lost: every loss the stream counted (kernel
reserve failures, queue overflow); produced: the program's own count (delivered + lost ==
produced); out_of_order: events whose sequence number was not the next one expected;
ns: from the producer's start to the last event read; cpu_ns: this process's CPU time
meanwhile (all of it is consuming: the producer is another process).

The producer is a tiny C program (compiled with clang or cc) whose main thread makes N
getppid syscalls when told to, so that the producer costs the same as in the Rust and C
benchmarks; without a C compiler, a Python thread calling os.getppid() produces instead
(slower: it shares the GIL with the consumer). Run as root:

    python3 benches/bindings/throughput.py [--events N] [--ring-bytes B] [--batch M]
        [--object transport.bpf.o]
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import coolbpf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "benches", "bpf", "transport.bpf.c")

PRODUCER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    char go;
    printf("%d %d\n", (int)getpid(), (int)SYS_getppid);
    fflush(stdout);
    if (read(0, &go, 1) != 1)
        return 1;
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return 0;
}
"""


def build_producer(directory):
    compiler = shutil.which("clang") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return None
    source = os.path.join(directory, "producer.c")
    binary = os.path.join(directory, "producer")
    with open(source, "w") as f:
        f.write(PRODUCER_C)
    subprocess.run([compiler, "-O2", "-o", binary, source], check=True)
    return binary


class CProducer:
    """The C producer: its main thread's id is its pid."""

    def __init__(self, binary, count):
        self.process = subprocess.Popen(
            [binary, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        tid, syscall = self.process.stdout.readline().split()
        self.tid, self.syscall = int(tid), int(syscall)

    def go(self):
        self.process.stdin.write(b"g")
        self.process.stdin.flush()

    def done(self):
        return self.process.poll() is not None

    def wait(self):
        self.process.stdin.close()
        self.process.wait()


class PythonProducer:
    """Fallback: a Python thread calling os.getppid()."""

    SYSCALLS = {"x86_64": 110, "aarch64": 173, "riscv64": 173, "s390x": 64}

    def __init__(self, count):
        self.syscall = self.SYSCALLS.get(os.uname().machine, 110)
        ready, self.start_event = threading.Event(), threading.Event()
        tid = []

        def body():
            tid.append(threading.get_native_id())
            ready.set()
            self.start_event.wait()
            for _ in range(count):
                os.getppid()

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()
        ready.wait()
        self.tid = tid[0]

    def go(self):
        self.start_event.set()

    def done(self):
        return not self.thread.is_alive()

    def wait(self):
        self.thread.join()


def process_cpu_ns():
    """This process's CPU time (user + system, every thread), ns."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int((usage.ru_utime + usage.ru_stime) * 1e9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ring-bytes", type=int, default=1 << 24)
    parser.add_argument("--batch", type=int, default=65536, help="most events per read()")
    parser.add_argument("--queue", type=int, default=1 << 20, help="events waiting in userspace")
    parser.add_argument("--object", help="a built transport.bpf.o (default: compile the source)")
    args = parser.parse_args()

    path = args.object or coolbpf.Object.compile(open(SOURCE).read())
    with tempfile.TemporaryDirectory() as directory:
        binary = build_producer(directory)
        if binary:
            producer = CProducer(binary, args.events)
        else:
            print("throughput: no C compiler; producing from a Python thread", file=sys.stderr)
            producer = PythonProducer(args.events)
        obj = coolbpf.Object(
            path,
            globals={"target_tid": producer.tid, "target_syscall": producer.syscall},
            max_entries={"events": args.ring_bytes},
        )
        obj.attach("transport", "raw_tp:sys_enter")
        ring = obj.ring_buffer("events", capacity=args.queue)
        events = 0
        out_of_order = 0
        expected = 0
        started = time.perf_counter()
        last = started
        cpu_started = cpu_last = process_cpu_ns()
        producer.go()
        while True:
            batch = ring.read(max=args.batch, timeout=0.2)
            if batch:
                for event in batch:
                    seq = int.from_bytes(event[:8], "little")
                    if seq != expected:
                        out_of_order += 1
                    expected = seq + 1
                events += len(batch)
                last = time.perf_counter()
                cpu_last = process_cpu_ns()
                if events >= args.events:
                    break
                continue
            # Nothing for 0.2 s: finished when the producer is and every event it
            # produced was either read or counted lost.
            if producer.done():
                produced = obj.global_int("produced")
                if events + ring.losses()["total_lost"] >= produced:
                    break
        producer.wait()
        ring.stop()
        rest = ring.read(timeout=0)
        events += len(rest)
        lost = ring.losses()["total_lost"]
        produced = obj.global_int("produced")
        obj.close()
    print(
        f"delivered={events} produced={produced} lost={lost} "
        f"out_of_order={out_of_order} ns={int((last - started) * 1e9)} "
        f"cpu_ns={cpu_last - cpu_started}"
    )


if __name__ == "__main__":
    main()
