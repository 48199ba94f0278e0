/* The C side of the bindings throughput benchmark (benches/bindings/main.rs): loads the
 * transport object, consumes its ring buffer through coolbpf's C API with a callback,
 * makes N getppid() calls on this thread, and prints one line:
 *
 *   delivered=D produced=P lost=L out_of_order=O ns=T cpu_ns=C
 *
 * where T is the time from the first syscall to the last event reaching the callback, and
 * C the CPU time the process spent meanwhile outside this (the producing) thread: what
 * consuming cost, on the ring buffer's thread.
 * Usage: throughput OBJECT N RING_BYTES */
#define _GNU_SOURCE
#include <coolbpf.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct counter {
	uint64_t expected;
	uint64_t seen;
	uint64_t next_seq;
	uint64_t out_of_order;
	struct timespec last;
	atomic_int done;
};

static int on_event(const uint8_t *data, size_t size, void *ctx)
{
	struct counter *c = ctx;
	uint64_t seq;

	if (size < sizeof seq)
		return 1;
	__builtin_memcpy(&seq, data, sizeof seq);
	if (seq != c->next_seq)
		c->out_of_order++;
	c->next_seq = seq + 1;
	if (++c->seen == c->expected) {
		clock_gettime(CLOCK_MONOTONIC, &c->last);
		atomic_store_explicit(&c->done, 1, memory_order_release);
	}
	return 0;
}

/* CPU time (user + system) of the process or of the calling thread, ns. */
static long long cpu_ns(int who)
{
	struct rusage usage;

	getrusage(who, &usage);
	return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000000LL +
	       (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1000LL;
}

static int fail(const char *what)
{
	fprintf(stderr, "throughput: %s: %s\n", what, coolbpf_last_error_message());
	return 1;
}

int main(int argc, char **argv)
{
	struct counter counter = { 0 };
	coolbpf_object_builder *builder = NULL;
	coolbpf_object *object = NULL;
	coolbpf_ringbuf *ringbuf = NULL;
	coolbpf_losses losses = { 0 };
	struct timespec start, now;
	uint32_t tid = (uint32_t)syscall(SYS_gettid), nr = SYS_getppid;
	uint64_t produced = 0;
	long waited_ms = 0;
	long long process_cpu, thread_cpu;

	if (argc != 4) {
		fprintf(stderr, "usage: %s OBJECT N RING_BYTES\n", argv[0]);
		return 2;
	}
	counter.expected = strtoull(argv[2], NULL, 10);
	if (coolbpf_object_builder_new(argv[1], &builder) ||
	    coolbpf_object_builder_set_global(builder, "target_tid", &tid, sizeof tid) ||
	    coolbpf_object_builder_set_global(builder, "target_syscall", &nr, sizeof nr) ||
	    coolbpf_object_builder_set_max_entries(builder, "events",
						   (uint32_t)strtoul(argv[3], NULL, 10))) {
		coolbpf_object_builder_free(builder);
		return fail("configure");
	}
	if (coolbpf_object_builder_load(builder, &object))
		return fail("load");
	if (coolbpf_object_attach(object, "transport", NULL) ||
	    coolbpf_ringbuf_open(object, "events", on_event, &counter, &ringbuf)) {
		coolbpf_object_close(object);
		return fail("attach");
	}
	process_cpu = cpu_ns(RUSAGE_SELF);
	thread_cpu = cpu_ns(RUSAGE_THREAD);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (uint64_t i = 0; i < counter.expected; i++)
		getppid();
	while (!atomic_load_explicit(&counter.done, memory_order_acquire) && waited_ms < 20000) {
		usleep(1000);
		waited_ms++;
	}
	process_cpu = cpu_ns(RUSAGE_SELF) - process_cpu;
	thread_cpu = cpu_ns(RUSAGE_THREAD) - thread_cpu;
	coolbpf_object_detach_all(object);
	if (coolbpf_ringbuf_stop(ringbuf) || coolbpf_ringbuf_losses(ringbuf, &losses) ||
	    coolbpf_object_global(object, "produced", &produced, sizeof produced, NULL)) {
		coolbpf_ringbuf_free(ringbuf);
		coolbpf_object_close(object);
		return fail("account");
	}
	coolbpf_ringbuf_free(ringbuf);
	coolbpf_object_close(object);
	if (!counter.done)
		clock_gettime(CLOCK_MONOTONIC, &counter.last);
	now = counter.last;
	printf("delivered=%llu produced=%llu lost=%llu out_of_order=%llu ns=%lld cpu_ns=%lld\n",
	       (unsigned long long)losses.delivered, (unsigned long long)produced,
	       (unsigned long long)losses.total, (unsigned long long)counter.out_of_order,
	       (long long)(now.tv_sec - start.tv_sec) * 1000000000LL +
		       (now.tv_nsec - start.tv_nsec),
	       process_cpu - thread_cpu);
	return 0;
}
