// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* execsnoop: one event per successful exec, at sched:sched_process_exec.
 *
 * The tracepoint fires after the new image is set up, so the argument block is read from
 * the new mm (arg_start..arg_end) and the comm is already the new one. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FILENAME_LEN 256
#define ARGS_LEN 2048

struct exec_event {
	__u64 ts_ns;
	struct coolbpf_task task;
	__u32 args_size;  /* bytes of args[] that are valid */
	__u32 args_truncated;  /* the argument block was longer than ARGS_LEN */
	char filename[FILENAME_LEN];
	char args[ARGS_LEN];  /* NUL-separated, as in /proc/PID/cmdline */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline struct exec_event *start_event(void)
{
	__u32 pid;
	struct exec_event *event;

	if (!coolbpf_tgid_allowed(&pid))
		return NULL;
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return NULL;
	event->ts_ns = bpf_ktime_get_ns();
	coolbpf_fill_task(&event->task);
	event->args_size = 0;
	event->args_truncated = 0;
	event->filename[0] = '\0';
	return event;
}

static __always_inline void read_args(struct exec_event *event)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	__u64 size = end > start ? end - start : 0;

	if (size > ARGS_LEN) {
		size = ARGS_LEN;
		event->args_truncated = 1;
	}
	if (size && bpf_probe_read_user(event->args, size, (void *)start) == 0)
		event->args_size = size;
	else if (size)
		coolbpf_count_loss(COOLBPF_LOSS_READ);
}

static __always_inline int finish_event(struct exec_event *event, const char *filename, bool kernel_ptr)
{
	long ret = kernel_ptr ? bpf_probe_read_kernel_str(event->filename, sizeof(event->filename), filename)
			      : -1;

	if (kernel_ptr && ret < 0)
		coolbpf_count_loss(COOLBPF_LOSS_READ);
	read_args(event);
	bpf_ringbuf_submit(event, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *event = start_event();

	if (!event)
		return 0;
	return finish_event(event, BPF_CORE_READ(bprm, filename), true);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_raw, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *event = start_event();

	if (!event)
		return 0;
	return finish_event(event, BPF_CORE_READ(bprm, filename), true);
}

SEC("tracepoint/sched/sched_process_exec")
int exec_tp(struct trace_event_raw_sched_process_exec *ctx)
{
	struct exec_event *event = start_event();
	unsigned int offset = ctx->__data_loc_filename & 0xFFFF;

	if (!event)
		return 0;
	return finish_event(event, (const char *)ctx + offset, true);
}
