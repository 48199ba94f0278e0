// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* hardirqs: time spent in hard interrupt handlers, per IRQ, as log2 histograms in ns.
 *
 * irq:irq_handler_entry stamps the CPU, irq:irq_handler_exit adds the time since to the
 * IRQ's histogram (its count is the number of handler runs, its sum the total time),
 * which is created, with the handler's name, the first time the IRQ is seen.
 * Handlers do not nest on a CPU, so one stamp per CPU is enough; an exit whose IRQ does
 * not match the stamp (the probe started mid-handler) is skipped. tp_btf, raw_tp and
 * classic tracepoint entry points share the logic. */

#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define IRQ_NAME_LEN 32

struct stamp {
	__u64 ts_ns;
	__s64 irq; /* -1: no handler running */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stamp);
} stamps SEC(".maps");

struct irq_value {
	struct coolbpf_log2_hist hist;
	char name[IRQ_NAME_LEN]; /* the handler's name when first seen */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct irq_value);
} hists SEC(".maps");

/* The IRQ's histogram, created (with the handler's name, a kernel string) when the IRQ is
 * first seen; NULL when the table is full. */
static __always_inline struct irq_value *irq_value(__u32 irq, const char *name)
{
	struct irq_value *value = bpf_map_lookup_elem(&hists, &irq);

	if (value)
		return value;
	{
		/* Too large for the BPF stack: the initial value lives in .rodata. */
		static const struct irq_value empty = {};

		value = coolbpf_lookup_or_init(&hists, &irq, &empty);
	}
	if (value && name)
		bpf_probe_read_kernel_str(value->name, sizeof(value->name), name);
	return value;
}

static __always_inline int on_entry(int irq, const char *name)
{
	__u32 zero = 0;
	struct stamp *stamp = bpf_map_lookup_elem(&stamps, &zero);

	/* Named here, where every variant has the name; the exit only adds. */
	if (!irq_value(irq, name) || !stamp)
		return 0;
	stamp->ts_ns = bpf_ktime_get_ns();
	stamp->irq = irq;
	return 0;
}

static __always_inline int on_exit(int irq)
{
	__u32 zero = 0, key = irq;
	struct stamp *stamp = bpf_map_lookup_elem(&stamps, &zero);
	struct irq_value *value;
	__u64 delta_ns;

	if (!stamp || stamp->irq != irq)
		return 0;
	delta_ns = bpf_ktime_get_ns() - stamp->ts_ns;
	stamp->irq = -1;
	value = bpf_map_lookup_elem(&hists, &key);
	if (value)
		coolbpf_log2_hist_add(&value->hist, delta_ns);
	return 0;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(entry_btf, int irq, struct irqaction *action)
{
	return on_entry(irq, BPF_CORE_READ(action, name));
}

SEC("raw_tp/irq_handler_entry")
int BPF_PROG(entry_raw, int irq, struct irqaction *action)
{
	return on_entry(irq, BPF_CORE_READ(action, name));
}

SEC("tracepoint/irq/irq_handler_entry")
int entry_tp(struct trace_event_raw_irq_handler_entry *ctx)
{
	/* The name is a __data_loc string inside the record. */
	return on_entry(ctx->irq, (const char *)ctx + (ctx->__data_loc_name & 0xFFFF));
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(exit_btf, int irq, struct irqaction *action, int ret)
{
	return on_exit(irq);
}

SEC("raw_tp/irq_handler_exit")
int BPF_PROG(exit_raw, int irq, struct irqaction *action, int ret)
{
	return on_exit(irq);
}

SEC("tracepoint/irq/irq_handler_exit")
int exit_tp(struct trace_event_raw_irq_handler_exit *ctx)
{
	return on_exit(ctx->irq);
}
