/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * python.bpf.h: the CPython (3.10 to 3.13) frames of the current thread, read from the
 * interpreter's own state at sample time, for every probe that takes stacks (profile,
 * offcpu, GPU calls). Include it after coolbpf.bpf.h.
 *
 * Userspace (coolbpf-probes' stacks::python, from coolbpf_symbolize::python) fills
 * `coolbpf_python_procs`: per process (tgid), where `_PyRuntime` is and the structure
 * offsets of its CPython version. A process not in the map walks nothing (one lookup).
 *
 * The walk never depends on the program's context (no pt_regs, no perf_event data): it
 * works the same from perf_event, tp_btf (sched_switch), raw_tp and uprobes, on the
 * current task. Its cost is one hash lookup for a process without Python, and for one
 * with Python a cached thread-state check plus one 128-byte user read per frame.
 *
 * Losses: a walk that stops at `max` frames with frames left counts
 * COOLBPF_LOSS_PYTHON_TRUNCATED; a user read that faults (the interpreter changed the
 * chain under us, or a page is not resident) counts COOLBPF_LOSS_PYTHON_READ_FAULT and
 * keeps the frames read so far.
 */
#ifndef COOLBPF_PYTHON_BPF_H
#define COOLBPF_PYTHON_BPF_H

/* The most frames one walk captures (a power of two: indexes are masked with it). */
#define COOLBPF_PYTHON_MAX_FRAMES 128
/* Thread states examined to find the current thread's (all interpreters together). */
#define COOLBPF_PYTHON_MAX_THREADS 1024
/* Bytes of a frame read at once: every field the walk needs lies in them, for every
 * version (3.10's f_lasti is the farthest, at 96). */
#define COOLBPF_PYTHON_FRAME_BYTES 128
/* An offset a version lacks. */
#define COOLBPF_PYTHON_ABSENT 0xffffffffu
/* `_PyInterpreterFrame.owner` of a shim frame owned by the C stack (3.12+). */
#define COOLBPF_PYTHON_OWNED_BY_CSTACK 3
/* coolbpf_python_frame.flags: the frame was entered from C (an evaluation loop call's
 * first frame). */
#define COOLBPF_PYTHON_FRAME_ENTRY 1u

/* One captured frame; the layout is decoded by coolbpf-probes (stacks/python.rs). */
struct coolbpf_python_frame {
	__u64 code;   /* PyCodeObject address */
	__u32 offset; /* byte offset of the instruction in the bytecode; ~0u unknown */
	__u32 flags;  /* COOLBPF_PYTHON_FRAME_* */
};

/* Per process: filled by userspace (stacks/python.rs writes this layout). Offsets are
 * those of coolbpf_symbolize::python::Offsets, COOLBPF_PYTHON_ABSENT where absent. */
struct coolbpf_python_config {
	__u64 runtime; /* address of _PyRuntime */
	__u32 version; /* the minor version: 10 to 13 */
	__u32 runtime_interpreters_head;
	__u32 interp_next;
	__u32 interp_threads_head;
	__u32 tstate_next;
	__u32 tstate_thread_id;
	__u32 tstate_frame;
	__u32 cframe_current_frame;
	__u32 frame_previous;
	__u32 frame_code;
	__u32 frame_instr;
	__u32 frame_owner;
	__u32 frame_is_entry;
	__u32 code_bytecode;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct coolbpf_python_config);
} coolbpf_python_procs SEC(".maps");

/* Thread (kernel pid) -> its PyThreadState, found once and checked at each use. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} coolbpf_python_threads SEC(".maps");

struct coolbpf_python_scratch {
	__u8 frame[COOLBPF_PYTHON_FRAME_BYTES];
	struct coolbpf_python_frame frames[COOLBPF_PYTHON_MAX_FRAMES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct coolbpf_python_scratch);
} coolbpf_python_scratch SEC(".maps");

/* A pointer-sized user read; 0 (and *fault set) when it faults. */
static __always_inline __u64 coolbpf_python_read_ptr(__u64 addr, __u8 *fault)
{
	__u64 value = 0;

	if (bpf_probe_read_user(&value, sizeof(value), (const void *)addr)) {
		*fault = 1;
		return 0;
	}
	return value;
}

/* The thread pointer of the current task: pthread_self() of the thread, which CPython
 * stores as PyThreadState.thread_id. */
static __always_inline __u64 coolbpf_python_thread_pointer(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(task, thread.fsbase);
#elif defined(__TARGET_ARCH_arm64)
	return BPF_CORE_READ(task, thread.uw.tp_value);
#else
	return 0;
#endif
}

struct coolbpf_python_find {
	const struct coolbpf_python_config *config;
	__u64 thread_pointer;
	__u64 interp;
	__u64 tstate;
	bool found;
	__u8 fault; /* 0 or 1 (a callback's return value: the verifier wants it bounded) */
};

/* One step of the thread-state search: the next thread state of the interpreter, or the
 * next interpreter's first. */
static long coolbpf_python_find_step(__u64 index, void *arg)
{
	struct coolbpf_python_find *f = arg;
	const struct coolbpf_python_config *c = f->config;

	if (!f->tstate) {
		if (!f->interp)
			return 1;
		f->interp = coolbpf_python_read_ptr(f->interp + c->interp_next, &f->fault);
		if (!f->interp)
			return 1;
		f->tstate = coolbpf_python_read_ptr(f->interp + c->interp_threads_head, &f->fault);
		return f->fault & 1;
	}
	if (coolbpf_python_read_ptr(f->tstate + c->tstate_thread_id, &f->fault) ==
	    f->thread_pointer) {
		f->found = true;
		return 1;
	}
	f->tstate = coolbpf_python_read_ptr(f->tstate + c->tstate_next, &f->fault);
	return f->fault & 1;
}

/*
 * The current thread's PyThreadState, 0 when it has none (a thread that never ran
 * Python) or on a fault.
 *
 * Why match PyThreadState.thread_id against the thread pointer (the fs base on x86_64):
 * thread_id is pthread_self() of the thread the state belongs to, in every version
 * 3.10 to 3.13, and pthread_self() is the thread pointer in glibc and musl. It does not
 * depend on pid namespaces (native_thread_id, 3.11+ only, is the tid in the process's
 * namespace, which differs from the kernel's tid inside containers), and unlike the
 * GIL holder (gilstate.tstate_current, gone in 3.12) it finds threads that are off-CPU
 * or waiting for the GIL, which offcpu needs. The search walks every interpreter's
 * thread list once per thread; the result is cached per tid and re-checked (one read)
 * at each use, so a thread state freed and reused is never trusted.
 */
static __always_inline __u64 coolbpf_python_tstate(const struct coolbpf_python_config *c,
						   __u32 tid, __u8 *fault)
{
	struct coolbpf_python_find f = {};
	__u64 *cached = bpf_map_lookup_elem(&coolbpf_python_threads, &tid);

	f.thread_pointer = coolbpf_python_thread_pointer();
	if (!f.thread_pointer)
		return 0;
	if (cached && *cached &&
	    coolbpf_python_read_ptr(*cached + c->tstate_thread_id, fault) == f.thread_pointer)
		return *cached;
	*fault = 0;
	f.config = c;
	f.interp = coolbpf_python_read_ptr(c->runtime + c->runtime_interpreters_head, &f.fault);
	if (f.interp)
		f.tstate = coolbpf_python_read_ptr(f.interp + c->interp_threads_head, &f.fault);
	if (!f.fault)
		bpf_loop(COOLBPF_PYTHON_MAX_THREADS, coolbpf_python_find_step, &f, 0);
	*fault = f.fault;
	if (!f.found)
		return 0;
	bpf_map_update_elem(&coolbpf_python_threads, &tid, &f.tstate, BPF_ANY);
	return f.tstate;
}

struct coolbpf_python_walk_state {
	const struct coolbpf_python_config *config;
	struct coolbpf_python_scratch *scratch;
	__u64 frame;
	__u32 count;
	__u32 max;
	__u8 fault;
};

/* A field of the frame read into scratch->frame, by offset (bounded for the verifier). */
static __always_inline __u64 coolbpf_python_field64(const struct coolbpf_python_scratch *s,
						    __u32 offset)
{
	offset &= COOLBPF_PYTHON_FRAME_BYTES - 1;
	if (offset > COOLBPF_PYTHON_FRAME_BYTES - 8)
		return 0;
	return *(const __u64 *)(s->frame + offset);
}

static __always_inline __u8 coolbpf_python_field8(const struct coolbpf_python_scratch *s,
						  __u32 offset)
{
	return s->frame[offset & (COOLBPF_PYTHON_FRAME_BYTES - 1)];
}

/* One frame: read it, record it (or, for a 3.12+ shim, mark the frame inside it as
 * the entry frame), move to its caller. */
static long coolbpf_python_walk_step(__u64 index, void *arg)
{
	struct coolbpf_python_walk_state *w = arg;
	const struct coolbpf_python_config *c = w->config;
	struct coolbpf_python_scratch *s = w->scratch;
	struct coolbpf_python_frame *out;
	__u64 code, instr;
	__u32 offset, flags = 0;

	if (!w->frame || w->count >= w->max)
		return 1;
	if (bpf_probe_read_user(s->frame, sizeof(s->frame), (const void *)w->frame)) {
		w->fault = 1;
		return 1;
	}
	code = coolbpf_python_field64(s, c->frame_code);
	w->frame = coolbpf_python_field64(s, c->frame_previous);
	if (c->version == 10) {
		/* f_lasti counts code units, -1 before the first; every frame object runs in
		 * its own evaluation loop call. */
		__s32 lasti = (__s32)coolbpf_python_field64(s, c->frame_instr);

		offset = lasti < 0 ? ~0u : (__u32)lasti * 2;
		flags = COOLBPF_PYTHON_FRAME_ENTRY;
	} else {
		if (c->version >= 12 &&
		    coolbpf_python_field8(s, c->frame_owner) == COOLBPF_PYTHON_OWNED_BY_CSTACK) {
			if (w->count > 0)
				s->frames[(w->count - 1) & (COOLBPF_PYTHON_MAX_FRAMES - 1)].flags |=
					COOLBPF_PYTHON_FRAME_ENTRY;
			return 0;
		}
		if (c->version == 11 && coolbpf_python_field8(s, c->frame_is_entry))
			flags = COOLBPF_PYTHON_FRAME_ENTRY;
		instr = coolbpf_python_field64(s, c->frame_instr);
		/* 3.11/3.12 point one code unit before the start in a frame that has not run
		 * its first instruction: unknown, like an implausible distance. */
		instr -= code + c->code_bytecode;
		offset = instr > 0x7fffffff ? ~0u : (__u32)instr;
	}
	out = &s->frames[w->count & (COOLBPF_PYTHON_MAX_FRAMES - 1)];
	out->code = code;
	out->offset = offset;
	out->flags = flags;
	w->count++;
	return 0;
}

/*
 * Walks the current thread's Python stack (if process `tgid` is registered and the
 * thread `tid`, the kernel's pid of the current task, runs Python) into `out`, innermost
 * first, at most `max` frames (a constant, at most COOLBPF_PYTHON_MAX_FRAMES; `out` must
 * have room for `max` frames). Returns the number of frames written.
 *
 * 3.10: tstate->frame, then PyFrameObject.f_back, f_code, f_lasti. 3.11 and 3.12:
 * tstate->cframe->current_frame, then _PyInterpreterFrame.previous, f_code, prev_instr,
 * with is_entry (3.11) or the shim frames owned by the C stack (3.12, skipped) telling
 * the entry frames. 3.13: tstate->current_frame, f_executable, instr_ptr, shims as 3.12.
 */
static __always_inline __u32 coolbpf_python_walk(__u32 tgid, __u32 tid,
						  struct coolbpf_python_frame *out, __u32 max)
{
	const struct coolbpf_python_config *c = bpf_map_lookup_elem(&coolbpf_python_procs, &tgid);
	struct coolbpf_python_walk_state w = {};
	__u32 zero = 0;
	__u64 tstate, frame;
	__u8 fault = 0;

	if (!c)
		return 0;
	w.scratch = bpf_map_lookup_elem(&coolbpf_python_scratch, &zero);
	if (!w.scratch)
		return 0;
	tstate = coolbpf_python_tstate(c, tid, &fault);
	if (!tstate) {
		if (fault)
			coolbpf_count_loss(COOLBPF_LOSS_PYTHON_READ_FAULT);
		return 0;
	}
	frame = coolbpf_python_read_ptr(tstate + c->tstate_frame, &fault);
	if (frame && (c->version == 11 || c->version == 12))
		frame = coolbpf_python_read_ptr(frame + c->cframe_current_frame, &fault);
	if (fault) {
		coolbpf_count_loss(COOLBPF_LOSS_PYTHON_READ_FAULT);
		return 0;
	}
	w.config = c;
	w.frame = frame;
	w.max = max > COOLBPF_PYTHON_MAX_FRAMES ? COOLBPF_PYTHON_MAX_FRAMES : max;
	/* Shim frames take a step each without a frame: room for one per frame. */
	bpf_loop(2 * COOLBPF_PYTHON_MAX_FRAMES, coolbpf_python_walk_step, &w, 0);
	if (w.fault)
		coolbpf_count_loss(COOLBPF_LOSS_PYTHON_READ_FAULT);
	else if (w.frame)
		coolbpf_count_loss(COOLBPF_LOSS_PYTHON_TRUNCATED);
	if (w.count > COOLBPF_PYTHON_MAX_FRAMES)
		w.count = COOLBPF_PYTHON_MAX_FRAMES;
	if (w.count > max)
		w.count = max;
	if (w.count && bpf_probe_read_kernel(out, w.count * sizeof(struct coolbpf_python_frame),
					     w.scratch->frames))
		return 0;
	return w.count;
}

#endif /* COOLBPF_PYTHON_BPF_H */
