// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* profile: on-CPU stack sampling on a perf event (cpu-clock, or cycles where there is a PMU).
 *
 * Every sample that passes the filters (idle task, tgid, cgroup: all checked before any
 * stack is taken, so filtered samples cost a few loads) captures the kernel and user stacks
 * with bpf_get_stack into a per-CPU scratch record, and copies only the frames it got into
 * the ring buffer. Userspace aggregates. No stack-id map: stacks are never merged or dropped
 * by hash collisions in the kernel, and nothing has to be sized for the number of distinct
 * stacks. See coolbpf-probes/src/profile/mod.rs for the trade-off. The CPython frames of
 * registered processes (python.bpf.h) follow the user ips, with their own count.
 *
 * No sample wakes the consumer, except when `wakeup_bytes` of the ring are in use: userspace
 * drains the ring when it wants a profile, and is woken only so that the ring cannot fill
 * in between. */
#include "coolbpf/coolbpf.bpf.h"
#include "coolbpf/unwind.bpf.h"
#include "coolbpf/python.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_DEPTH 127
#define STACK_BYTES (MAX_DEPTH * 8)

/* Set from userspace before load (.rodata: the verifier prunes what is off). */
const volatile __u64 filter_cgroup_id = 0;  /* 0: every cgroup */
const volatile __u8 include_idle = 0;       /* sample the idle task (pid 0) too */
const volatile __u8 kernel_stacks = 1;
const volatile __u8 user_stacks = 1;
const volatile __u8 unwind_cfi = 0;        /* user stacks by CFI tables (unwind.bpf.h), not bpf_get_stack */
const volatile __u8 python_stacks = 1;  /* CPython frames of registered processes */
const volatile __u64 wakeup_bytes = 1 << 18;  /* wake the consumer at this much data */

/* The record sent per sample; the layout is decoded by src/profile/sample.rs. */
struct profile_sample {
	__u64 ts_ns;
	__u32 pid;   /* tgid */
	__u32 tid;
	__u32 cpu;
	__u16 kernel_frames;
	__u16 user_frames;
	char comm[COOLBPF_TASK_COMM_LEN];
	__u16 python_frames;
	__u16 reserved[3];
	__u64 ips[2 * MAX_DEPTH];  /* kernel frames, then user frames, innermost first */
	/* Room for the Python frames, which follow the last ip (innermost first). */
	struct coolbpf_python_frame python[COOLBPF_PYTHON_MAX_FRAMES];
};

#define PYTHON_BYTES (COOLBPF_PYTHON_MAX_FRAMES * sizeof(struct coolbpf_python_frame))
#define HEADER_BYTES (sizeof(struct profile_sample) - 2 * STACK_BYTES - PYTHON_BYTES)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct profile_sample);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} samples SEC(".maps");

/* bpf_get_stack into `buf`; the byte count, 0 when it failed (and the failure counted). */
static __always_inline __u64 take_stack(void *ctx, void *buf, __u64 flags)
{
	long bytes = bpf_get_stack(ctx, buf, STACK_BYTES, flags);

	if (bytes < 0) {
		coolbpf_count_loss(COOLBPF_LOSS_STACK);
		return 0;
	}
	/* Restates the helper's bound for the verifier (and for older kernels that do not
	 * refine bpf_get_stack's return range). */
	if (bytes > STACK_BYTES)
		bytes = STACK_BYTES;
	return bytes & ~7UL;
}

static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&samples, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									       : BPF_RB_NO_WAKEUP;
}

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u32 zero = 0;
	__u64 kernel_bytes = 0, user_bytes = 0, python_bytes = 0;
	struct profile_sample *sample;

	/* Filters first: a filtered-out sample takes no stack. */
	if (!include_idle && (__u32)pid_tgid == 0)
		return 0;
	if (coolbpf_filter_tgid && tgid != coolbpf_filter_tgid)
		return 0;
	if (filter_cgroup_id && bpf_get_current_cgroup_id() != filter_cgroup_id)
		return 0;

	sample = bpf_map_lookup_elem(&scratch, &zero);
	if (!sample)
		return 0;
	if (kernel_stacks)
		kernel_bytes = take_stack(ctx, sample->ips, 0);
	if (user_stacks && unwind_cfi)
		user_bytes = 8 * coolbpf_unwind_user(coolbpf_user_regs(), (void *)sample->ips + kernel_bytes,
						     MAX_DEPTH);
	else if (user_stacks)
		user_bytes = take_stack(ctx, (void *)sample->ips + kernel_bytes, BPF_F_USER_STACK);
	if (python_stacks) {
		python_bytes = coolbpf_python_walk(tgid, (__u32)pid_tgid,
						   (void *)sample->ips + kernel_bytes + user_bytes,
						   COOLBPF_PYTHON_MAX_FRAMES) *
			       sizeof(struct coolbpf_python_frame);
		/* The walk's bound, restated where the verifier checks the record size. */
		barrier_var(python_bytes);
		if (python_bytes > PYTHON_BYTES)
			python_bytes = PYTHON_BYTES;
	}

	sample->ts_ns = bpf_ktime_get_ns();
	sample->pid = tgid;
	sample->tid = (__u32)pid_tgid;
	sample->cpu = bpf_get_smp_processor_id();
	sample->kernel_frames = kernel_bytes / 8;
	sample->user_frames = user_bytes / 8;
	sample->python_frames = python_bytes / sizeof(struct coolbpf_python_frame);
	bpf_get_current_comm(sample->comm, sizeof(sample->comm));

	if (bpf_ringbuf_output(&samples, sample, HEADER_BYTES + kernel_bytes + user_bytes + python_bytes,
			       wakeup_flag()))
		coolbpf_count_loss(COOLBPF_LOSS_RINGBUF_RESERVE);
	return 0;
}
