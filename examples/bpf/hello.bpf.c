// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* hello: a user's own BPF program, compiled by the facade crate's build.rs and loaded by
 * examples/hello_ringbuf.rs. One ring-buffer event per successful exec, from the classic
 * sched:sched_process_exec tracepoint (it fires once the new image is in place, so the
 * comm is already the new program's). */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FILENAME_LEN 256

/* Userspace decodes this layout by offset: keep examples/hello_ringbuf.rs in step. */
struct hello_event {
	__u32 pid;  /* process id (tgid) after the exec */
	__u32 ppid; /* parent's process id */
	char comm[COOLBPF_TASK_COMM_LEN];
	char filename[FILENAME_LEN]; /* the path given to execve */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	/* The low 16 bits of a __data_loc field are the offset of its bytes in the record. */
	unsigned int filename_offset = ctx->__data_loc_filename & 0xFFFF;
	struct hello_event *event;

	/* Counts a loss in coolbpf_losses when the ring is full, so the userspace stream
	 * can report it. */
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->pid = bpf_get_current_pid_tgid() >> 32;
	event->ppid = BPF_CORE_READ(task, real_parent, tgid);
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	if (bpf_probe_read_kernel_str(event->filename, sizeof(event->filename),
				      (void *)ctx + filename_offset) < 0) {
		event->filename[0] = '\0';
		coolbpf_count_loss(COOLBPF_LOSS_READ);
	}
	bpf_ringbuf_submit(event, 0);
	return 0;
}
