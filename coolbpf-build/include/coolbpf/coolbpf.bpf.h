/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * coolbpf.bpf.h: the one helper header every coolbpf probe includes.
 *
 * Conventions the userspace core relies on (it finds these by name):
 *   - map `coolbpf_losses`: a per-CPU array of loss counters, indexed by
 *     enum coolbpf_loss_slot. The core sums it over CPUs and reports each slot
 *     as `events_lost_total{source=...}`. Nothing is dropped silently: every
 *     helper below that can fail bumps its slot.
 *   - global `coolbpf_filter_tgid`: 0 traces everything, otherwise only that
 *     process (tgid). Set from userspace before load (it lives in .rodata, so
 *     the verifier prunes the dead branch).
 *   - struct coolbpf_log2_hist / coolbpf_linear_hist: histogram values that the
 *     core reads and sums over CPUs and keys.
 */
#ifndef COOLBPF_BPF_H
#define COOLBPF_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#ifndef COOLBPF_TASK_COMM_LEN
#define COOLBPF_TASK_COMM_LEN 16
#endif

/* ---- loss accounting ------------------------------------------------------ */

enum coolbpf_loss_slot {
	/* bpf_ringbuf_reserve() found no room: the event never reached userspace. */
	COOLBPF_LOSS_RINGBUF_RESERVE = 0,
	/* a hash map was full: an aggregation key could not be inserted. */
	COOLBPF_LOSS_MAP_FULL = 1,
	/* bpf_get_stack()/bpf_get_stackid() failed. */
	COOLBPF_LOSS_STACK = 2,
	/* bpf_probe_read*() of a payload failed (the event is sent, truncated). */
	COOLBPF_LOSS_READ = 3,
	/* bpf_perf_event_output() failed: the perf buffer was full. The kernel also
	 * reports these to userspace as lost samples, but only once room frees up, so
	 * this count is the exact one. */
	COOLBPF_LOSS_PERF_OUTPUT = 4,
	/* a user stack reached its frame limit with callers left: the sample is sent
	 * with the innermost frames only. */
	COOLBPF_LOSS_STACK_TRUNCATED = 5,
	/* the CFI unwinder took a frame-pointer step: no table covers the pc (a file
	 * without CFI, a process not registered yet, JIT code) or its rule is not
	 * followed. The frame may be right (code with frame pointers) or the walk ends. */
	COOLBPF_LOSS_UNWIND_FALLBACK = 6,
	/* a Python stack walk (python.bpf.h) stopped at its frame limit with frames left:
	 * the sample is sent with its innermost frames. */
	COOLBPF_LOSS_PYTHON_TRUNCATED = 7,
	/* a Python stack walk's user read faulted: the sample is sent with the frames read
	 * before it. */
	COOLBPF_LOSS_PYTHON_READ_FAULT = 8,
	COOLBPF_LOSS_SLOTS = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COOLBPF_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} coolbpf_losses SEC(".maps");

static __always_inline void coolbpf_count_loss(__u32 slot)
{
	__u64 *counter = bpf_map_lookup_elem(&coolbpf_losses, &slot);

	/* Atomic even though per-CPU: a preemptible tracing program can be
	 * interrupted by another one on the same CPU. */
	if (counter)
		__sync_fetch_and_add(counter, 1);
}

/* bpf_ringbuf_reserve() that counts its failures. */
static __always_inline void *coolbpf_ringbuf_reserve(void *ringbuf, __u64 size)
{
	void *event = bpf_ringbuf_reserve(ringbuf, size, 0);

	if (!event)
		coolbpf_count_loss(COOLBPF_LOSS_RINGBUF_RESERVE);
	return event;
}

/* bpf_perf_event_output() on the current CPU that counts its failures. */
static __always_inline long coolbpf_perf_output(void *ctx, void *perf_map, void *data, __u64 size)
{
	long err = bpf_perf_event_output(ctx, perf_map, BPF_F_CURRENT_CPU, data, size);

	if (err)
		coolbpf_count_loss(COOLBPF_LOSS_PERF_OUTPUT);
	return err;
}

/*
 * Looks `key` up in a hash map, inserting `init` first when absent.
 * Returns NULL (and counts a MAP_FULL loss) when the map has no room.
 */
static __always_inline void *coolbpf_lookup_or_init(void *map, const void *key, const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -17 /* EEXIST: another CPU inserted it first */) {
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(map, key);
}

/* ---- process filter and identity ------------------------------------------ */

const volatile __u32 coolbpf_filter_tgid = 0;

/* Returns the current tgid (the userspace pid) and whether it passes the filter. */
static __always_inline bool coolbpf_tgid_allowed(__u32 *tgid_out)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (tgid_out)
		*tgid_out = tgid;
	return coolbpf_filter_tgid == 0 || coolbpf_filter_tgid == tgid;
}

struct coolbpf_task {
	__u32 pid;  /* userspace pid (the kernel's tgid) */
	__u32 tid;  /* userspace thread id (the kernel's pid) */
	__u32 ppid; /* parent's tgid */
	__u32 uid;
	char comm[COOLBPF_TASK_COMM_LEN];
};

static __always_inline void coolbpf_fill_task(struct coolbpf_task *task)
{
	struct task_struct *current = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	task->pid = pid_tgid >> 32;
	task->tid = (__u32)pid_tgid;
	task->ppid = BPF_CORE_READ(current, real_parent, tgid);
	task->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(task->comm, sizeof(task->comm));
}

/* ---- histograms ------------------------------------------------------------ */

/* Slot 0 holds 0; slot i >= 1 holds [2^(i-1), 2^i - 1]: i is the bit length. */
#define COOLBPF_LOG2_SLOTS 65

struct coolbpf_log2_hist {
	__u64 slots[COOLBPF_LOG2_SLOTS];
	__u64 sum;
};

static __always_inline __u32 coolbpf_log2_slot(__u64 value)
{
	__u32 bits = 0;

	/* Branch-free bit length; the verifier accepts it without a loop. */
	if (value >> 32) { bits += 32; value >>= 32; }
	if (value >> 16) { bits += 16; value >>= 16; }
	if (value >> 8) { bits += 8; value >>= 8; }
	if (value >> 4) { bits += 4; value >>= 4; }
	if (value >> 2) { bits += 2; value >>= 2; }
	if (value >> 1) { bits += 1; value >>= 1; }
	return bits + (__u32)value;
}

/*
 * Clamps `slot` to `max` on the very register that will index the array. A plain C
 * `if (slot > max) slot = max;` is not enough: clang 14 may test one copy of the value and
 * index with another, and the verifier then rejects an "unbounded memory access".
 */
static __always_inline __u64 coolbpf_clamp_slot(__u64 slot, const __u64 max)
{
	asm volatile("if %0 <= %1 goto +1; %0 = %1" : "+r"(slot) : "i"(max));
	return slot;
}

/* Adds `count` values whose sum is `total` to a histogram several CPUs may update (a
 * shared map value). When only their sum is known (a kernel counter's delta), all land
 * in the slot of their mean. */
static __always_inline void coolbpf_log2_hist_add_many(struct coolbpf_log2_hist *hist, __u64 count,
						       __u64 total)
{
	/* Nearly always one (a constant for coolbpf_log2_hist_add): no division then. */
	__u64 mean = count == 1 ? total : total / count;
	__u64 slot = coolbpf_clamp_slot(coolbpf_log2_slot(mean), COOLBPF_LOG2_SLOTS - 1);

	__sync_fetch_and_add(&hist->slots[slot], count);
	__sync_fetch_and_add(&hist->sum, total);
}

/* Adds `value` to a histogram several CPUs may update. */
static __always_inline void coolbpf_log2_hist_add(struct coolbpf_log2_hist *hist, __u64 value)
{
	coolbpf_log2_hist_add_many(hist, 1, value);
}

/* coolbpf_log2_hist_add_many for a per-CPU histogram that only non-nesting programs on
 * this CPU update (sched_switch, irq handlers' entry/exit pairs): no atomics needed. */
static __always_inline void coolbpf_log2_hist_add_many_percpu(struct coolbpf_log2_hist *hist,
							      __u64 count, __u64 total)
{
	__u64 mean = count == 1 ? total : total / count;
	__u64 slot = coolbpf_clamp_slot(coolbpf_log2_slot(mean), COOLBPF_LOG2_SLOTS - 1);

	hist->slots[slot] += count;
	hist->sum += total;
}

/* Adds `value` to a per-CPU histogram (see coolbpf_log2_hist_add_many_percpu). */
static __always_inline void coolbpf_log2_hist_add_percpu(struct coolbpf_log2_hist *hist, __u64 value)
{
	coolbpf_log2_hist_add_many_percpu(hist, 1, value);
}

/* Linear histogram: slot i holds [min + i*step, min + (i+1)*step); the last slot
 * also holds everything above. Values below min land in slot 0. */
#ifndef COOLBPF_LINEAR_SLOTS
#define COOLBPF_LINEAR_SLOTS 100
#endif

struct coolbpf_linear_hist {
	__u64 slots[COOLBPF_LINEAR_SLOTS];
	__u64 sum;
};

static __always_inline void coolbpf_linear_hist_add(struct coolbpf_linear_hist *hist, __u64 value,
						    __u64 min, __u64 step)
{
	__u64 slot = coolbpf_clamp_slot(value > min && step ? (value - min) / step : 0,
					 COOLBPF_LINEAR_SLOTS - 1);

	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->sum, value);
}

#endif /* COOLBPF_BPF_H */
