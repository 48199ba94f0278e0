// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* xid: the NVIDIA driver's Xid lines ("NVRM: Xid (PCI:0000:3b:00): 79, ...") as the
 * kernel logs them, at printk:console.
 *
 * printk:console fires for every line stored in the kernel log (printk and /dev/kmsg
 * writes alike), on the logging CPU, before the record becomes readable in /dev/kmsg.
 * Only lines with "NVRM: Xid" starting within their first XID_SCAN bytes are sent (the
 * driver's own lines start with it; the window allows a short prefix such as "tag: ");
 * every other line costs one bounded scan of a small stack copy and nothing else.
 *
 * Three forms of one program: tp_btf and raw_tp get the text and its length as the
 * tracepoint's arguments; the classic tracepoint gets them as its __data_loc msg field.
 * Userspace keeps the first one this kernel attaches. */
#include "coolbpf/coolbpf.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* printk records hold at most 1024 bytes of text (PRINTKRB_RECORD_MAX). */
#define XID_TEXT_MAX 1024
/* "NVRM: Xid" may start at offsets 0 .. XID_SCAN - 1. Keep in step with
 * coolbpf-gpu/src/xid/parse.rs (MARKER_WINDOW), which applies the same rule to the
 * lines read back from /dev/kmsg. */
#define XID_SCAN 64
#define XID_MARKER_LEN 9
#define XID_HEAD (XID_SCAN + XID_MARKER_LEN - 1)

struct xid_line {
	__u64 ts_ns;
	__u32 len;       /* bytes of text[] that are valid */
	__u32 truncated; /* the line was longer than XID_TEXT_MAX */
	char text[XID_TEXT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline bool marker_at(const char *head, __u32 i)
{
	return head[i] == 'N' && head[i + 1] == 'V' && head[i + 2] == 'R' && head[i + 3] == 'M' &&
	       head[i + 4] == ':' && head[i + 5] == ' ' && head[i + 6] == 'X' &&
	       head[i + 7] == 'i' && head[i + 8] == 'd';
}

/* Whether "NVRM: Xid" starts within the first XID_SCAN bytes of the len-byte text. */
static __always_inline bool has_marker(const char *text, __u64 len)
{
	char head[XID_HEAD + 1] = {};
	__u64 size = len < XID_HEAD ? len : XID_HEAD;

	if (len < XID_MARKER_LEN)
		return false;
	size = coolbpf_clamp_slot(size, XID_HEAD);
	if (bpf_probe_read_kernel(head, size, text) < 0)
		return false;
	for (__u32 i = 0; i < XID_SCAN; i++) {
		if (i + XID_MARKER_LEN > len)
			return false;
		if (marker_at(head, i))
			return true;
	}
	return false;
}

static __always_inline int send_line(const char *text, __u64 len)
{
	struct xid_line *line;
	__u64 size;

	if (!has_marker(text, len))
		return 0;
	line = coolbpf_ringbuf_reserve(&events, sizeof(*line));
	if (!line)
		return 0;
	line->ts_ns = bpf_ktime_get_ns();
	line->truncated = len > XID_TEXT_MAX;
	size = coolbpf_clamp_slot(len, XID_TEXT_MAX);
	if (bpf_probe_read_kernel(line->text, size, text) < 0) {
		coolbpf_count_loss(COOLBPF_LOSS_READ);
		size = 0;
	}
	line->len = size;
	bpf_ringbuf_submit(line, 0);
	return 0;
}

SEC("tp_btf/console")
int BPF_PROG(xid_btf, const char *text, size_t len)
{
	return send_line(text, len);
}

SEC("raw_tp/console")
int BPF_PROG(xid_raw, const char *text, size_t len)
{
	return send_line(text, len);
}

SEC("tracepoint/printk/console")
int xid_tp(struct trace_event_raw_console *ctx)
{
	__u32 loc = ctx->__data_loc_msg;
	__u32 size = loc >> 16; /* includes the terminating NUL */

	return send_line((const char *)ctx + (loc & 0xFFFF), size ? size - 1 : 0);
}
