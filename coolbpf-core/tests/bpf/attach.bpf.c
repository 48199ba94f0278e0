// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Test program: one hit counter per attach kind, each filtered to one thread so tests of
 * one binary running in parallel threads do not see each other. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tid = 0;

__u64 uprobe_hits = 0;
__u64 uretprobe_hits = 0;
__u64 tracepoint_hits = 0;
__u64 raw_tp_hits = 0;
__u64 perf_samples = 0;

static __always_inline bool is_target(void)
{
	return (__u32)bpf_get_current_pid_tgid() == target_tid;
}

SEC("uprobe")
int on_uprobe(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&uprobe_hits, 1);
	return 0;
}

SEC("uretprobe")
int on_uretprobe(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&uretprobe_hits, 1);
	return 0;
}

SEC("tracepoint")
int on_tracepoint(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&tracepoint_hits, 1);
	return 0;
}

SEC("raw_tp")
int on_raw_tp(void *ctx)
{
	if (is_target())
		__sync_fetch_and_add(&raw_tp_hits, 1);
	return 0;
}

/* Counts every sample on every CPU: the test compares with frequency x time x CPUs. */
SEC("perf_event")
int on_perf_event(void *ctx)
{
	__sync_fetch_and_add(&perf_samples, 1);
	return 0;
}
