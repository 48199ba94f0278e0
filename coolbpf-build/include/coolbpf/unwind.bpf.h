/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * unwind.bpf.h: user-stack unwinding from CFI tables, for code without frame pointers.
 *
 * Userspace (coolbpf-probes' `stacks::NativeUnwinder`) compiles each executable file's
 * .eh_frame/.debug_frame into rows (coolbpf_symbolize::unwind::CompactRow, 8 bytes: the
 * layout below must match), appends each file's rows once to `coolbpf_unwind_rows`, and
 * writes one `coolbpf_unwind_processes` entry per registered process: its executable
 * mappings sorted by start, each with the load bias and the file's slice of rows.
 *
 * coolbpf_unwind_user() walks the stack frame by frame (bpf_loop): it finds the mapping
 * of the pc (binary search), the row covering it (binary search), computes the CFA from
 * rsp or rbp, reads the return address at CFA-8 and the saved rbp where the row says.
 * Where no table covers the pc, or the row is unsupported, it takes one frame-pointer
 * step and counts COOLBPF_LOSS_UNWIND_FALLBACK. A read that faults ends the walk and
 * counts COOLBPF_LOSS_READ; a stack with callers left at `max` frames counts
 * COOLBPF_LOSS_STACK_TRUNCATED.
 *
 * Use from any program (perf_event, tracepoints, uprobes):
 *
 *     #include "coolbpf/unwind.bpf.h"
 *     struct pt_regs *regs = coolbpf_user_regs();   // NULL for kernel threads
 *     __u32 n = regs ? coolbpf_unwind_user(regs, buf, 127) : 0;
 *
 * `buf` must have room for `max` u64s (max <= COOLBPF_UNWIND_MAX_FRAMES).
 */
#ifndef COOLBPF_UNWIND_BPF_H
#define COOLBPF_UNWIND_BPF_H

#include "coolbpf/coolbpf.bpf.h"

/* Frames one walk takes at most. */
#define COOLBPF_UNWIND_MAX_FRAMES 127
/* Executable mappings per process (a power of two: indexes are masked with it - 1). */
#define COOLBPF_UNWIND_MAX_MAPPINGS 128
/* Binary-search steps: 2^7 = 128 mappings, 2^25 rows (more than any rows map). */
#define COOLBPF_UNWIND_MAPPING_STEPS 8
#define COOLBPF_UNWIND_ROW_STEPS 25

/* CFA kinds (low nibble of kinds) and rbp kinds (high nibble). */
#define COOLBPF_UNWIND_CFA_NO_INFO 0
#define COOLBPF_UNWIND_CFA_RSP 1
#define COOLBPF_UNWIND_CFA_RBP 2
#define COOLBPF_UNWIND_CFA_PLT 3
#define COOLBPF_UNWIND_CFA_UNDEFINED 4
#define COOLBPF_UNWIND_CFA_UNSUPPORTED 5
#define COOLBPF_UNWIND_RBP_UNCHANGED 0
#define COOLBPF_UNWIND_RBP_CFA_OFFSET 1
#define COOLBPF_UNWIND_RBP_UNSUPPORTED 2

struct coolbpf_unwind_row {
	__u32 pc;         /* offset from the mapping's bias + table base */
	__u16 cfa_offset; /* added to rsp or rbp */
	__u8 kinds;       /* CFA kind | rbp kind << 4 */
	__s8 rbp_offset;  /* the caller's rbp is at CFA + 8 * this */
};

struct coolbpf_unwind_mapping {
	__u64 start;      /* runtime addresses [start, end) */
	__u64 end;
	__u64 bias;       /* runtime address - row pc offset (load bias + table base) */
	__u32 first_row;  /* index into coolbpf_unwind_rows */
	__u32 row_count;
};

struct coolbpf_unwind_process {
	__u32 count;      /* mappings used, sorted by start */
	__u32 generation; /* changes when the mappings do (keys the row cache) */
	struct coolbpf_unwind_mapping mappings[COOLBPF_UNWIND_MAX_MAPPINGS];
};

/* Sized by userspace before load (max_entries): the default suits a profiler of a few
 * large processes (8 MiB). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 20);
	__type(key, __u32);
	__type(value, struct coolbpf_unwind_row);
} coolbpf_unwind_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tgid */
	__type(value, struct coolbpf_unwind_process);
} coolbpf_unwind_processes SEC(".maps");

/* Processes that were unwound without an entry in coolbpf_unwind_processes: tgid -> when
 * first seen. Userspace (stacks::ProcessStacks) registers them and deletes them from here,
 * so a process started after the probe gets its tables within a poll (100 ms) of its
 * first stack, whatever hook saw it first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} coolbpf_unwind_wanted SEC(".maps");

/* The row found for a pc of a process, so that a pc seen again (a hot loop, a call site
 * launched from a million times) costs one hash lookup instead of two binary searches.
 * Keyed by the process's mappings generation: a registration that changes them makes
 * the old entries unreachable (the LRU ages them out). A pc with no row (no mapping, no
 * table) is cached too, as a NO_INFO row. */
struct coolbpf_unwind_cache_key {
	__u32 tgid;
	__u32 generation;
	__u64 pc;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct coolbpf_unwind_cache_key);
	__type(value, struct coolbpf_unwind_row);
} coolbpf_unwind_row_cache SEC(".maps");

/* In front of the row cache, per CPU: the row last used at each frame depth. A call site
 * walked again and again (a loop of launches, a hot function sampled) finds its frames'
 * rows here with an inlined array access and a compare, no hash. `check` ties the other
 * words together: an entry half-written when another program on this CPU interrupted the
 * write does not validate, and the walk takes the row cache instead. */
#define COOLBPF_UNWIND_HOT_DEPTHS 32

struct coolbpf_unwind_hot {
	__u64 pc;
	__u64 tag; /* tgid << 32 | mappings generation */
	__u64 row; /* struct coolbpf_unwind_row, as one word */
	__u64 check;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COOLBPF_UNWIND_HOT_DEPTHS);
	__type(key, __u32);
	__type(value, struct coolbpf_unwind_hot);
} coolbpf_unwind_hot SEC(".maps");

static __always_inline __u64 coolbpf_unwind_hot_check(__u64 pc, __u64 tag, __u64 row)
{
	return (pc ^ (tag * 0x9e3779b97f4a7c15ULL) ^ (row * 0xc2b2ae3d27d4eb4fULL)) | 1;
}

/* A walked stack: `nr` instruction pointers, innermost first. The stack store
 * (coolbpf/stackstore.bpf.h) keeps this very layout, so a walk is stored without a copy. */
struct coolbpf_unwind_frames {
	__u32 nr;
	__u32 pad;
	__u64 ips[COOLBPF_UNWIND_MAX_FRAMES + 1];
};

/* Where a walk puts its frames before they are copied to the caller's buffer. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct coolbpf_unwind_frames);
} coolbpf_unwind_scratch SEC(".maps");

/* The walk's state, shared with the bpf_loop callback. */
struct coolbpf_unwind_state {
	__u64 ip, sp, bp;
	struct coolbpf_unwind_process *process; /* NULL: frame pointers only */
	struct coolbpf_unwind_frames *frames;
	__u32 count;
	__u32 max;
	__u32 tgid;
	__u8 bp_known;
};

/* The user registers of the current task: the ones saved on kernel entry, right whether
 * the sample interrupted user or kernel mode. NULL for kernel threads (no user stack). */
static __always_inline struct pt_regs *coolbpf_user_regs(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!task->mm || (task->flags & 0x00200000 /* PF_KTHREAD */))
		return NULL;
	return (struct pt_regs *)bpf_task_pt_regs(task);
}

/* A binary search's state: lo ends at the last entry whose start is <= key. Each step
 * is one bpf_loop iteration, so the verifier checks a step once, not every path
 * through a loop of them. */
struct coolbpf_unwind_search {
	__u64 key;
	struct coolbpf_unwind_process *process;
	__u32 lo, hi;  /* entries [lo, hi); invariant: start(lo) <= key < start(hi) */
	__u8 failed;
};

static long coolbpf_unwind_mapping_step(__u64 index, void *ctx)
{
	struct coolbpf_unwind_search *s = ctx;
	__u32 mid;

	if (!s->process || s->hi - s->lo <= 1)
		return 1;
	mid = s->lo + (s->hi - s->lo) / 2;
	if (s->key < s->process->mappings[mid & (COOLBPF_UNWIND_MAX_MAPPINGS - 1)].start)
		s->hi = mid;
	else
		s->lo = mid;
	return 0;
}

static long coolbpf_unwind_row_step(__u64 index, void *ctx)
{
	struct coolbpf_unwind_search *s = ctx;
	struct coolbpf_unwind_row *row;
	__u32 mid;

	if (s->hi - s->lo <= 1)
		return 1;
	mid = s->lo + (s->hi - s->lo) / 2;
	row = bpf_map_lookup_elem(&coolbpf_unwind_rows, &mid);
	if (!row) {
		s->failed = 1;
		return 1;
	}
	if (row->pc <= s->key)
		s->lo = mid;
	else
		s->hi = mid;
	return 0;
}

/* The mapping of `pc` among the process's, or NULL. */
static __always_inline struct coolbpf_unwind_mapping *
coolbpf_unwind_find_mapping(struct coolbpf_unwind_process *process, __u64 pc)
{
	struct coolbpf_unwind_search s = { .key = pc, .process = process, .hi = process->count };
	struct coolbpf_unwind_mapping *m;

	if (s.hi > COOLBPF_UNWIND_MAX_MAPPINGS)
		s.hi = COOLBPF_UNWIND_MAX_MAPPINGS;
	if (!s.hi)
		return NULL;
	bpf_loop(COOLBPF_UNWIND_MAPPING_STEPS, coolbpf_unwind_mapping_step, &s, 0);
	m = &process->mappings[s.lo & (COOLBPF_UNWIND_MAX_MAPPINGS - 1)];
	return m->start <= pc && pc < m->end ? m : NULL;
}

/* The row covering `pc` in mapping `m`, or NULL (no rows, or pc outside them). */
static __always_inline struct coolbpf_unwind_row *
coolbpf_unwind_find_row(struct coolbpf_unwind_mapping *m, __u64 pc)
{
	struct coolbpf_unwind_search s = { .key = pc - m->bias };
	struct coolbpf_unwind_row *row;

	if (!m->row_count || pc < m->bias || s.key > 0xffffffffULL)
		return NULL;
	s.lo = m->first_row;
	s.hi = m->first_row + m->row_count;
	bpf_loop(COOLBPF_UNWIND_ROW_STEPS, coolbpf_unwind_row_step, &s, 0);
	if (s.failed)
		return NULL;
	row = bpf_map_lookup_elem(&coolbpf_unwind_rows, &s.lo);
	return row && row->pc <= s.key ? row : NULL;
}

/* Reads a u64 of user memory; false (and a READ loss) on a fault. */
static __always_inline bool coolbpf_unwind_read(__u64 *out, __u64 addr)
{
	if (bpf_probe_read_user(out, sizeof(*out), (void *)addr)) {
		coolbpf_count_loss(COOLBPF_LOSS_READ);
		return false;
	}
	return true;
}

/* Reads two adjacent u64s of user memory in one read (a frame's saved rbp and return
 * address sit side by side in most frames); false (and a READ loss) on a fault. */
static __always_inline bool coolbpf_unwind_read2(__u64 *low, __u64 *high, __u64 addr)
{
	__u64 words[2];

	if (bpf_probe_read_user(words, sizeof(words), (void *)addr)) {
		coolbpf_count_loss(COOLBPF_LOSS_READ);
		return false;
	}
	*low = words[0];
	*high = words[1];
	return true;
}

/* One frame: record the pc, find the caller. Returns 1 to end the walk. */
static long coolbpf_unwind_frame(__u64 index, void *ctx)
{
	struct coolbpf_unwind_state *st = ctx;
	struct coolbpf_unwind_mapping *m = NULL;
	struct coolbpf_unwind_row *row = NULL;
	struct coolbpf_unwind_frames *frames = st->frames;
	/* The frame number is bpf_loop's index, which the verifier takes as any value below
	 * the loop count: a counter kept in `st` would be an exact constant per iteration,
	 * and the verifier would walk all 128 iterations (through the nested searches)
	 * instead of checking the callback once. */
	__u64 n = index, cfa = 0, ra, bp = st->bp, lookup;
	__u8 kind = COOLBPF_UNWIND_CFA_NO_INFO, rbp_kind = COOLBPF_UNWIND_RBP_UNSUPPORTED;
	struct coolbpf_unwind_row hot_row = {};

	if (!frames)
		return 1;
	if (n >= st->max) {
		/* The previous step found a caller that does not fit. */
		coolbpf_count_loss(COOLBPF_LOSS_STACK_TRUNCATED);
		return 1;
	}
	frames->ips[coolbpf_clamp_slot(n, COOLBPF_UNWIND_MAX_FRAMES)] = st->ip;
	st->count = n + 1;

	/* A caller's return address may be just past its function (a call as the last
	 * instruction): its row is the one of the call itself. */
	lookup = n ? st->ip - 1 : st->ip;
	if (st->process) {
		__u32 depth = n & (COOLBPF_UNWIND_HOT_DEPTHS - 1);
		__u64 tag = ((__u64)st->tgid << 32) | st->process->generation;
		struct coolbpf_unwind_hot *hot = bpf_map_lookup_elem(&coolbpf_unwind_hot, &depth);

		if (hot && hot->pc == lookup && hot->tag == tag &&
		    hot->check == coolbpf_unwind_hot_check(lookup, tag, hot->row)) {
			__builtin_memcpy(&hot_row, &hot->row, sizeof(hot_row));
			row = &hot_row;
		} else {
			struct coolbpf_unwind_cache_key key = {
				.tgid = st->tgid,
				.generation = st->process->generation,
				.pc = lookup,
			};
			struct coolbpf_unwind_row none = {};
			__u64 word;

			row = bpf_map_lookup_elem(&coolbpf_unwind_row_cache, &key);
			if (!row) {
				m = coolbpf_unwind_find_mapping(st->process, lookup);
				if (m)
					row = coolbpf_unwind_find_row(m, lookup);
				bpf_map_update_elem(&coolbpf_unwind_row_cache, &key,
						    row ? row : &none, BPF_ANY);
			}
			__builtin_memcpy(&hot_row, row ? row : &none, sizeof(hot_row));
			row = &hot_row;
			if (hot) {
				__builtin_memcpy(&word, &hot_row, sizeof(word));
				hot->check = 0;
				hot->pc = lookup;
				hot->tag = tag;
				hot->row = word;
				hot->check = coolbpf_unwind_hot_check(lookup, tag, word);
			}
		}
	}
	if (row) {
		kind = row->kinds & 0xf;
		rbp_kind = row->kinds >> 4;
	}
	switch (kind) {
	case COOLBPF_UNWIND_CFA_UNDEFINED:
		return 1; /* the outermost frame */
	case COOLBPF_UNWIND_CFA_RSP:
		cfa = st->sp + row->cfa_offset;
		break;
	case COOLBPF_UNWIND_CFA_RBP:
		if (st->bp_known)
			cfa = st->bp + row->cfa_offset;
		break;
	case COOLBPF_UNWIND_CFA_PLT:
		cfa = st->sp + 8 + ((st->ip & 15) >= 11 ? 8 : 0);
		break;
	default:
		break;
	}
	if (cfa && rbp_kind == COOLBPF_UNWIND_RBP_CFA_OFFSET && row->rbp_offset == -2) {
		/* `push rbp` first thing: rbp at CFA-16, beside the return address. */
		if (!coolbpf_unwind_read2(&bp, &ra, cfa - 16))
			return 1;
	} else if (cfa) {
		if (!coolbpf_unwind_read(&ra, cfa - 8))
			return 1;
		if (rbp_kind == COOLBPF_UNWIND_RBP_CFA_OFFSET) {
			if (!coolbpf_unwind_read(&bp, cfa + 8 * (__s64)row->rbp_offset))
				return 1;
		} else if (rbp_kind == COOLBPF_UNWIND_RBP_UNSUPPORTED) {
			st->bp_known = 0;
		}
	} else {
		/* One frame-pointer step: [rbp] = caller's rbp, [rbp + 8] = return address. */
		coolbpf_count_loss(COOLBPF_LOSS_UNWIND_FALLBACK);
		if (!st->bp_known || !st->bp)
			return 1;
		if (!coolbpf_unwind_read2(&bp, &ra, st->bp))
			return 1;
		cfa = st->bp + 16;
		st->bp_known = 1;
	}
	/* The stack grows down: a caller's frame is above. Anything else would loop. */
	if (!ra || cfa <= st->sp)
		return 1;
	st->ip = ra;
	st->sp = cfa;
	st->bp = bp;
	return 0;
}

/* Walks the user stack of the current task, of process `tgid`, from `regs` into this
 * CPU's scratch frames and returns them (`nr` set; at most `max` <=
 * COOLBPF_UNWIND_MAX_FRAMES), or NULL. Valid until the next walk on this CPU. */
static __always_inline struct coolbpf_unwind_frames *
coolbpf_unwind_user_frames_of(struct pt_regs *regs, __u32 max, __u32 tgid)
{
	__u32 zero = 0;
	struct coolbpf_unwind_state st = {};

	if (max > COOLBPF_UNWIND_MAX_FRAMES)
		max = COOLBPF_UNWIND_MAX_FRAMES;
	st.frames = bpf_map_lookup_elem(&coolbpf_unwind_scratch, &zero);
	if (!st.frames)
		return NULL;
	st.frames->nr = 0;
	if (!regs)
		return st.frames;
	/* Direct loads (a uprobe's ctx, or the task's pt_regs from bpf_task_pt_regs, a BTF
	 * pointer): no helper call per register. */
	st.ip = regs->ip;
	st.sp = regs->sp;
	st.bp = regs->bp;
	st.bp_known = 1;
	st.max = max;
	st.tgid = tgid;
	st.process = bpf_map_lookup_elem(&coolbpf_unwind_processes, &tgid);
	if (!st.process) {
		__u64 now = bpf_ktime_get_ns();

		/* Fails (EEXIST) once asked: one map operation per unregistered stack. */
		bpf_map_update_elem(&coolbpf_unwind_wanted, &tgid, &now, BPF_NOEXIST);
	}
	if (!st.ip)
		return st.frames;
	/* One iteration more than max: the last only notices that a caller was left. */
	bpf_loop(max + 1, coolbpf_unwind_frame, &st, 0);
	st.frames->nr = st.count > max ? max : st.count;
	return st.frames;
}

/* coolbpf_unwind_user_frames_of() for the current process. */
static __always_inline struct coolbpf_unwind_frames *coolbpf_unwind_user_frames(struct pt_regs *regs,
										  __u32 max)
{
	return coolbpf_unwind_user_frames_of(regs, max, bpf_get_current_pid_tgid() >> 32);
}

/* Walks the user stack from `regs` into `ips` (room for `max` u64s, max <=
 * COOLBPF_UNWIND_MAX_FRAMES), innermost first; returns the frame count. */
static __always_inline __u32 coolbpf_unwind_user(struct pt_regs *regs, __u64 *ips, __u32 max)
{
	struct coolbpf_unwind_frames *frames = coolbpf_unwind_user_frames(regs, max);
	__u64 bytes;

	if (!frames)
		return 0;
	bytes = coolbpf_clamp_slot((__u64)frames->nr * 8, COOLBPF_UNWIND_MAX_FRAMES * 8);
	if (bytes && bpf_probe_read_kernel(ips, bytes, frames->ips))
		return 0;
	return bytes / 8;
}

/* The current user stack (of process `tgid`) in this CPU's scratch frames: walked by CFI
 * from `regs` when
 * `cfi`, else by frame pointers with bpf_get_stack(ctx) (failures other than "no user
 * stack" counted as STACK losses). NULL only without scratch. */
static __always_inline struct coolbpf_unwind_frames *
coolbpf_user_stack_of(void *ctx, struct pt_regs *regs, bool cfi, __u32 tgid)
{
	struct coolbpf_unwind_frames *frames;
	__u32 zero = 0;
	long bytes;

	if (cfi)
		return coolbpf_unwind_user_frames_of(regs, COOLBPF_UNWIND_MAX_FRAMES, tgid);
	frames = bpf_map_lookup_elem(&coolbpf_unwind_scratch, &zero);
	if (!frames)
		return NULL;
	bytes = bpf_get_stack(ctx, frames->ips, COOLBPF_UNWIND_MAX_FRAMES * sizeof(__u64),
			      BPF_F_USER_STACK);
	if (bytes < 0 && bytes != -14 /* EFAULT: no user stack */)
		coolbpf_count_loss(COOLBPF_LOSS_STACK);
	frames->nr = bytes > 0 ? (__u64)bytes / 8 : 0;
	return frames;
}

/* coolbpf_user_stack_of() for the current process. */
static __always_inline struct coolbpf_unwind_frames *coolbpf_user_stack(void *ctx, struct pt_regs *regs,
									 bool cfi)
{
	return coolbpf_user_stack_of(ctx, regs, cfi, bpf_get_current_pid_tgid() >> 32);
}

#endif /* COOLBPF_UNWIND_BPF_H */
