// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* runqslower: one event for each run-queue wait longer than a threshold, naming the task
 * that waited and the one that had the CPU until then.
 *
 * The queue is tracked as in runqlat's wakeup method (sched.bpf.h): woken or
 * still-runnable tasks are queued, and leave the queue at switch-in, where the wait is
 * compared with `min_delay_us`. tp_btf keeps the queue in task storage, raw_tp and
 * classic tracepoints in a hash map; all share the event logic. */
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

/* Reserves an event when the wait of thread `tid` (of process `tgid`) was long enough;
 * fills what every variant knows (the names are left to the caller). */
static __always_inline struct runqslower_event *slow_wait(__u64 waited_ns, __u32 tgid, __u32 tid,
							   __u32 prev_tid)
{
	struct runqslower_event *event;
	__u64 delay_us = waited_ns / 1000;

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

/* Thread `tid` got a CPU: an event if it was seen queueing and waited long enough. */
static __always_inline struct runqslower_event *dequeue_slow(__u32 tid, __u32 prev_tid)
{
	__u64 waited_ns;
	__u32 tgid;

	if (!sched_dequeue(tid, &waited_ns, &tgid))
		return NULL;
	return slow_wait(waited_ns, tgid, tid, prev_tid);
}

/* Names both tasks (kernel memory, read with a helper) and sends the event. */
static __always_inline void submit_named(struct runqslower_event *event, const char *comm,
					 const char *prev_comm)
{
	bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), comm);
	bpf_probe_read_kernel_str(event->prev_comm, sizeof(event->prev_comm), prev_comm);
	bpf_ringbuf_submit(event, 0);
}

/* ---- tp_btf: trusted task pointers, the queue in task storage (as runqlat's) -------- */

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct runqslower_event *event;
	__u64 waited_ns;
	__u32 tgid;

	sched_count(SCHED_COUNT_SWITCHES);
	sched_switched_out_task(preempt, prev);
	if (!sched_dequeue_task(next, &waited_ns, &tgid))
		return 0;
	event = slow_wait(waited_ns, tgid, next->pid, prev->pid);
	if (event)
		submit_named(event, next->comm, prev->comm);
	return 0;
}

/* ---- raw_tp: untrusted pointers, the queue in a hash map ----------------------------- */

static __always_inline int on_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 prev_tid = sched_on_switch_out_raw(preempt, prev);
	struct runqslower_event *event = dequeue_slow(BPF_CORE_READ(next, pid), prev_tid);

	if (event)
		submit_named(event, next->comm, prev->comm);
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
	__u32 prev_tid = sched_on_switch_out_tp(ctx);
	struct runqslower_event *event = dequeue_slow(ctx->next_pid, prev_tid);

	/* The names are in the record: a context pointer moved to a field cannot be
	 * dereferenced directly, so they are read with the helper too. */
	if (event)
		submit_named(event, ctx->next_comm, ctx->prev_comm);
	return 0;
}
