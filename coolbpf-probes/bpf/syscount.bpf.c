// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* syscount: system calls counted per process and syscall number at raw_syscalls:sys_enter.
 *
 * Three entry points with the same logic, chosen at load time by the kernel's features:
 * tp_btf (cheapest), raw_tp, then the classic tracepoint. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct syscount_key {
	__u32 pid;
	__u32 syscall;
};

struct syscount_value {
	__u64 count;
	char comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syscount_key);
	__type(value, struct syscount_value);
} counts SEC(".maps");

static __always_inline int count_syscall(long id)
{
	struct syscount_key key = {};
	struct syscount_value *value;

	/* id is -1 for a syscall the tracer skipped (seccomp, ptrace): not a syscall. */
	if (id < 0 || !coolbpf_tgid_allowed(&key.pid))
		return 0;
	key.syscall = (__u32)id;
	value = bpf_map_lookup_elem(&counts, &key);
	if (!value) {
		struct syscount_value init = {};

		bpf_get_current_comm(init.comm, sizeof(init.comm));
		value = coolbpf_lookup_or_init(&counts, &key, &init);
		if (!value)
			return 0;
	}
	__sync_fetch_and_add(&value->count, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_btf, struct pt_regs *regs, long id)
{
	return count_syscall(id);
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter_raw, struct pt_regs *regs, long id)
{
	return count_syscall(id);
}

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return count_syscall(ctx->id);
}
