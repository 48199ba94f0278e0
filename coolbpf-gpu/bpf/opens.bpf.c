// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* opens: files opened that a GPU tracer must know of at once — a CUDA or NCCL library
 * (libcudart.so*, libcuda.so*, libnccl.so*: by the dynamic loader or dlopen) or an NVIDIA
 * device (/dev/nvidia*: a program with the CUDA runtime linked in statically) — so that
 * processes started after the tracer, from libraries it did not find at start, are
 * traced too. Hook: raw_syscalls:sys_enter (tp_btf, else raw_tp, else the classic
 * tracepoint), open and openat only; the path is read and matched here, and only
 * matches are sent. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define PATH_LEN 256
#if defined(__TARGET_ARCH_arm64)
#define NR_OPEN -1 /* arm64 has openat only */
#define NR_OPENAT 56
#else
#define NR_OPEN 2
#define NR_OPENAT 257
#endif

struct opened {
	__u32 pid;
	__u32 pad;
	/* PATH_LEN bytes of path, and room for a prefix compare past its end. */
	char path[PATH_LEN + 16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct opened);
} scratch SEC(".maps");

static __always_inline bool starts_with(const char *s, const char *prefix, int len)
{
	for (int i = 0; i < len; i++)
		if (s[i] != prefix[i])
			return false;
	return true;
}

static __always_inline int check_open(long id, const char *filename)
{
	struct opened *rec;
	__u32 zero = 0, base = 0;
	long len;

	if (id != NR_OPEN && id != NR_OPENAT)
		return 0;
	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return 0;
	len = bpf_probe_read_user_str(rec->path, PATH_LEN, filename);
	if (len <= 0)
		return 0;
	/* The file name is the part after the last '/': look for it from the end, within
	 * the 64 bytes a library name takes at most (a forward scan of the whole path makes
	 * the verifier follow a state per slash). */
	for (int i = 2; i < 64; i++) {
		__u32 at = (len - i) & (PATH_LEN - 1);

		if (i > len)
			break;
		if (rec->path[at] == '/') {
			base = at + 1;
			break;
		}
	}
	const char *name = rec->path + (base & (PATH_LEN - 1));
	if (!starts_with(rec->path, "/dev/nvidia", 11) &&
	    !starts_with(name, "libcudart.so", 12) && !starts_with(name, "libcuda.so", 10) &&
	    !starts_with(name, "libnccl.so", 10))
		return 0;
	rec->pid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_ringbuf_output(&events, rec, sizeof(*rec), 0))
		coolbpf_count_loss(COOLBPF_LOSS_RINGBUF_RESERVE);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(opens_btf, struct pt_regs *regs, long id)
{
	return check_open(id, (const char *)(id == NR_OPEN ? PT_REGS_PARM1(regs) : PT_REGS_PARM2(regs)));
}

SEC("raw_tp/sys_enter")
int BPF_PROG(opens_raw, struct pt_regs *regs, long id)
{
	unsigned long filename = 0;

	if (id == NR_OPEN)
		filename = PT_REGS_PARM1_CORE(regs);
	else
		filename = PT_REGS_PARM2_CORE(regs);
	return check_open(id, (const char *)filename);
}

SEC("tracepoint/raw_syscalls/sys_enter")
int opens_tp(struct trace_event_raw_sys_enter *ctx)
{
	return check_open(ctx->id, (const char *)(ctx->id == NR_OPEN ? ctx->args[0] : ctx->args[1]));
}
