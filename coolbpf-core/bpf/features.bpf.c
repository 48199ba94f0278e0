// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * features.bpf.c: one tiny program per kind of hook, for Features::detect().
 *
 * Userspace opens this object once per hook with only the program under test
 * autoloaded, attaches it, triggers the hook and reads `feature_hits`: a hook
 * counts as available only when its program really ran. Nothing filters by
 * process: any run proves that the hook works.
 */
#include "coolbpf/coolbpf.bpf.h"
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Slots of feature_hits; src/features/hooks.rs reads them by these indexes. */
enum feature_slot {
	/* How many times the loaded program ran. */
	FEATURE_SLOT_HITS = 0,
	/* The argument the USDT program read with bpf_usdt_arg(). */
	FEATURE_SLOT_USDT_ARG = 1,
	/* What bpf_usdt_arg() returned (0, or a negative errno). */
	FEATURE_SLOT_USDT_ERROR = 2,
	FEATURE_SLOTS = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FEATURE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} feature_hits SEC(".maps");

static __always_inline int feature_hit(void)
{
	__u32 slot = FEATURE_SLOT_HITS;
	__u64 *hits = bpf_map_lookup_elem(&feature_hits, &slot);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int feature_tracepoint(void *ctx)
{
	return feature_hit();
}

SEC("raw_tp/sys_enter")
int feature_raw_tp(void *ctx)
{
	return feature_hit();
}

SEC("tp_btf/sys_enter")
int feature_tp_btf(void *ctx)
{
	return feature_hit();
}

SEC("perf_event")
int feature_perf_event(void *ctx)
{
	return feature_hit();
}

SEC("kprobe/vfs_read")
int feature_kprobe(void *ctx)
{
	return feature_hit();
}

SEC("kretprobe/vfs_read")
int feature_kretprobe(void *ctx)
{
	return feature_hit();
}

SEC("fentry/vfs_read")
int feature_fentry(void *ctx)
{
	return feature_hit();
}

/* uprobes are attached from userspace to a function of the probing process. */
SEC("uprobe")
int feature_uprobe(void *ctx)
{
	return feature_hit();
}

SEC("uretprobe")
int feature_uretprobe(void *ctx)
{
	return feature_hit();
}

/* Also records what bpf_usdt_arg() returned and read: proves that the libbpf which
 * attached the program and this object's usdt.bpf.h agree on argument specs. */
SEC("usdt")
int feature_usdt(struct pt_regs *ctx)
{
	__u32 value_slot = FEATURE_SLOT_USDT_ARG, error_slot = FEATURE_SLOT_USDT_ERROR;
	long value = 0;
	long error = bpf_usdt_arg(ctx, 0, &value);

	bpf_map_update_elem(&feature_hits, &value_slot, &value, BPF_ANY);
	bpf_map_update_elem(&feature_hits, &error_slot, &error, BPF_ANY);
	return feature_hit();
}
