// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* gpudriver: ioctls on the GPU driver's device files that do not come back, and the
 * kernel's hung-task reports, seen from outside the process.
 *
 * - raw_syscalls:sys_enter: an ioctl on a (tgid, fd) that userspace listed in
 *   watched_fds (it scans /proc/PID/fd for the device files) is counted per device and
 *   put in in_flight, keyed by thread, with its entry time.
 * - raw_syscalls:sys_exit: the thread's in_flight entry is removed; a call that took
 *   threshold_ns or more is sent to userspace (which reports its return). Calls still in
 *   flight are read by userspace every interval: that is where a hang is seen, so a call
 *   that never returns is reported too.
 * - sched:sched_process_hang: the hung-task detector's verdict on a task, sent as is.
 *
 * Each hook has three forms with the same logic (tp_btf, raw_tp, classic tracepoint);
 * userspace keeps the first one this kernel attaches. The raw_syscalls hooks fire for
 * every syscall, so the syscall number is tested first and nothing else runs for
 * syscalls other than ioctl. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The ioctl syscall's number on this architecture (set by userspace from libc). */
const volatile __u32 ioctl_nr = 16;
/* Returns at least this slow are sent to userspace. */
const volatile __u64 threshold_ns = 5000000000ULL;

enum driver_event_type {
	DRIVER_IOCTL_RETURNED = 1,
	DRIVER_HUNG_TASK = 2,
};

struct fd_key {
	__u32 tgid;
	__u32 fd;
};

struct watched_fd {
	__u32 device; /* userspace's id for the device path */
	__u32 pad;
};

struct ioctl_call {
	__u64 ts_ns; /* entry, bpf_ktime_get_ns */
	__u64 cmd;
	__u32 tgid;
	__u32 fd;
	__u32 device;
	__u32 pad;
};

/* Keep in step with coolbpf-gpu/src/driver/event.rs. */
struct driver_event {
	__u32 type;
	__u32 tid;
	__u32 tgid;
	__u32 fd;
	__u32 device;
	__u32 pad;
	__u64 cmd;
	__u64 enter_ns; /* the ioctl's entry (DRIVER_IOCTL_RETURNED) */
	__u64 ts_ns;    /* the return, or the hung-task report */
	__s64 ret;
	char comm[COOLBPF_TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fd_key);
	__type(value, struct watched_fd);
} watched_fds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct ioctl_call);
} in_flight SEC(".maps");

/* ioctls per device id, cumulative. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} ioctls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline int ioctl_enter(long id, __u64 fd, __u64 cmd)
{
	__u64 pid_tgid;
	struct fd_key key;
	struct watched_fd *watched;
	struct ioctl_call call = {};
	__u64 zero = 0, *count;
	__u32 tid;

	if (id != ioctl_nr)
		return 0;
	pid_tgid = bpf_get_current_pid_tgid();
	key.tgid = pid_tgid >> 32;
	key.fd = (__u32)fd;
	watched = bpf_map_lookup_elem(&watched_fds, &key);
	if (!watched)
		return 0;
	count = coolbpf_lookup_or_init(&ioctls, &watched->device, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	call.ts_ns = bpf_ktime_get_ns();
	/* The kernel takes both as unsigned int: the upper halves are ignored there too. */
	call.cmd = (__u32)cmd;
	call.tgid = key.tgid;
	call.fd = key.fd;
	call.device = watched->device;
	tid = (__u32)pid_tgid;
	if (bpf_map_update_elem(&in_flight, &tid, &call, BPF_ANY))
		coolbpf_count_loss(COOLBPF_LOSS_MAP_FULL);
	return 0;
}

static __always_inline int ioctl_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct ioctl_call *found, call;
	struct driver_event *event;
	__u64 now;

	found = bpf_map_lookup_elem(&in_flight, &tid);
	if (!found)
		return 0;
	call = *found;
	/* Removed before the event is sent: userspace relies on a call it still finds in
	 * in_flight not having been reported as returned yet. */
	bpf_map_delete_elem(&in_flight, &tid);
	now = bpf_ktime_get_ns();
	if (now - call.ts_ns < threshold_ns)
		return 0;
	event = coolbpf_ringbuf_reserve(&events, sizeof(*event));
	if (!event)
		return 0;
	event->type = DRIVER_IOCTL_RETURNED;
	event->tid = tid;
	event->tgid = call.tgid;
	event->fd = call.fd;
	event->device = call.device;
	event->pad = 0;
	event->cmd = call.cmd;
	event->enter_ns = call.ts_ns;
	event->ts_ns = now;
	event->ret = ret;
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, 0);
	return 0;
}

/* The syscall number at sys_exit, where only pt_regs has it. Other architectures look
 * the thread up on every exit instead: correct, only dearer. */
static __always_inline bool exit_may_be_ioctl(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax) == ioctl_nr;
#else
	return true;
#endif
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter_btf, struct pt_regs *regs, long id)
{
	if (id != ioctl_nr)
		return 0;
	return ioctl_enter(id, PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs));
}

SEC("raw_tp/sys_enter")
int BPF_PROG(sys_enter_raw, struct pt_regs *regs, long id)
{
	if (id != ioctl_nr)
		return 0;
	return ioctl_enter(id, PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM2_CORE_SYSCALL(regs));
}

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter_tp(struct trace_event_raw_sys_enter *ctx)
{
	return ioctl_enter(ctx->id, ctx->args[0], ctx->args[1]);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit_btf, struct pt_regs *regs, long ret)
{
	if (!exit_may_be_ioctl(regs))
		return 0;
	return ioctl_exit(ret);
}

SEC("raw_tp/sys_exit")
int BPF_PROG(sys_exit_raw, struct pt_regs *regs, long ret)
{
	if (!exit_may_be_ioctl(regs))
		return 0;
	return ioctl_exit(ret);
}

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit_tp(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->id != ioctl_nr)
		return 0;
	return ioctl_exit(ctx->ret);
}

static __always_inline struct driver_event *hung_task_event(void)
{
	struct driver_event *event = coolbpf_ringbuf_reserve(&events, sizeof(*event));

	if (!event)
		return NULL;
	__builtin_memset(event, 0, sizeof(*event));
	event->type = DRIVER_HUNG_TASK;
	event->ts_ns = bpf_ktime_get_ns();
	return event;
}

static __always_inline int hung_task(struct task_struct *task)
{
	struct driver_event *event = hung_task_event();

	if (!event)
		return 0;
	event->tid = BPF_CORE_READ(task, pid);
	event->tgid = BPF_CORE_READ(task, tgid);
	if (bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), &task->comm) < 0)
		coolbpf_count_loss(COOLBPF_LOSS_READ);
	bpf_ringbuf_submit(event, 0);
	return 0;
}

SEC("tp_btf/sched_process_hang")
int BPF_PROG(process_hang_btf, struct task_struct *task)
{
	return hung_task(task);
}

SEC("raw_tp/sched_process_hang")
int BPF_PROG(process_hang_raw, struct task_struct *task)
{
	return hung_task(task);
}

/* The classic tracepoint has the task's pid and comm only: tgid stays 0 and userspace
 * finds it in /proc. */
SEC("tracepoint/sched/sched_process_hang")
int process_hang_tp(struct trace_event_raw_sched_process_hang *ctx)
{
	struct driver_event *event = hung_task_event();
	__u32 loc = ctx->__data_loc_comm;

	if (!event)
		return 0;
	event->tid = ctx->pid;
	if (bpf_probe_read_kernel_str(event->comm, sizeof(event->comm),
				      (const char *)ctx + (loc & 0xFFFF)) < 0)
		coolbpf_count_loss(COOLBPF_LOSS_READ);
	bpf_ringbuf_submit(event, 0);
	return 0;
}
