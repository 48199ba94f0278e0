// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Test program: a raw_tp program whose own helper fires its tracepoint, so that the
 * kernel skips the nested run and counts it in the program's recursion_misses.
 *
 * It uses bpf_printk, and loading a program that does makes the kernel enable the
 * bpf_trace/bpf_trace_printk trace event for good (which also hooks sched_switch to
 * record task names): the test that loads it puts the event back as it found it. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tid = 0;

__u64 printk_again_runs = 0;

static __always_inline bool is_target(void)
{
	return (__u32)bpf_get_current_pid_tgid() == target_tid;
}

/* Fires the bpf_trace_printk tracepoint for the target thread. */
SEC("tracepoint")
int printk_on_tracepoint(void *ctx)
{
	if (is_target())
		bpf_printk("coolbpf test: first");
	return 0;
}

/* On bpf_trace_printk, prints again: the tracepoint fires inside this very program. */
SEC("raw_tp")
int printk_again_on_raw_tp(void *ctx)
{
	if (is_target()) {
		__sync_fetch_and_add(&printk_again_runs, 1);
		bpf_printk("coolbpf test: again");
	}
	return 0;
}
