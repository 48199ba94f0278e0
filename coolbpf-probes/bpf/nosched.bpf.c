// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* nosched: tasks that stay in kernel mode without rescheduling for longer than a
 * threshold (a long loop without a preemption point, a lock held too long...), with the
 * kernel stack they are in. No kprobes: sampling plus two tracepoints.
 *
 * Each CPU keeps when its current task's kernel stint began. A stint begins when the task
 * is switched in (it resumes inside __schedule, in the kernel) and ends when it returns
 * to user mode: at raw_syscalls:sys_exit, or when a sample finds it in user mode. A
 * cpu-clock sample that finds the task in kernel mode for at least `threshold_ns` since
 * then reports it once per stint: pid, comm, how long so far, and the sampled kernel
 * stack. The resolution is the sampling period. CPUs' idle tasks are left out. */
#include "sched.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_STACK_DEPTH 127

const volatile __u64 threshold_ns = 10 * 1000 * 1000;

struct stint {
	__u64 since_ns; /* when the current task's kernel stint began */
	__u32 tid;      /* the task it belongs to */
	__u32 reported; /* already reported: once per stint */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stint);
} stints SEC(".maps");

struct nosched_event {
	__u64 ts_ns;
	__u64 duration_ns;
	__u32 pid;
	__u32 tid;
	__u32 cpu;
	__u32 stack_bytes; /* valid bytes of stack[] */
	char comm[COOLBPF_TASK_COMM_LEN];
	__u64 stack[MAX_STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline struct stint *this_cpu(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stints, &zero);
}

/* A new kernel stint begins now for thread `tid` on this CPU. */
static __always_inline void begin(__u32 tid)
{
	struct stint *stint = this_cpu();

	if (!stint)
		return;
	stint->since_ns = bpf_ktime_get_ns();
	stint->tid = tid;
	stint->reported = 0;
}

static __always_inline bool in_user_mode(struct bpf_perf_event_data *ctx)
{
#if defined(__TARGET_ARCH_x86)
	/* The context allows only whole-word reads of the registers; cs is one word in the
	 * uapi pt_regs (the kernel's own view splits it into a union). */
	return (*(const __u64 *)&ctx->regs.cs & 3) == 3;
#elif defined(__TARGET_ARCH_arm64)
	return (ctx->regs.pstate & 0xf) == 0; /* EL0 */
#else
	/* Unknown architecture: never report rather than report wrongly. */
	return true;
#endif
}

SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	struct stint *stint = this_cpu();
	struct nosched_event *event;
	__u64 now, duration;
	long bytes;

	if (!stint || !tid)
		return 0;
	if (stint->tid != tid || in_user_mode(ctx)) {
		/* Back in user mode; or a task whose switch-in came before the probe. */
		begin(tid);
		return 0;
	}
	now = bpf_ktime_get_ns();
	duration = now - stint->since_ns;
	if (stint->reported || duration < threshold_ns || !coolbpf_tgid_allowed(NULL))
		return 0;
	stint->reported = 1;
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->ts_ns = now;
	event->duration_ns = duration;
	event->pid = tgid;
	event->tid = tid;
	event->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	/* The sampled context's kernel stack: where the task is stuck. */
	bytes = bpf_get_stack(ctx, event->stack, sizeof(event->stack), 0);
	if (bytes < 0) {
		coolbpf_count_loss(COOLBPF_LOSS_STACK);
		bytes = 0;
	}
	event->stack_bytes = bytes;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

/* ---- stint boundaries: switch-in, and return to user from a system call ------------- */

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	sched_count(SCHED_COUNT_SWITCHES);
	begin(next->pid);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	sched_count(SCHED_COUNT_SWITCHES);
	begin(BPF_CORE_READ(next, pid));
	return 0;
}

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	sched_count(SCHED_COUNT_SWITCHES);
	begin(ctx->next_pid);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_btf, struct pt_regs *regs, long ret)
{
	begin((__u32)bpf_get_current_pid_tgid());
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit_raw, struct pt_regs *regs, long ret)
{
	begin((__u32)bpf_get_current_pid_tgid());
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	begin((__u32)bpf_get_current_pid_tgid());
	return 0;
}
