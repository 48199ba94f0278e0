/* syscount from C: counts this process's own getppid() calls with coolbpf's syscount
 * probe and checks the count is exact.
 *
 *   cc syscount.c $(pkg-config --cflags --libs coolbpf) -o syscount && sudo ./syscount [N]
 *
 * Exits 0 when the probe counted exactly N calls (default 1000), 1 otherwise. Also shows
 * the error path: an unknown probe and an unknown option are refused with their codes. */
#include <coolbpf.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tally {
	long pid;         /* this process */
	uint64_t getppid; /* syscalls_total{pid=this, syscall="getppid"} */
	int found;
	size_t records;
};

/* Called for every record, with the tally as context (no global state). */
static int on_record(const coolbpf_record *record, void *ctx)
{
	struct tally *tally = ctx;
	const char *name = coolbpf_record_name(record);
	size_t n = coolbpf_record_label_count(record);
	int pid_matches = 0, is_getppid = 0;

	tally->records++;
	printf("%s\n", coolbpf_record_json(record));
	if (coolbpf_record_kind(record) != COOLBPF_RECORD_COUNTER || !name ||
	    strcmp(name, "syscalls_total") != 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		coolbpf_label label;
		if (coolbpf_record_label(record, i, &label) != 0)
			return 1;
		if (strcmp(label.key, "pid") == 0 && !label.string_value)
			pid_matches = label.int_value == tally->pid;
		if (strcmp(label.key, "syscall") == 0 && label.string_value)
			is_getppid = strcmp(label.string_value, "getppid") == 0;
	}
	if (pid_matches && is_getppid) {
		/* Counters are cumulative: the last record is the total. */
		if (coolbpf_record_counter(record, &tally->getppid) != 0)
			return 1;
		tally->found = 1;
	}
	return 0;
}

static int fail(const char *what, int32_t code)
{
	fprintf(stderr, "syscount: %s: %s (%s)\n", what, coolbpf_last_error_message(),
		coolbpf_error_name(code));
	return 1;
}

int main(int argc, char **argv)
{
	long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
	struct tally tally = { .pid = (long)getpid() };
	coolbpf_probe *probe = NULL;
	char pid[32];
	int32_t rc;

	/* Errors come back as negated stable codes, with a message. */
	rc = coolbpf_probe_open("no_such_probe", NULL, 0, 0, &probe);
	if (rc != -COOLBPF_ERR_NOT_FOUND || probe)
		return fail("an unknown probe was not refused as not_found", rc);
	printf("expected error: %s\n", coolbpf_last_error_message());
	coolbpf_option bad[] = { { "no_such_option", "1" } };
	rc = coolbpf_probe_open("syscount", bad, 1, 0, &probe);
	if (rc != -COOLBPF_ERR_INVALID_ARGUMENT || probe)
		return fail("an unknown option was not refused as invalid_argument", rc);
	printf("expected error: %s\n", coolbpf_last_error_message());

	snprintf(pid, sizeof pid, "%ld", tally.pid);
	coolbpf_option options[] = { { "pid", pid } };
	rc = coolbpf_probe_open("syscount", options, 1, 200, &probe);
	if (rc != 0)
		return fail("open syscount", rc);
	rc = coolbpf_probe_start(probe);
	if (rc != 0) {
		coolbpf_probe_close(probe);
		return fail("start syscount", rc);
	}
	for (long i = 0; i < calls; i++)
		getppid();
	/* The final collection at stop holds the totals; records stay readable after it. */
	rc = coolbpf_probe_stop(probe);
	if (rc != 0) {
		coolbpf_probe_close(probe);
		return fail("stop syscount", rc);
	}
	do {
		rc = coolbpf_probe_poll(probe, 0, on_record, &tally);
	} while (rc > 0);
	coolbpf_probe_close(probe);
	if (rc < 0)
		return fail("poll syscount", rc);

	printf("records: %zu, getppid calls made: %ld, counted: %llu\n", tally.records, calls,
	       (unsigned long long)tally.getppid);
	if (!tally.found || tally.getppid != (uint64_t)calls) {
		fprintf(stderr, "syscount: MISMATCH: made %ld getppid calls, counted %llu\n", calls,
			(unsigned long long)tally.getppid);
		return 1;
	}
	printf("OK\n");
	return 0;
}
