// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Transport benchmark: one fixed-size ring-buffer event per matching syscall of one
 * thread. Every attempt is counted in `produced` and every failed reservation in
 * coolbpf_losses, so the benchmark can check delivered + lost == produced per run. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load: the producer thread's id (a thread, so that the benchmark's other
 * threads never add events) and the syscall it makes. */
const volatile __u32 target_tid = 0;
const volatile __u32 target_syscall = 0;

/* Events the program tried to emit, whether or not they fitted. */
__u64 produced = 0;

/* 64 bytes: the size of a small real event (a task identity plus a few fields). */
struct transport_event {
	__u64 seq;
	__u64 ts_ns;
	__u32 tid;
	__u32 syscall;
	__u8 padding[40];
};

/* Resized from userspace (ObjectBuilder::max_entries) to the benchmark's ring size. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(transport, struct pt_regs *regs, long id)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct transport_event *event;
	__u64 seq;

	if (id != target_syscall || tid != target_tid)
		return 0;
	seq = __sync_fetch_and_add(&produced, 1);
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->seq = seq;
	event->ts_ns = bpf_ktime_get_ns();
	event->tid = tid;
	event->syscall = id;
	/* Ring buffer memory is not zeroed: never hand stale kernel bytes to userspace. */
	__builtin_memset(event->padding, 0, sizeof(event->padding));
	bpf_ringbuf_submit(event, 0);
	return 0;
}
