// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* calls: calls into CUDA libraries (libcudart, libcuda, libnccl) and any other function
 * userspace asks to watch, traced by uprobes.
 *
 * Two programs serve every function: userspace attaches `call_entry` (and, unless the
 * function is entry-only, `call_return`) to each one with an attach cookie saying which
 * function it is and what to capture (CALL_* below). The programs know no CUDA: they
 * capture the raw argument registers and the first stack arguments, and userspace
 * decodes them per function (dim3 by value, cudaStream_t on the stack, ...).
 *
 *  - launches (CALL_AGGREGATE) are counted in the kernel, as bpftrace's
 *    `@[ustack] = count()` would: by (pid, function, what is launched, caller, user stack
 *    id) in `launches`, and the last few per process in `recent`; they are sent too only
 *    when userspace asks for every call (CALL_SEND). A launch is the hottest call there
 *    is, and a record through the ring buffer costs several times the uprobe itself;
 *  - other entry-only functions are sent at entry;
 *  - the others are kept in `inflight` (by thread and function) until they return, then
 *    sent once with the return value and the time spent. What stays in `inflight` is a
 *    call that has not returned: the hang watchdog reads it from there.
 *
 * User stacks: by the stacks layer's CFI unwinder (coolbpf/unwind.bpf.h) when
 * `unwind_cfi` is set, which also knows that at a function's first instruction the return
 * address is at the stack pointer; launch stacks are kept by content in the stack store
 * (coolbpf/stackstore.bpf.h). By frame pointers otherwise: then, at a function's first
 * instruction the frame pointer is still the caller's, so the walk skips the immediate
 * caller. Kernels since 6.11 notice a uprobe at a function's entry and add the return
 * address themselves; older ones do not. So the record carries the word at the stack
 * pointer (`caller`) beside the walk, and userspace inserts it when the walk lacks it. */
#include "coolbpf/coolbpf.bpf.h"
#include "coolbpf/unwind.bpf.h"
#include "coolbpf/stackstore.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CALL_MAX_ARGS 11 /* rdi rsi rdx rcx r8 r9, then 5 words above the return address */
#define CALL_MAX_STACK 127
#define CALL_NAME_LEN 256

/* Cookie: bits 0-15 the function's index in userspace's table, then these flags. */
#define CALL_STACK (1ULL << 16)      /* capture the caller's user stack */
#define CALL_ENTRY_ONLY (1ULL << 17) /* send at entry; no return probe */
#define CALL_DEREF_ARG0 (1ULL << 18) /* at return, read the u64 arg0 points to */
#define CALL_BLOB_ARG0 (1ULL << 19)  /* at entry, read the 48 bytes arg0 points to */
#define CALL_BLOB_STACK (1ULL << 24) /* at entry, read the 48 bytes above the return
				      * address: a large struct passed by value */
#define CALL_NAME_SHIFT 20           /* bits 20-23: 1 + index of a string argument */
#define CALL_AGGREGATE (1ULL << 25)  /* a launch: count it in `launches` and `recent` */
#define CALL_SEND (1ULL << 26)       /* with CALL_AGGREGATE: send it as well */
#define CALL_KEY_SHIFT 27            /* bits 27-30: the argument naming what is launched */
#define CALL_STREAM_SHIFT 31         /* bits 31-34: 1 + the stream argument's index;
				      * 15: the stream of a config struct at arg0 + 32 */
#define CALL_INDEX_MASK 0xfULL
#define CALL_NAME_MASK 0xfULL

/* Record flags. */
#define CALL_DEREF_FAILED 1
#define CALL_NAME_FAILED 2
#define CALL_BLOB_FAILED 4

/* Both the in-flight value and the event sent: the name comes last so that records
 * without one are sent without it (a shorter reserve). */
struct call_record {
	__u64 entry_ns;
	__u64 return_ns; /* 0 when sent at entry */
	__u64 cookie;
	__u64 args[CALL_MAX_ARGS];
	__s64 ret;
	__u64 deref;
	__u64 blob[6]; /* a struct passed by pointer (cudaLaunchConfig_t, CUlaunchConfig) */
	__u64 caller;  /* the return address at entry: the word at the stack pointer */
	__u32 pid;
	__u32 tid;
	__u32 stack_len;
	__u32 flags;
	char comm[COOLBPF_TASK_COMM_LEN];
	__u64 stack[CALL_MAX_STACK];
	char name[CALL_NAME_LEN];
};

#define CALL_RECORD_NO_NAME (sizeof(struct call_record) - CALL_NAME_LEN)

struct inflight_key {
	__u32 tid;
	__u32 function;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct inflight_key);
	__type(value, struct call_record);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct call_record);
} scratch SEC(".maps");

struct launch_key {
	__u32 pid;
	__u32 function;
	__u64 kernel; /* host stub, kernel handle, CUfunction or graph */
	__u64 caller; /* the return address at entry (see the stack note above) */
	__u64 user_stack; /* id in the stack store, 0 when none */
};

struct launch_value {
	__u64 count;
	char comm[COOLBPF_TASK_COMM_LEN];
};

#define RECENT_LAUNCHES 16

struct recent_launch {
	__u64 ts_ns;
	__u64 kernel;
	__u64 stream;
	__u32 tid;
	__u32 function;
};

struct recent_launches {
	__u64 next;
	struct recent_launch slot[RECENT_LAUNCHES];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct launch_key);
	__type(value, struct launch_value);
} launches SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct recent_launches);
} recent SEC(".maps");

/* Never written: the zeroed value a new process's `recent` ring starts from (too large
 * for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct recent_launches);
} recent_zero SEC(".maps");

static __always_inline void capture_args(struct pt_regs *ctx, struct call_record *rec)
{
	__u64 sp = PT_REGS_SP(ctx);

	rec->args[0] = PT_REGS_PARM1(ctx);
	rec->args[1] = PT_REGS_PARM2(ctx);
	rec->args[2] = PT_REGS_PARM3(ctx);
	rec->args[3] = PT_REGS_PARM4(ctx);
	rec->args[4] = PT_REGS_PARM5(ctx);
	rec->args[5] = PT_REGS_PARM6(ctx);
	/* Stack arguments sit above the return address: [sp + 8], [sp + 16], ... A failed
	 * read leaves zeros; functions with fewer arguments ignore them. */
	bpf_probe_read_user(&rec->args[6], 5 * sizeof(__u64), (void *)(sp + 8));
}

/* Set by userspace: user stacks by CFI (coolbpf/unwind.bpf.h), not frame pointers. */
const volatile __u8 unwind_cfi = 0;

static __always_inline void capture_stack(struct pt_regs *ctx, struct call_record *rec)
{
	/* The stacks layer's walk (CFI or frame pointers, its failures counted there). */
	struct coolbpf_unwind_frames *frames = coolbpf_user_stack_of(ctx, ctx, unwind_cfi, rec->pid);
	__u64 bytes = frames ? coolbpf_clamp_slot((__u64)frames->nr * 8, CALL_MAX_STACK * 8) : 0;

	rec->stack_len = 0;
	if (!bytes || bpf_probe_read_kernel(rec->stack, bytes, frames->ips))
		return;
	if (bpf_probe_read_user(&rec->caller, sizeof(rec->caller), (void *)PT_REGS_SP(ctx)))
		rec->caller = 0;
	rec->stack_len = bytes / sizeof(__u64);
}

static __always_inline void read_name(struct call_record *rec)
{
	__u64 which = (rec->cookie >> CALL_NAME_SHIFT) & CALL_NAME_MASK;
	__u64 ptr = 0;

	if (!which)
		return;
	/* A constant index per branch keeps the verifier's bounds simple. */
	switch (which - 1) {
	case 0: ptr = rec->args[0]; break;
	case 1: ptr = rec->args[1]; break;
	case 2: ptr = rec->args[2]; break;
	case 3: ptr = rec->args[3]; break;
	case 4: ptr = rec->args[4]; break;
	case 5: ptr = rec->args[5]; break;
	default: return;
	}
	if (bpf_probe_read_user_str(rec->name, CALL_NAME_LEN, (void *)ptr) < 0) {
		rec->flags |= CALL_NAME_FAILED;
		rec->name[0] = 0;
	}
}

/* Copies the record into the ring buffer (bpf_ringbuf_output: a record this large cannot
 * be copied by the program itself); a full buffer is a counted loss. */
static __always_inline int send(struct call_record *rec)
{
	bool named = (rec->cookie >> CALL_NAME_SHIFT) & CALL_NAME_MASK;
	long err;

	if (named)
		err = bpf_ringbuf_output(&events, rec, sizeof(struct call_record), 0);
	else
		err = bpf_ringbuf_output(&events, rec, CALL_RECORD_NO_NAME, 0);
	if (err)
		coolbpf_count_loss(COOLBPF_LOSS_RINGBUF_RESERVE);
	return 0;
}

/* Fills the entry half of `rec`: who, when, the arguments, and the stack if asked. */
static __always_inline void fill_entry(struct pt_regs *ctx, struct call_record *rec, __u64 cookie)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	rec->entry_ns = bpf_ktime_get_ns();
	rec->return_ns = 0;
	rec->cookie = cookie;
	rec->ret = 0;
	rec->deref = 0;
	rec->flags = 0;
	rec->stack_len = 0;
	rec->caller = 0;
	rec->name[0] = 0;
	rec->pid = pid_tgid >> 32;
	rec->tid = (__u32)pid_tgid;
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));
	capture_args(ctx, rec);
	if ((cookie & CALL_BLOB_ARG0) &&
	    bpf_probe_read_user(rec->blob, sizeof(rec->blob), (void *)rec->args[0])) {
		__builtin_memset(rec->blob, 0, sizeof(rec->blob));
		rec->flags |= CALL_BLOB_FAILED;
	}
	if ((cookie & CALL_BLOB_STACK) &&
	    bpf_probe_read_user(rec->blob, sizeof(rec->blob), (void *)(PT_REGS_SP(ctx) + 8))) {
		__builtin_memset(rec->blob, 0, sizeof(rec->blob));
		rec->flags |= CALL_BLOB_FAILED;
	}
	if (cookie & CALL_STACK)
		capture_stack(ctx, rec);
}

/* Argument `index` at entry: a register, or a word above the return address. */
static __always_inline __u64 arg_at(struct pt_regs *ctx, __u64 index)
{
	__u64 value = 0;

	switch (index) {
	case 0: return PT_REGS_PARM1(ctx);
	case 1: return PT_REGS_PARM2(ctx);
	case 2: return PT_REGS_PARM3(ctx);
	case 3: return PT_REGS_PARM4(ctx);
	case 4: return PT_REGS_PARM5(ctx);
	case 5: return PT_REGS_PARM6(ctx);
	default:
		if (index > 10)
			return 0;
		bpf_probe_read_user(&value, sizeof(value), (void *)(PT_REGS_SP(ctx) + 8 * (index - 5)));
		return value;
	}
}

static __always_inline __u64 stream_of(struct pt_regs *ctx, __u64 cookie)
{
	__u64 which = (cookie >> CALL_STREAM_SHIFT) & CALL_INDEX_MASK;
	__u64 stream = 0;

	if (which == 15) {
		/* cudaLaunchConfig_t and CUlaunchConfig both keep the stream at offset 32. */
		bpf_probe_read_user(&stream, sizeof(stream), (void *)(PT_REGS_PARM1(ctx) + 32));
		return stream;
	}
	return which ? arg_at(ctx, which - 1) : 0;
}

/* Set by userspace: the kernel's stack walk at an entry uprobe lacks the immediate caller
 * (kernels before 6.11), so the launch key must carry it. */
const volatile bool launch_key_caller = true;

/* Set by userspace: keep each process's last launches (the hang watchdog reads them). */
const volatile __u8 keep_recent = 1;

/* This runs on every launch: the cheap way first (lookups that hit), the initialisations
 * only for a key or a process seen for the first time. */
static __always_inline void count_launch(struct pt_regs *ctx, __u64 cookie, __u64 pid_tgid)
{
	struct launch_value *value, init = {};
	struct recent_launches *ring, *empty;
	struct launch_key key = {};
	__u32 pid = pid_tgid >> 32;
	__u64 slot;

	key.pid = pid;
	key.function = cookie & 0xffff;
	key.kernel = arg_at(ctx, (cookie >> CALL_KEY_SHIFT) & CALL_INDEX_MASK);
	if (launch_key_caller &&
	    bpf_probe_read_user(&key.caller, sizeof(key.caller), (void *)PT_REGS_SP(ctx)))
		key.caller = 0;
	key.user_stack = coolbpf_store_ips_memo(coolbpf_user_stack_of(ctx, ctx, unwind_cfi, pid));
	value = bpf_map_lookup_elem(&launches, &key);
	if (!value) {
		bpf_get_current_comm(init.comm, sizeof(init.comm));
		value = coolbpf_lookup_or_init(&launches, &key, &init);
	}
	if (value) {
		__sync_fetch_and_add(&value->count, 1);
	}
	if (!keep_recent)
		return;
	ring = bpf_map_lookup_elem(&recent, &pid);
	if (!ring) {
		empty = bpf_map_lookup_elem(&recent_zero, &(__u32){ 0 });
		if (!empty)
			return;
		ring = coolbpf_lookup_or_init(&recent, &pid, empty);
		if (!ring)
			return;
	}
	slot = __sync_fetch_and_add(&ring->next, 1) % RECENT_LAUNCHES;
	ring->slot[slot].ts_ns = bpf_ktime_get_ns();
	ring->slot[slot].kernel = key.kernel;
	ring->slot[slot].stream = stream_of(ctx, cookie);
	ring->slot[slot].tid = (__u32)pid_tgid;
	ring->slot[slot].function = key.function;
}

SEC("uprobe")
int call_entry(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct call_record *rec;
	__u32 zero = 0;

	if (coolbpf_filter_tgid && tgid != coolbpf_filter_tgid)
		return 0;
	if (cookie & CALL_AGGREGATE) {
		count_launch(ctx, cookie, pid_tgid);
		if (!(cookie & CALL_SEND))
			return 0;
	}
	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 0;
	fill_entry(ctx, rec, cookie);
	if (cookie & CALL_ENTRY_ONLY) {
		read_name(rec);
		return send(rec);
	}
	struct inflight_key key = { .tid = rec->tid, .function = cookie & 0xffff };
	if (bpf_map_update_elem(&inflight, &key, rec, BPF_ANY))
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
	return 0;
}

/* Entry-only functions with a string argument that may sit in a page not touched yet
 * (`__cudaRegisterFunction` runs in static constructors, before the program has read
 * its kernel names): a sleepable program, which can fault the page in with
 * bpf_copy_from_user before reading the string. It builds the record in the ring buffer
 * itself, since a per-CPU scratch buffer is not safe across a sleep. */
SEC("uprobe.s")
int named_entry(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 which = (cookie >> CALL_NAME_SHIFT) & CALL_NAME_MASK;
	struct call_record *rec;
	__u64 ptr, last;
	char byte;

	if (!coolbpf_tgid_allowed(NULL))
		return 0;
	rec = coolbpf_ringbuf_reserve(&events, sizeof(struct call_record));
	if (!rec)
		return 0;
	fill_entry(ctx, rec, cookie);
	ptr = which >= 1 && which <= 6 ? rec->args[(which - 1) & 7] : 0;
	if (ptr) {
		bpf_copy_from_user(&byte, 1, (void *)ptr);
		last = ptr + CALL_NAME_LEN - 1;
		if ((last >> 12) != (ptr >> 12))
			bpf_copy_from_user(&byte, 1, (void *)(last & ~4095ULL));
	}
	read_name(rec);
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

SEC("uretprobe")
int call_return(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct inflight_key key = {
		.tid = (__u32)bpf_get_current_pid_tgid(),
		.function = cookie & 0xffff,
	};
	struct call_record *rec;

	rec = bpf_map_lookup_elem(&inflight, &key);
	if (!rec)
		return 0; /* entered before the probe was attached, or filtered out */
	rec->return_ns = bpf_ktime_get_ns();
	rec->ret = PT_REGS_RC(ctx);
	if (cookie & CALL_DEREF_ARG0) {
		if (bpf_probe_read_user(&rec->deref, sizeof(rec->deref), (void *)rec->args[0])) {
			rec->deref = 0;
			rec->flags |= CALL_DEREF_FAILED;
		}
	}
	read_name(rec);
	send(rec);
	bpf_map_delete_elem(&inflight, &key);
	return 0;
}
