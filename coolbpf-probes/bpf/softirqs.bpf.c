// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* softirqs: time spent in soft interrupt handlers, per vector, as log2 histograms in ns.
 *
 * irq:softirq_entry stamps the CPU, irq:softirq_exit adds the time since to the vector's
 * histogram (count: handler runs, sum: total time). Softirqs do not nest on a CPU (a hard
 * interrupt inside one is not a softirq), so one stamp per CPU is enough. tp_btf, raw_tp
 * and classic tracepoint entry points share the logic. */

#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* NR_SOFTIRQS is 10 today; room for more. */
#define MAX_VECTORS 16

struct stamp {
	__u64 ts_ns;
	__s64 vec; /* -1: none running */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stamp);
} stamps SEC(".maps");

/* Per CPU, so no two CPUs contend on a vector's counters; userspace sums them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VECTORS);
	__type(key, __u32);
	__type(value, struct coolbpf_log2_hist);
} hists SEC(".maps");

static __always_inline int on_entry(unsigned int vec)
{
	__u32 zero = 0;
	struct stamp *stamp = bpf_map_lookup_elem(&stamps, &zero);

	if (stamp) {
		stamp->ts_ns = bpf_ktime_get_ns();
		stamp->vec = vec;
	}
	return 0;
}

static __always_inline int on_exit(unsigned int vec)
{
	__u32 zero = 0, key = vec;
	struct stamp *stamp = bpf_map_lookup_elem(&stamps, &zero);
	struct coolbpf_log2_hist *hist;
	__u64 delta_ns;

	if (!stamp || stamp->vec != vec)
		return 0;
	delta_ns = bpf_ktime_get_ns() - stamp->ts_ns;
	stamp->vec = -1;
	hist = bpf_map_lookup_elem(&hists, &key);
	if (hist)
		coolbpf_log2_hist_add_percpu(hist, delta_ns);
	return 0;
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(entry_btf, unsigned int vec)
{
	return on_entry(vec);
}

SEC("raw_tp/softirq_entry")
int BPF_PROG(entry_raw, unsigned int vec)
{
	return on_entry(vec);
}

SEC("tracepoint/irq/softirq_entry")
int entry_tp(struct trace_event_raw_softirq *ctx)
{
	return on_entry(ctx->vec);
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(exit_btf, unsigned int vec)
{
	return on_exit(vec);
}

SEC("raw_tp/softirq_exit")
int BPF_PROG(exit_raw, unsigned int vec)
{
	return on_exit(vec);
}

SEC("tracepoint/irq/softirq_exit")
int exit_tp(struct trace_event_raw_softirq *ctx)
{
	return on_exit(ctx->vec);
}
