// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The floor of the runqlat benchmark: programs on runqlat's three tp_btf hooks that do
 * nothing. What they cost is the kernel's price for running any BPF program there (the
 * tracepoint's dispatch into BPF), which no runqlat implementation can go below. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_wakeup")
int BPF_PROG(floor_wakeup)
{
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(floor_wakeup_new)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(floor_switch)
{
	return 0;
}
