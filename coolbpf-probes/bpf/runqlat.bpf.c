// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* runqlat: how long runnable tasks wait for a CPU, as a log2 histogram in microseconds.
 *
 * A task joins the run queue when it is woken (sched_wakeup, sched_wakeup_new) or when
 * it is switched out while still runnable (preempted, or yielding); it leaves the queue
 * when it is switched in. The time between the two is its run-queue latency.
 *
 * Two ways to measure it, chosen at load time: from the scheduler's own per-task
 * accounting, read at sched_switch alone (switch_schedinfo_btf, the cheaper), or with
 * timestamps taken at the wakeup and switch hooks (the others). For the latter, each
 * hook has three entry points with the same logic, chosen at load time: tp_btf,
 * raw_tp, then the classic tracepoint (whose context has thread ids only: the tgid comes
 * from sched.bpf.h's cache). */
#define SCHED_TGID_CACHE
#define SCHED_RUNQUEUE
#include "sched.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* How histograms are keyed: one in all, one per CPU, one per process. */
#define PER_TOTAL 0
#define PER_CPU 1
#define PER_PID 2
const volatile __u32 per_mode = PER_TOTAL;

/* Per process (the total and per-CPU modes use sched_cpu_hists). */
struct hist_value {
	struct coolbpf_log2_hist hist;
	char comm[COOLBPF_TASK_COMM_LEN]; /* its name when first seen */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct hist_value);
} hists SEC(".maps");

/* Accounts `waits` run-queue waits of a task of process `tgid` that lasted `waited_ns`
 * in all (nearly always one wait). `comm` is the task's name, in the task struct or in
 * the classic tracepoint's record: either way kernel memory, read with a helper (a
 * context pointer moved to a field cannot be dereferenced). */
static __always_inline void account_many(__u64 waits, __u64 waited_ns, __u32 tgid,
					 const char *comm)
{
	struct hist_value *value;

	if (per_mode != PER_PID) {
		sched_cpu_hist_add_many(waits, waited_ns / 1000);
		return;
	}
	value = bpf_map_lookup_elem(&hists, &tgid);
	if (!value) {
		/* Too large for the BPF stack: the initial value lives in .rodata. */
		static const struct hist_value zero = {};

		value = coolbpf_lookup_or_init(&hists, &tgid, &zero);
		if (!value)
			return;
		bpf_probe_read_kernel_str(value->comm, sizeof(value->comm), comm);
	}
	sched_count_many(SCHED_COUNT_MEASURED, waits);
	coolbpf_log2_hist_add_many(&value->hist, waits, waited_ns / 1000);
}

/* One wait of `waited_ns`. */
static __always_inline void account(__u64 waited_ns, __u32 tgid, const char *comm)
{
	account_many(1, waited_ns, tgid, comm);
}

/* Thread `tid` got the CPU: account its wait if it was seen queueing. */
static __always_inline void dequeue_and_account(__u32 tid, const char *comm)
{
	__u64 waited_ns;
	__u32 tgid;

	if (sched_dequeue(tid, &waited_ns, &tgid))
		account(waited_ns, tgid, comm);
}

/* ---- tp_btf: trusted task pointers, the queue in task storage ---------------------- */

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 waited_ns;
	__u32 tgid;

	sched_count(SCHED_COUNT_SWITCHES);
	sched_switched_out_task(preempt, prev);
	if (sched_dequeue_task(next, &waited_ns, &tgid))
		account(waited_ns, tgid, next->comm);
	return 0;
}

/* ---- sched_info: one hook, the kernel's own accounting --------------------------------
 *
 * With CONFIG_SCHED_INFO the scheduler itself sums each task's run-queue waits
 * (sched_info.run_delay, in ns) and counts them (sched_info.pcount): what
 * /proc/PID/schedstat shows. Both grow when the task gets a CPU, so at each switch-out
 * the change since the task's previous switch-out is the one wait that preceded this
 * run. That needs neither the wakeup hooks nor a clock read: one program per switch
 * instead of one per wakeup and per switch, about half the cost on a switch-heavy
 * machine. A wait is accounted when the run after it ends, not when it ends. */

/* The probe's start on the monotonic clock (task->start_time's clock): a task started
 * since has had all its waits under watch, and its first switch-out counts them all. */
const volatile __u64 schedinfo_since_ns = 0;

/* A task's sched_info counters at its last switch-out. */
struct schedinfo_seen {
	__u64 run_delay;
	__u64 pcount;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct schedinfo_seen);
} schedinfo_seen SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_schedinfo_btf, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct schedinfo_seen *seen;
	__u64 run_delay, pcount;
	__u32 tgid = prev->tgid;

	sched_count(SCHED_COUNT_SWITCHES);
	/* pid 0 is a CPU's idle task, whose sched_info the kernel leaves alone. */
	if (!prev->pid || !sched_tgid_allowed(tgid))
		return 0;
	run_delay = prev->sched_info.run_delay;
	pcount = prev->sched_info.pcount;
	seen = bpf_task_storage_get(&schedinfo_seen, prev, 0, 0);
	if (!seen) {
		/* First switch-out seen; new storage is zeroed, as sched_info is at fork. */
		seen = bpf_task_storage_get(&schedinfo_seen, prev, 0,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!seen) {
			coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
			return 0;
		}
		if (prev->start_time < schedinfo_since_ns) {
			/* Older than the probe: its totals so far are a baseline, not ours. */
			seen->run_delay = run_delay;
			seen->pcount = pcount;
			return 0;
		}
	}
	if (pcount != seen->pcount)
		account_many(pcount - seen->pcount, run_delay - seen->run_delay, tgid, prev->comm);
	seen->run_delay = run_delay;
	seen->pcount = pcount;
	return 0;
}

/* ---- raw_tp: untrusted pointers, the queue in a hash map ----------------------------- */

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	sched_on_switch_out_raw(preempt, prev);
	dequeue_and_account(BPF_CORE_READ(next, pid), next->comm);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next);
}

/* ---- classic tracepoints ----------------------------------------------------------- */

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	sched_on_switch_out_tp(ctx);
	dequeue_and_account(ctx->next_pid, ctx->next_comm);
	return 0;
}
