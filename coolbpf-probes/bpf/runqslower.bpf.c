// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* runqslower: one event for each run-queue wait longer than a threshold, naming the task
 * that waited and the one that had the CPU until then.
 *
 * The queue is tracked as in runqlat (sched.bpf.h): woken or still-runnable tasks are
 * queued, and leave the queue at switch-in, where the wait is compared with
 * `min_delay_us`. tp_btf, raw_tp and classic tracepoint entry points share the logic. */
#define SCHED_TGID_CACHE
#define SCHED_RUNQUEUE
#include "sched.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Report waits of at least this many microseconds. */
const volatile __u64 min_delay_us = 10000;

struct runqslower_event {
	__u64 ts_ns;
	__u64 delay_us;
	__u32 pid;      /* the task that waited: process id (tgid) */
	__u32 tid;      /* ... and thread id */
	__u32 prev_pid; /* the task switched out for it */
	__u32 prev_tid;
	__u32 cpu;
	__u32 pad;
	char comm[COOLBPF_TASK_COMM_LEN];
	char prev_comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* Reserves an event when thread `tid`'s wait was long enough; fills what both variants
 * know (the names are left to the caller). */
static __always_inline struct runqslower_event *slow_wait(__u32 tid, __u32 prev_tid)
{
	struct runqslower_event *event;
	__u64 waited_ns, delay_us;
	__u32 tgid;

	if (!sched_dequeue(tid, &waited_ns, &tgid))
		return NULL;
	delay_us = waited_ns / 1000;
	if (delay_us < min_delay_us)
		return NULL;
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return NULL;
	sched_count(SCHED_COUNT_MEASURED);
	event->ts_ns = bpf_ktime_get_ns();
	event->delay_us = delay_us;
	event->pid = tgid;
	event->tid = tid;
	/* At sched_switch the current task is still prev. */
	event->prev_pid = bpf_get_current_pid_tgid() >> 32;
	event->prev_tid = prev_tid;
	event->cpu = bpf_get_smp_processor_id();
	event->pad = 0;
	return event;
}

static __always_inline int on_wakeup(struct task_struct *task)
{
	sched_enqueue(BPF_CORE_READ(task, pid), BPF_CORE_READ(task, tgid));
	return 0;
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct runqslower_event *event;
	__u32 prev_tid = BPF_CORE_READ(prev, pid);

	sched_count(SCHED_COUNT_SWITCHES);
	sched_switched_out(sched_prev_runnable(preempt, prev), sched_task_dead(prev), prev_tid,
			   BPF_CORE_READ(prev, tgid));
	event = slow_wait(BPF_CORE_READ(next, pid), prev_tid);
	if (!event)
		return 0;
	bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), next->comm);
	bpf_probe_read_kernel_str(event->prev_comm, sizeof(event->prev_comm), prev->comm);
	bpf_ringbuf_submit(event, 0);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(wakeup_btf, struct task_struct *task)
{
	return on_wakeup(task);
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(wakeup_raw, struct task_struct *task)
{
	return on_wakeup(task);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(wakeup_new_btf, struct task_struct *task)
{
	return on_wakeup(task);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(wakeup_new_raw, struct task_struct *task)
{
	return on_wakeup(task);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(preempt, prev, next);
}

/* ---- classic tracepoints ----------------------------------------------------------- */

static __always_inline int on_wakeup_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	__u32 tid = ctx->pid;

	sched_enqueue(tid, sched_tgid_of(tid));
	return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int wakeup_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	return on_wakeup_tp(ctx);
}

SEC("tracepoint/sched/sched_wakeup_new")
int wakeup_new_tp(struct trace_event_raw_sched_wakeup_template *ctx)
{
	return on_wakeup_tp(ctx);
}

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	bool dead = sched_task_dead((struct task_struct *)bpf_get_current_task());
	struct runqslower_event *event;
	__u32 prev_tid = ctx->prev_pid;
	__u32 prev_tgid = bpf_get_current_pid_tgid() >> 32;

	sched_count(SCHED_COUNT_SWITCHES);
	if (prev_tid)
		sched_tgid_remember(prev_tid, prev_tgid, dead);
	sched_switched_out(sched_prev_runnable_reported(ctx->prev_state), dead, prev_tid, prev_tgid);
	event = slow_wait(ctx->next_pid, prev_tid);
	if (!event)
		return 0;
	/* Kernel memory, read with a helper: a context pointer moved to a field cannot be
	 * dereferenced directly. */
	bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), ctx->next_comm);
	bpf_probe_read_kernel_str(event->prev_comm, sizeof(event->prev_comm), ctx->prev_comm);
	bpf_ringbuf_submit(event, 0);
	return 0;
}
