// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* cpudist: how long tasks run each time they get a CPU (switch-in to switch-out), as a
 * log2 histogram in microseconds, in all or per process.
 *
 * Only sched_switch is needed: it ends `prev`'s slice and starts `next`'s. tp_btf, raw_tp
 * and the classic tracepoint share the logic; at the switch the current task is still
 * `prev`, so even the classic variant knows prev's tgid and name. */
#include "sched.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PER_TOTAL 0
#define PER_PID 2
const volatile __u32 per_mode = PER_TOTAL;

/* When each running task got its CPU, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} oncpu_since SEC(".maps");

struct hist_value {
	struct coolbpf_log2_hist hist;
	char comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct hist_value);
} hists SEC(".maps");

static __always_inline void switch_out(__u32 tid, __u32 tgid, __u64 now)
{
	__u64 *since = bpf_map_lookup_elem(&oncpu_since, &tid);
	struct hist_value *value;
	__u64 delta_ns;
	__u32 key;

	if (!since)
		return;
	delta_ns = now - *since;
	bpf_map_delete_elem(&oncpu_since, &tid);
	if (!sched_tgid_allowed(tgid))
		return;
	if (per_mode != PER_PID) {
		sched_cpu_hist_add(delta_ns / 1000);
		return;
	}
	key = tgid;
	value = bpf_map_lookup_elem(&hists, &key);
	if (!value) {
		static const struct hist_value zero = {};

		value = coolbpf_lookup_or_init(&hists, &key, &zero);
		if (!value)
			return;
		/* prev is the current task: its name is at hand in every variant. */
		bpf_get_current_comm(value->comm, sizeof(value->comm));
	}
	sched_count(SCHED_COUNT_MEASURED);
	coolbpf_log2_hist_add(&value->hist, delta_ns / 1000);
}

static __always_inline void switch_in(__u32 tid, __u64 now)
{
	/* The idle task (tid 0) is not on-CPU time anyone asked about. */
	if (!tid)
		return;
	if (bpf_map_update_elem(&oncpu_since, &tid, &now, BPF_ANY))
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
}

/* The tgid filter keeps unwatched tasks out of the map at switch-in where next's tgid is
 * known; switch-out checks it again (and always removes prev's entry) for the classic
 * variant, which cannot tell next's tgid. */
static __always_inline int on_switch(__u32 prev_tid, __u32 prev_tgid, __u32 next_tid, __u32 next_tgid)
{
	__u64 now = bpf_ktime_get_ns();

	sched_count(SCHED_COUNT_SWITCHES);
	if (prev_tid)
		switch_out(prev_tid, prev_tgid, now);
	if (sched_tgid_allowed(next_tgid))
		switch_in(next_tid, now);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(prev->pid, prev->tgid, next->pid, next->tgid);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(BPF_CORE_READ(prev, pid), BPF_CORE_READ(prev, tgid), BPF_CORE_READ(next, pid),
			 BPF_CORE_READ(next, tgid));
}

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	__u32 next_tid = ctx->next_pid;
	/* next's tgid is not in this context: with a filter, start timing every task and
	 * let switch-out (which knows the tgid) decide; the entry is removed there. */
	__u32 next_tgid = coolbpf_filter_tgid ? coolbpf_filter_tgid : next_tid;

	return on_switch(ctx->prev_pid, bpf_get_current_pid_tgid() >> 32, next_tid, next_tgid);
}
