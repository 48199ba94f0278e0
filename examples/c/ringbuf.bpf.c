// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ringbuf.bpf.c: the user object of examples/c/ringbuf.c. One ring-buffer event per
 * getppid() of one thread, and a count of attempts in an array map, so that userspace
 * can check delivered + lost == produced. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load: the thread to watch and the syscall number of getppid. */
const volatile __u32 target_tid = 0;
const volatile __u32 target_syscall = 0;

/* Keep in step with struct event in ringbuf.c. */
struct event {
	__u64 seq;
	__u32 tid;
	__u32 syscall;
};

/* Key 0: events the program tried to emit, whether or not they fitted. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} produced SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

SEC("raw_tp/sys_enter")
int on_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct event *event;
	__u64 *count;
	__u64 seq;

	if (ctx->args[1] != target_syscall || tid != target_tid)
		return 0;
	count = bpf_map_lookup_elem(&produced, &zero);
	if (!count)
		return 0;
	seq = __sync_fetch_and_add(count, 1);
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->seq = seq;
	event->tid = tid;
	event->syscall = target_syscall;
	bpf_ringbuf_submit(event, 0);
	return 0;
}
