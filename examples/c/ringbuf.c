/* A user's own BPF object from C: load ringbuf.bpf.o with globals set, attach its
 * program by target text, consume its ring buffer with a callback, read a map value,
 * and check that every event produced was delivered or counted as lost.
 *
 *   cc ringbuf.c $(pkg-config --cflags --libs coolbpf) -o ringbuf
 *   sudo ./ringbuf path/to/ringbuf.bpf.o [N]
 *
 * Exits 0 when delivered == produced == N, in order, with nothing lost. */
#define _GNU_SOURCE
#include <coolbpf.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Keep in step with struct event in ringbuf.bpf.c. */
struct event {
	uint64_t seq;
	uint32_t tid;
	uint32_t syscall;
};

/* Written only by the ring buffer's thread, read after coolbpf_ringbuf_stop(). */
struct consumer {
	uint64_t seen;
	uint64_t next_seq;
	uint64_t out_of_order;
	uint64_t malformed;
};

static int on_event(const uint8_t *data, size_t size, void *ctx)
{
	struct consumer *consumer = ctx;
	const struct event *event = (const struct event *)data;

	if (size < sizeof(*event)) {
		consumer->malformed++;
		return 1; /* counted as rejected */
	}
	if (event->seq != consumer->next_seq)
		consumer->out_of_order++;
	consumer->next_seq = event->seq + 1;
	consumer->seen++;
	return 0;
}

static int fail(const char *what, int32_t code)
{
	fprintf(stderr, "ringbuf: %s: %s (%s)\n", what, coolbpf_last_error_message(),
		coolbpf_error_name(code));
	return 1;
}

int main(int argc, char **argv)
{
	struct consumer consumer = { 0 };
	coolbpf_object_builder *builder = NULL;
	coolbpf_object *object = NULL;
	coolbpf_ringbuf *ringbuf = NULL;
	coolbpf_losses losses;
	uint32_t tid = (uint32_t)syscall(SYS_gettid), nr = SYS_getppid, key = 0;
	uint64_t produced = 0;
	size_t size = 0;
	long calls;
	int32_t rc;
	int ok;

	if (argc < 2) {
		fprintf(stderr, "usage: %s OBJECT.bpf.o [N]\n", argv[0]);
		return 2;
	}
	calls = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;

	if ((rc = coolbpf_object_builder_new(argv[1], &builder)) != 0)
		return fail("builder", rc);
	if ((rc = coolbpf_object_builder_set_global(builder, "target_tid", &tid, sizeof tid)) ||
	    (rc = coolbpf_object_builder_set_global(builder, "target_syscall", &nr, sizeof nr)) ||
	    (rc = coolbpf_object_builder_set_max_entries(builder, "events", 4u << 20))) {
		coolbpf_object_builder_free(builder);
		return fail("configure", rc);
	}
	/* Consumes the builder, whatever the outcome. */
	if ((rc = coolbpf_object_builder_load(builder, &object)) != 0)
		return fail("load", rc);

	rc = coolbpf_object_attach(object, "on_sys_enter", "bogus:target");
	if (rc != -COOLBPF_ERR_INVALID_ARGUMENT) {
		coolbpf_object_close(object);
		return fail("bad target text was not refused", rc);
	}
	if ((rc = coolbpf_object_attach(object, "on_sys_enter", "raw_tp:sys_enter")) != 0) {
		coolbpf_object_close(object);
		return fail("attach", rc);
	}
	if ((rc = coolbpf_ringbuf_open(object, "events", on_event, &consumer, &ringbuf)) != 0) {
		coolbpf_object_close(object);
		return fail("ring buffer", rc);
	}
	for (long i = 0; i < calls; i++)
		getppid();
	/* Stop producing, then hand over what the kernel holds and join the thread. */
	coolbpf_object_detach_all(object);
	rc = coolbpf_ringbuf_stop(ringbuf);
	if (rc == 0)
		rc = coolbpf_ringbuf_losses(ringbuf, &losses);
	coolbpf_ringbuf_free(ringbuf);
	if (rc != 0) {
		coolbpf_object_close(object);
		return fail("stop", rc);
	}
	rc = coolbpf_object_map_lookup(object, "produced", &key, sizeof key, &produced,
				       sizeof produced, &size);
	coolbpf_object_close(object);
	if (rc != 0)
		return fail("read map produced", rc);

	printf("calls: %ld, produced: %llu, delivered: %llu (callback saw %llu), lost: %llu, "
	       "out of order: %llu\n",
	       calls, (unsigned long long)produced, (unsigned long long)losses.delivered,
	       (unsigned long long)consumer.seen, (unsigned long long)losses.total,
	       (unsigned long long)consumer.out_of_order);
	ok = produced == (uint64_t)calls && consumer.seen == losses.delivered &&
	     losses.delivered + losses.total == produced && losses.total == 0 &&
	     consumer.out_of_order == 0 && consumer.malformed == 0 && size == sizeof produced;
	printf("%s\n", ok ? "OK" : "MISMATCH");
	return ok ? 0 : 1;
}
