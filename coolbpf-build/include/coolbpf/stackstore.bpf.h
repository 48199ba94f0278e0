/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * stackstore.bpf.h: user stacks kept by content, for probes that aggregate in the kernel
 * (offcpu's time per stack, the GPU launch counts per stack).
 *
 * The kernel's BPF_MAP_TYPE_STACK_TRACE stores only what bpf_get_stackid walks (frame
 * pointers). Stacks unwound by coolbpf_unwind_user() (CFI) and CPython frames walked by
 * coolbpf_python_walk() are stored here instead: the frames go into an LRU hash under a
 * 64-bit hash of their content, and the probe's own key holds that id. Userspace
 * (coolbpf-probes' stacks::store) reads the frames back by id.
 *
 * - Ids are content hashes: the same stack always has the same id, so aggregation keys
 *   merge exactly as with stack ids. Two different stacks share an id with probability
 *   about n^2 / 2^65 for n distinct stacks (below 1e-11 for 16k stacks); that is the one
 *   inexactness, and far below the kernel stack map's, whose 32-bit bucket index replaces
 *   or refuses colliding stacks.
 * - The maps are LRU: a full store evicts the least recently used stack instead of
 *   refusing new ones. An id whose stack was evicted no longer resolves; userspace counts
 *   it (`stack_evicted`) and shows the time with an empty stack, never drops it.
 * - Id 0 means "no stack" (none captured, or a kernel thread).
 */
#ifndef COOLBPF_STACKSTORE_BPF_H
#define COOLBPF_STACKSTORE_BPF_H

#include "coolbpf/coolbpf.bpf.h"
#include "coolbpf/unwind.bpf.h"

#define COOLBPF_STORED_IPS COOLBPF_UNWIND_MAX_FRAMES
#define COOLBPF_STORED_PYTHON_FRAMES 128

#ifndef COOLBPF_USER_STACKS_ENTRIES
#define COOLBPF_USER_STACKS_ENTRIES 16384
#endif
#ifndef COOLBPF_PYTHON_STACKS_ENTRIES
#define COOLBPF_PYTHON_STACKS_ENTRIES 4096
#endif

/* A native user stack is kept as the unwinder leaves it (struct coolbpf_unwind_frames:
 * `nr`, then the instruction pointers, innermost first), so a walk is stored in place. */

/* CPython frames, innermost first, as coolbpf_python_walk() gives them (16 bytes each:
 * code object address, bytecode offset, flags). */
struct coolbpf_stored_python {
	__u32 nr;
	__u32 pad;
	__u64 words[2 * COOLBPF_STORED_PYTHON_FRAMES];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, COOLBPF_USER_STACKS_ENTRIES);
	__type(key, __u64);
	__type(value, struct coolbpf_unwind_frames);
} coolbpf_user_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, COOLBPF_PYTHON_STACKS_ENTRIES);
	__type(key, __u64);
	__type(value, struct coolbpf_stored_python);
} coolbpf_python_stacks SEC(".maps");

/* Where callers build CPython frames before storing them (too big for the BPF stack). */
struct coolbpf_stack_scratch {
	struct coolbpf_stored_python python;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct coolbpf_stack_scratch);
} coolbpf_stack_scratch SEC(".maps");

static __always_inline struct coolbpf_stack_scratch *coolbpf_stack_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&coolbpf_stack_scratch, &zero);
}

/* A 64-bit hash of `nr` words (a multiply-rotate mix per word, then a finalizer); never
 * 0, which means "no stack". */
static __always_inline __u64 coolbpf_hash_words(const __u64 *words, __u32 nr, __u32 max)
{
	__u64 h = 0x9e3779b97f4a7c15ULL ^ nr;

	for (__u32 i = 0; i < max; i++) {
		if (i >= nr)
			break;
		h ^= words[i] * 0xff51afd7ed558ccdULL;
		h = ((h << 31) | (h >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h ? h : 1;
}

/* Stores `value` in `map` under the hash of its `*nr` frames (`per_frame` words each, at
 * `words`), unless it is stored already, and returns the id; 0 for no frames. `*nr` is
 * clamped to `max_frames` first. */
static __always_inline __u64 coolbpf_store_frames(void *map, void *value, __u32 *nr,
						  const __u64 *words, __u32 per_frame,
						  __u32 max_frames)
{
	__u64 id;

	if (!*nr)
		return 0;
	if (*nr > max_frames)
		*nr = max_frames;
	id = coolbpf_hash_words(words, per_frame * *nr, per_frame * max_frames);
	if (!bpf_map_lookup_elem(map, &id))
		bpf_map_update_elem(map, &id, value, BPF_ANY);
	return id;
}

/* Stores `stack` (if it is not stored yet) and returns its id; 0 for an empty stack (or
 * none). */
static __always_inline __u64 coolbpf_store_ips(struct coolbpf_unwind_frames *stack)
{
	if (!stack)
		return 0;
	return coolbpf_store_frames(&coolbpf_user_stacks, stack, &stack->nr, stack->ips, 1,
				    COOLBPF_STORED_IPS);
}

/* In front of the store, per CPU, for hooks that see the same stack again and again (a
 * loop of kernel launches): the last stack stored and its id. A stack equal to it costs
 * a compare instead of a hash and a map lookup. Every 64th hit looks the id up anyway,
 * so that a stack the LRU evicted is stored again within 64 calls. */
#define COOLBPF_STACK_MEMO_REFRESH 63

struct coolbpf_stack_memo {
	__u64 id;
	__u32 hits;
	__u32 pad;
	struct coolbpf_unwind_frames frames;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct coolbpf_stack_memo);
} coolbpf_stack_memo SEC(".maps");

/* coolbpf_store_ips() through the per-CPU memo. */
static __always_inline __u64 coolbpf_store_ips_memo(struct coolbpf_unwind_frames *stack)
{
	struct coolbpf_stack_memo *memo;
	__u32 zero = 0, nr, i;
	__u64 id;

	if (!stack || !stack->nr)
		return 0;
	nr = stack->nr > COOLBPF_STORED_IPS ? COOLBPF_STORED_IPS : stack->nr;
	memo = bpf_map_lookup_elem(&coolbpf_stack_memo, &zero);
	if (!memo)
		return coolbpf_store_ips(stack);
	if (memo->id && memo->frames.nr == nr) {
		for (i = 0; i < COOLBPF_STORED_IPS; i++) {
			if (i >= nr || memo->frames.ips[i] != stack->ips[i])
				break;
		}
		if (i >= nr && (++memo->hits & COOLBPF_STACK_MEMO_REFRESH))
			return memo->id;
	}
	id = coolbpf_store_ips(stack);
	if (id != memo->id || memo->frames.nr != nr) {
		if (bpf_probe_read_kernel(memo->frames.ips, nr * sizeof(__u64), stack->ips)) {
			memo->id = 0;
			return id;
		}
		memo->frames.nr = nr;
		memo->hits = 0;
	}
	memo->id = id;
	return id;
}

/* The same for CPython frames (`stack->nr` frames of two words each). */
static __always_inline __u64 coolbpf_store_python(struct coolbpf_stored_python *stack)
{
	return coolbpf_store_frames(&coolbpf_python_stacks, stack, &stack->nr, stack->words, 2,
				    COOLBPF_STORED_PYTHON_FRAMES);
}

#endif /* COOLBPF_STACKSTORE_BPF_H */
