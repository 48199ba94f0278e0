// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Test program: one ring-buffer event per matching syscall of one process, with every
 * attempt counted, so a test can check delivered + lost == produced exactly. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_syscall = 0;
/* A thread, not a process: tests of one binary run in parallel threads. */
const volatile __u32 target_tid = 0;

static __always_inline bool matches(long id)
{
	return id == target_syscall && (__u32)bpf_get_current_pid_tgid() == target_tid;
}

/* Events the program tried to emit (whether or not they fitted). */
__u64 produced = 0;

struct flood_event {
	__u64 seq;
	__u8 padding[248];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(flood_ringbuf, struct pt_regs *regs, long id)
{
	struct flood_event *event;
	__u64 seq;

	if (!matches(id))
		return 0;
	seq = __sync_fetch_and_add(&produced, 1);
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->seq = seq;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(flood_perf, struct pt_regs *regs, long id)
{
	struct flood_event event = {};

	if (!matches(id))
		return 0;
	event.seq = __sync_fetch_and_add(&produced, 1);
	coolbpf_perf_output(ctx, &perf_events, &event, sizeof(event));
	return 0;
}
