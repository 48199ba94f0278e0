// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* offcpu: time tasks spend off the CPU, by the stack they left it with.
 *
 * At sched_switch the task switched out (`prev`) is still the current one, so its stacks
 * are captured there and kept with a timestamp: the kernel stack with bpf_get_stackid
 * into a stack trace map; the user stack with the stacks layer's unwinder (CFI where the
 * process's tables are loaded, frame pointers elsewhere; coolbpf/unwind.bpf.h) and its
 * CPython frames (coolbpf/python.bpf.h), both kept by content in the stack store
 * (coolbpf/stackstore.bpf.h). When the task is switched in again, the time it was away is
 * added to (tgid, tid, kernel stack, user stack, Python stack) if it lies within
 * [min_block_ns, max_block_ns]. Blocked and preempted tasks both count: off-CPU time
 * includes waiting for a CPU after the wakeup. */
#include "sched.bpf.h"
#include "coolbpf/unwind.bpf.h"
#include "coolbpf/python.bpf.h"
#include "coolbpf/stackstore.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_STACK_DEPTH 127

const volatile __u64 min_block_ns = 1000;
const volatile __u64 max_block_ns = ~0ULL;
const volatile __u8 unwind_cfi = 1;     /* 0: user stacks by frame pointers only */
const volatile __u8 python_frames = 1; /* walk CPython frames of registered processes */

/* A task that left the CPU: when, and with which stacks. */
struct offcpu_start {
	__u64 ts_ns;
	__u32 tgid;
	__s32 kernel_stack;  /* stack id, or a negative errno when not captured */
	__u64 user_stack;    /* stack store id, 0 when none */
	__u64 python_stack;  /* stack store id, 0 when none */
	char comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct offcpu_start);
} offcpu_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct offcpu_key {
	__u32 tgid;
	__u32 tid;
	__s32 kernel_stack;
	__u32 pad;
	__u64 user_stack;
	__u64 python_stack;
};

struct offcpu_value {
	__u64 total_ns;
	__u64 count;
	char comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct offcpu_key);
	__type(value, struct offcpu_value);
} offcpu SEC(".maps");

/* Innermost kernel frames the tp_btf and raw_tp variants capture that belong to the
 * tracing machinery, not to the task: this program, bpf_trace_run4 and
 * __traceiter_sched_switch. The classic tracepoint's stack starts at __schedule already. */
#define BPF_GLUE_FRAMES 3

static __always_inline __s32 capture(void *ctx, __u64 flags)
{
	__s32 id = bpf_get_stackid(ctx, &stacks, flags);

	/* The time is still accounted, to an empty stack: nothing vanishes. */
	if (id < 0)
		coolbpf_count_loss(COOLBPF_LOSS_STACK);
	return id;
}

/* The current task's user stack and CPython frames into the stack store. */
static __always_inline void capture_user(void *ctx, __u32 tgid, __u32 tid, struct offcpu_start *start)
{
	struct coolbpf_stack_scratch *scratch;

	start->user_stack =
		coolbpf_store_ips(coolbpf_user_stack(ctx, coolbpf_user_regs(), unwind_cfi));
	if (!python_frames)
		return;
	scratch = coolbpf_stack_scratch_get();
	if (!scratch)
		return;
	scratch->python.nr = coolbpf_python_walk(tgid, tid,
						 (struct coolbpf_python_frame *)scratch->python.words,
						 COOLBPF_STORED_PYTHON_FRAMES);
	start->python_stack = coolbpf_store_python(&scratch->python);
}

/* The current task (prev) leaves the CPU; `skip` kernel frames are tracing glue. */
static __always_inline void switch_out(void *ctx, __u32 tid, __u32 tgid, struct task_struct *task,
				       __u64 skip)
{
	struct offcpu_start start = {};

	if (!tid || !sched_tgid_allowed(tgid))
		return;
	if (sched_task_dead(task)) {
		/* Its last switch: it never comes back. */
		bpf_map_delete_elem(&offcpu_start, &tid);
		return;
	}
	start.ts_ns = bpf_ktime_get_ns();
	start.tgid = tgid;
	start.kernel_stack = capture(ctx, skip & BPF_F_SKIP_FIELD_MASK);
	/* Kernel threads have no user stack to capture. */
	if (!(BPF_CORE_READ(task, flags) & SCHED_PF_KTHREAD))
		capture_user(ctx, tgid, tid, &start);
	bpf_get_current_comm(start.comm, sizeof(start.comm));
	if (bpf_map_update_elem(&offcpu_start, &tid, &start, BPF_ANY))
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
}

/* Thread `tid` is back on a CPU: account the time it was away. */
static __always_inline void switch_in(__u32 tid)
{
	struct offcpu_start *start = bpf_map_lookup_elem(&offcpu_start, &tid);
	struct offcpu_value *value, init = {};
	struct offcpu_key key = {};
	__u64 delta_ns;

	if (!start)
		return;
	delta_ns = bpf_ktime_get_ns() - start->ts_ns;
	key.tgid = start->tgid;
	key.tid = tid;
	key.kernel_stack = start->kernel_stack;
	key.user_stack = start->user_stack;
	key.python_stack = start->python_stack;
	__builtin_memcpy(init.comm, start->comm, sizeof(init.comm));
	bpf_map_delete_elem(&offcpu_start, &tid);
	if (delta_ns < min_block_ns || delta_ns > max_block_ns)
		return;
	value = coolbpf_lookup_or_init(&offcpu, &key, &init);
	if (!value)
		return;
	sched_count(SCHED_COUNT_MEASURED);
	__sync_fetch_and_add(&value->total_ns, delta_ns);
	__sync_fetch_and_add(&value->count, 1);
}

static __always_inline int on_switch(void *ctx, __u32 prev_tid, __u32 next_tid, __u64 skip)
{
	struct task_struct *current = (struct task_struct *)bpf_get_current_task();

	sched_count(SCHED_COUNT_SWITCHES);
	switch_out(ctx, prev_tid, bpf_get_current_pid_tgid() >> 32, current, skip);
	switch_in(next_tid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, prev->pid, next->pid, BPF_GLUE_FRAMES);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(ctx, BPF_CORE_READ(prev, pid), BPF_CORE_READ(next, pid), BPF_GLUE_FRAMES);
}

SEC("tracepoint/sched/sched_switch")
int switch_tp(struct trace_event_raw_sched_switch *ctx)
{
	return on_switch(ctx, ctx->prev_pid, ctx->next_pid, 0);
}
