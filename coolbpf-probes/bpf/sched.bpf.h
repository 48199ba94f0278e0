/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sched.bpf.h: what the scheduler probes (runqlat, cpudist, runqslower, offcpu, nosched)
 * share: task state across kernel versions, the tgid filter applied to a task other than
 * the current one, the switch counter, the tid -> tgid cache the classic tracepoint
 * variants need (their context carries thread ids only), and (with SCHED_RUNQUEUE) the
 * run queue of runqlat's wakeup method and runqslower, wakeup programs included.
 */
#ifndef COOLBPF_SCHED_BPF_H
#define COOLBPF_SCHED_BPF_H

#include "coolbpf/coolbpf.bpf.h"

/* Task states (include/linux/sched.h); vmlinux.h carries types, not macros. */
#define SCHED_TASK_RUNNING 0x0
#define SCHED_TASK_DEAD 0x80
/* The classic sched_switch tracepoint reports a preempted task's prev_state as this
 * (TASK_REPORT_MAX): it is still runnable, whatever its __state says. */
#define SCHED_TASK_REPORT_MAX 0x100
#define SCHED_PF_KTHREAD 0x00200000

/* Kernels before 5.14 named the state field `state` (a long). */
struct task_struct___pre_5_14 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 sched_task_state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return (__u32)BPF_CORE_READ((struct task_struct___pre_5_14 *)task, state);
}

/* The same, for tp_btf programs: their task pointers are trusted, so fields are read with
 * plain loads instead of a bpf_probe_read_kernel call each (a sizeable part of a
 * program that runs at every context switch). */
static __always_inline __u32 sched_task_state_btf(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return task->__state;
	return (__u32)((struct task_struct___pre_5_14 *)task)->state;
}

/* Whether a task still waits for a CPU after being switched out: it was preempted, or
 * it yielded without blocking. Either way it goes back to the run queue. */
static __always_inline bool sched_prev_runnable(bool preempt, struct task_struct *prev)
{
	return preempt || sched_task_state(prev) == SCHED_TASK_RUNNING;
}

/* The same decision from the classic tracepoint's reported prev_state. */
static __always_inline bool sched_prev_runnable_reported(long prev_state)
{
	return prev_state == SCHED_TASK_RUNNING || (prev_state & SCHED_TASK_REPORT_MAX);
}

/* A task that switches out for the last time (it exited): its tracking can go. */
static __always_inline bool sched_task_dead(struct task_struct *task)
{
	return sched_task_state(task) & SCHED_TASK_DEAD;
}

/* coolbpf_filter_tgid, applied to a task that need not be the current one. */
static __always_inline bool sched_tgid_allowed(__u32 tgid)
{
	return coolbpf_filter_tgid == 0 || coolbpf_filter_tgid == tgid;
}

/* ---- counters userspace reads (sched_counters, per CPU, summed) ---------------- */

enum sched_counter_slot {
	/* Every sched_switch seen: the kernel's own count is /proc/stat `ctxt`. */
	SCHED_COUNT_SWITCHES = 0,
	/* Events that passed the probe's filters (a histogram value, an event...). */
	SCHED_COUNT_MEASURED = 1,
	SCHED_COUNTER_SLOTS = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCHED_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sched_counters SEC(".maps");

/* Counts one event in this CPU's `slot`. Every caller runs in sched_switch, which never
 * nests on a CPU: a plain add is exact, and cheaper than an atomic on a hot path. */
static __always_inline void sched_count_many(__u32 slot, __u64 count)
{
	__u64 *counter = bpf_map_lookup_elem(&sched_counters, &slot);

	if (counter)
		*counter += count;
}

static __always_inline void sched_count(__u32 slot)
{
	sched_count_many(slot, 1);
}

/* ---- histograms of all tasks, kept per CPU --------------------------------------- */

/* The histogram of the total and per-CPU modes of runqlat and cpudist: one per CPU,
 * summed by userspace for the total. Only sched_switch updates it, and sched_switch never
 * nests on a CPU (it runs under the run-queue lock with interrupts off), so plain adds
 * suffice: no atomic instructions and no cache line shared between CPUs, on a path that
 * runs at every context switch. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct coolbpf_log2_hist);
} sched_cpu_hists SEC(".maps");

/* Adds `count` values summing to `total` to this CPU's histogram (all in the slot of
 * their mean, see coolbpf_log2_hist_add_many); call from sched_switch only. */
static __always_inline void sched_cpu_hist_add_many(__u64 count, __u64 total)
{
	__u32 zero = 0;
	struct coolbpf_log2_hist *hist = bpf_map_lookup_elem(&sched_cpu_hists, &zero);

	if (hist) {
		sched_count_many(SCHED_COUNT_MEASURED, count);
		coolbpf_log2_hist_add_many_percpu(hist, count, total);
	}
}

/* Adds `value` to this CPU's histogram; call from sched_switch only. */
static __always_inline void sched_cpu_hist_add(__u64 value)
{
	sched_cpu_hist_add_many(1, value);
}

/* ---- tid -> tgid, for the classic tracepoints ------------------------------------ */

#ifdef SCHED_TGID_CACHE
/* Filled at every switch-out (where the task is current, so its tgid is known) and
 * emptied when the task dies. A task never seen switching out (a new one) is looked up
 * as tgid == tid, which is right for new processes and wrong only for a new thread's
 * first run. Only the classic tracepoint programs touch it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u32);
} sched_tgids SEC(".maps");

static __always_inline void sched_tgid_remember(__u32 tid, __u32 tgid, bool dead)
{
	if (dead) {
		bpf_map_delete_elem(&sched_tgids, &tid);
		return;
	}
	/* A full cache only costs precision (tgid falls back to tid), not an event. */
	bpf_map_update_elem(&sched_tgids, &tid, &tgid, BPF_ANY);
}

static __always_inline __u32 sched_tgid_of(__u32 tid)
{
	__u32 *tgid = bpf_map_lookup_elem(&sched_tgids, &tid);

	return tgid ? *tgid : tid;
}
#endif

/* ---- the run queue, as runqlat and runqslower track it ------------------------------ */

#ifdef SCHED_RUNQUEUE
struct sched_queued {
	__u64 ts_ns;
	__u32 tgid;
	__u32 pad;
};

/* Tasks waiting for a CPU, by thread id, since when. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sched_queued);
} sched_queued SEC(".maps");

/* Thread `tid` of process `tgid` joins a run queue now. */
static __always_inline void sched_enqueue(__u32 tid, __u32 tgid)
{
	struct sched_queued entry = { .tgid = tgid };

	/* tid 0 is a CPU's idle task: it never waits for a CPU. */
	if (!tid || !sched_tgid_allowed(tgid))
		return;
	entry.ts_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&sched_queued, &tid, &entry, BPF_ANY))
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
}

/* `prev` is switched out: back on the queue if still runnable; forgotten if it died
 * (an exiting task that was woken while running would otherwise stay queued). */
static __always_inline void sched_switched_out(bool runnable, bool dead, __u32 tid, __u32 tgid)
{
	if (runnable)
		sched_enqueue(tid, tgid);
	else if (dead)
		bpf_map_delete_elem(&sched_queued, &tid);
}

/* Thread `tid` got a CPU: how long it waited and its tgid, and false when it was not
 * seen queueing (woken before the probe started, or filtered out). */
static __always_inline bool sched_dequeue(__u32 tid, __u64 *waited_ns, __u32 *tgid)
{
	struct sched_queued *entry = bpf_map_lookup_elem(&sched_queued, &tid);

	if (!entry)
		return false;
	*waited_ns = bpf_ktime_get_ns() - entry->ts_ns;
	*tgid = entry->tgid;
	bpf_map_delete_elem(&sched_queued, &tid);
	return true;
}

/* The same queue for tp_btf programs, kept in task-local storage: their task pointers
 * are trusted, so the entry hangs off the task itself. Enqueueing is a store instead of
 * a hash update, dequeueing clears a field instead of deleting a hash element, and an
 * exiting task's entry goes with it. A kernel without task storage for tracing programs
 * (before 5.11) refuses these programs, and the raw_tp variants take over. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sched_queued);
} sched_queued_task SEC(".maps");

/* `task` (of process `tgid`) joins a run queue now. */
static __always_inline void sched_enqueue_task(struct task_struct *task, __u32 tgid)
{
	struct sched_queued *entry;

	if (!task->pid || !sched_tgid_allowed(tgid))
		return;
	entry = bpf_task_storage_get(&sched_queued_task, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!entry) {
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
		return;
	}
	entry->ts_ns = bpf_ktime_get_ns();
	entry->tgid = tgid;
}

/* `task` got a CPU: sched_dequeue for task storage. */
static __always_inline bool sched_dequeue_task(struct task_struct *task, __u64 *waited_ns,
					       __u32 *tgid)
{
	struct sched_queued *entry = bpf_task_storage_get(&sched_queued_task, task, 0, 0);

	if (!entry || !entry->ts_ns)
		return false;
	*waited_ns = bpf_ktime_get_ns() - entry->ts_ns;
	*tgid = entry->tgid;
	entry->ts_ns = 0;
	return true;
}

/* `prev` is switched out (tp_btf): back on the queue if it is still runnable. A dead
 * task's storage goes with it: nothing to forget. */
static __always_inline void sched_switched_out_task(bool preempt, struct task_struct *prev)
{
	if (preempt || sched_task_state_btf(prev) == SCHED_TASK_RUNNING)
		sched_enqueue_task(prev, prev->tgid);
}

/* ---- the wakeup programs every run-queue probe has ------------------------------------
 *
 * A woken task joins the queue; the same in runqlat and runqslower, for each hook kind
 * (the classic tracepoints learn the tgid from the cache). Their switch programs share
 * the switch-out step and differ in what the next task's dequeue does. */
#ifdef SCHED_TGID_CACHE
static __always_inline int sched_on_wakeup_btf(struct task_struct *task)
{
	sched_enqueue_task(task, task->tgid);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *task)
{
	return sched_on_wakeup_btf(task);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *task)
{
	return sched_on_wakeup_btf(task);
}

static __always_inline int sched_on_wakeup_raw(struct task_struct *task)
{
	sched_enqueue(BPF_CORE_READ(task, pid), BPF_CORE_READ(task, tgid));
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *task)
{
	return sched_on_wakeup_raw(task);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *task)
{
	return sched_on_wakeup_raw(task);
}

static __always_inline int sched_on_wakeup_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	__u32 tid = ctx->pid;

	sched_enqueue(tid, sched_tgid_of(tid));
	return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int wakeup_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	return sched_on_wakeup_tp(ctx);
}

SEC("tracepoint/sched/sched_wakeup_new")
int wakeup_new_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	return sched_on_wakeup_tp(ctx);
}

/* The switch-out step of a raw_tp sched_switch program: counts the switch, requeues or
 * forgets `prev`, and returns its tid. What the next task's dequeue does is the probe's. */
static __always_inline __u32 sched_on_switch_out_raw(bool preempt, struct task_struct *prev)
{
	__u32 prev_tid = BPF_CORE_READ(prev, pid);

	sched_count(SCHED_COUNT_SWITCHES);
	sched_switched_out(sched_prev_runnable(preempt, prev), sched_task_dead(prev), prev_tid,
			   BPF_CORE_READ(prev, tgid));
	return prev_tid;
}

/* The same for a classic tracepoint, which fires before the switch: the current task is
 * still `prev`. Its tgid is remembered for the wakeup programs, which cannot read it. */
static __always_inline __u32 sched_on_switch_out_tp(struct trace_event_raw_sched_switch *ctx)
{
	bool dead = sched_task_dead((struct task_struct *)bpf_get_current_task());
	__u32 prev_tid = ctx->prev_pid;
	__u32 prev_tgid = bpf_get_current_pid_tgid() >> 32;

	sched_count(SCHED_COUNT_SWITCHES);
	if (prev_tid)
		sched_tgid_remember(prev_tid, prev_tgid, dead);
	sched_switched_out(sched_prev_runnable_reported(ctx->prev_state), dead, prev_tid, prev_tgid);
	return prev_tid;
}
#endif /* SCHED_TGID_CACHE */
#endif

#endif /* COOLBPF_SCHED_BPF_H */
