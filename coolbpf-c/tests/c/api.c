/* Exercises the C API's argument checking, the symbolizer and (with "profile") the
 * profiler, checking results; run by tests/c_examples.rs under valgrind or ASan.
 * Prints OK and exits 0 when every check passed. */
#define _GNU_SOURCE
#include <coolbpf.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n",     \
				__FILE__, __LINE__, #cond, coolbpf_last_error_message());  \
			failures++;                                                        \
		}                                                                          \
	} while (0)

__attribute__((noinline)) int coolbpf_test_marker(int x)
{
	return x * 3 + 1;
}

/* Burns CPU in a function of its own, so the profile has a name to find. */
__attribute__((noinline)) static unsigned long burn_cpu(double seconds)
{
	struct timespec start, now;
	volatile unsigned long spins = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		for (int i = 0; i < 100000; i++)
			spins++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
	return spins;
}

static void arguments(void)
{
	coolbpf_probe *probe = NULL;
	coolbpf_object *object = NULL;
	char bad_utf8[] = { 's', (char)0xff, 'x', 0 };
	coolbpf_option null_key[] = { { NULL, "1" } };
	coolbpf_option bad_pid[] = { { "pid", "not-a-pid" } };
	uint64_t value;

	CHECK(coolbpf_probe_open(NULL, NULL, 0, 0, &probe) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(strstr(coolbpf_last_error_message(), "name is NULL") != NULL);
	CHECK(coolbpf_last_error_code() == COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_open("syscount", NULL, 0, 0, NULL) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_open(bad_utf8, NULL, 0, 0, &probe) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(strstr(coolbpf_last_error_message(), "UTF-8") != NULL);
	CHECK(coolbpf_probe_open("nope", NULL, 0, 0, &probe) == -COOLBPF_ERR_NOT_FOUND);
	CHECK(strstr(coolbpf_last_error_message(), "syscount") != NULL); /* lists known */
	CHECK(coolbpf_probe_open("syscount", NULL, 3, 0, &probe) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_open("syscount", null_key, 1, 0, &probe) ==
	      -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_open("syscount", bad_pid, 1, 0, &probe) ==
	      -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(probe == NULL);
	CHECK(coolbpf_probe_start(NULL) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_poll(NULL, 0, NULL, NULL) == -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_probe_records_dropped(NULL, &value) == -COOLBPF_ERR_INVALID_ARGUMENT);
	coolbpf_probe_close(NULL);
	CHECK(coolbpf_record_kind(NULL) == COOLBPF_RECORD_INVALID);
	CHECK(coolbpf_record_json(NULL) == NULL);
	CHECK(coolbpf_record_counter(NULL, &value) == -COOLBPF_ERR_INVALID_ARGUMENT);
	coolbpf_record_free(NULL);
	CHECK(coolbpf_object_open("/nonexistent/x.bpf.o", &object) == -COOLBPF_ERR_NOT_FOUND);
	CHECK(object == NULL);
	CHECK(coolbpf_object_attach(NULL, "p", "raw_tp:sys_enter") ==
	      -COOLBPF_ERR_INVALID_ARGUMENT);
	coolbpf_object_close(NULL);
	CHECK(coolbpf_profile_export(NULL, COOLBPF_FORMAT_SVG, NULL) ==
	      -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(strcmp(coolbpf_error_name(-COOLBPF_ERR_NOT_FOUND), "not_found") == 0);
	CHECK(coolbpf_probe_count() > 0 && coolbpf_probe_name(coolbpf_probe_count()) == NULL);
	CHECK(strcmp(coolbpf_version(), "") != 0);
}

static void symbolize(void)
{
	coolbpf_symbolizer *symbolizer = NULL;
	coolbpf_symbols *symbols = NULL;
	coolbpf_frame frame;
	uint64_t addrs[2] = { (uint64_t)(uintptr_t)&coolbpf_test_marker, 1 };
	int found = 0;

	CHECK(coolbpf_symbolizer_new(&symbolizer) == 0);
	CHECK(coolbpf_symbolize_process(symbolizer, (uint32_t)getpid(), addrs, 2, &symbols) == 0);
	CHECK(coolbpf_symbols_count(symbols) == 2);
	for (size_t i = 0; i < coolbpf_symbols_frame_count(symbols, 0); i++) {
		CHECK(coolbpf_symbols_frame(symbols, 0, i, &frame) == 0);
		found |= strcmp(frame.function, "coolbpf_test_marker") == 0;
	}
	CHECK(found);
	CHECK(coolbpf_symbols_frame_count(symbols, 1) == 0);
	CHECK(coolbpf_symbols_unknown(symbols, 1) != NULL);
	CHECK(coolbpf_symbols_frame(symbols, 5, 0, &frame) == -COOLBPF_ERR_INVALID_ARGUMENT);
	coolbpf_symbols_free(symbols);
	symbols = NULL;

	CHECK(coolbpf_symbolize_process(symbolizer, 0x7ffffff0u, addrs, 1, &symbols) ==
	      -COOLBPF_ERR_NOT_FOUND);
	CHECK(coolbpf_symbolize_elf(symbolizer, "/nonexistent", addrs, 1, &symbols) ==
	      -COOLBPF_ERR_NOT_FOUND);
	CHECK(coolbpf_symbolize_kernel(symbolizer, NULL, 1, &symbols) ==
	      -COOLBPF_ERR_INVALID_ARGUMENT);
	CHECK(coolbpf_symbolize_kernel(symbolizer, addrs, 0, &symbols) == 0);
	CHECK(coolbpf_symbols_count(symbols) == 0);
	coolbpf_symbols_free(symbols);
	coolbpf_symbolizer_free(symbolizer);
}

static void profile(void)
{
	coolbpf_profiler *profiler = NULL;
	coolbpf_profile *profile = NULL;
	coolbpf_bytes folded = { 0 }, pprof = { 0 }, svg = { 0 };
	uint64_t samples = 0, lost = 0;

	CHECK(coolbpf_profiler_start(0, 0x7ffffff0u, &profiler) == -COOLBPF_ERR_NOT_FOUND);
	CHECK(coolbpf_profiler_start(99, (uint32_t)getpid(), &profiler) == 0);
	if (!profiler)
		return;
	burn_cpu(1.0);
	CHECK(coolbpf_profiler_tick(profiler) == 0);
	burn_cpu(0.5);
	CHECK(coolbpf_profiler_finish(profiler, &profile) == 0);
	if (!profile)
		return;
	CHECK(coolbpf_profile_samples(profile, &samples, &lost) == 0);
	printf("profile: %llu samples, %llu lost\n", (unsigned long long)samples,
	       (unsigned long long)lost);
	CHECK(samples >= 50); /* 1.5 s of one busy thread at 99 Hz is about 150 */
	CHECK(coolbpf_profile_export(profile, COOLBPF_FORMAT_FOLDED, &folded) == 0);
	CHECK(folded.data && strstr((const char *)folded.data, "burn_cpu") != NULL);
	CHECK(coolbpf_profile_export(profile, COOLBPF_FORMAT_PPROF, &pprof) == 0);
	CHECK(pprof.len > 2 && pprof.data[0] == 0x1f && pprof.data[1] == 0x8b); /* gzip */
	CHECK(coolbpf_profile_export(profile, COOLBPF_FORMAT_SVG, &svg) == 0);
	CHECK(svg.data && strstr((const char *)svg.data, "<svg") != NULL);
	CHECK(coolbpf_profile_export(profile, 42, &svg) == -COOLBPF_ERR_INVALID_ARGUMENT);
	coolbpf_bytes_free(&folded);
	coolbpf_bytes_free(&pprof);
	coolbpf_bytes_free(&svg);
	coolbpf_bytes_free(&svg); /* twice is harmless */
	coolbpf_profile_free(profile);
}

/* Off-CPU: the same profiler handle and exports, weights in microseconds. */
static void off_cpu(void)
{
	coolbpf_profiler *profiler = NULL;
	coolbpf_profile *profile = NULL;
	coolbpf_bytes folded = { 0 };
	uint64_t spans = 0, lost = 0;
	struct timespec nap = { 0, 20 * 1000 * 1000 };

	CHECK(coolbpf_profiler_start_off_cpu(0x7ffffff0u, &profiler) == -COOLBPF_ERR_NOT_FOUND);
	CHECK(coolbpf_profiler_start_off_cpu((uint32_t)getpid(), &profiler) == 0);
	if (!profiler)
		return;
	for (int i = 0; i < 20; i++)
		nanosleep(&nap, NULL);
	CHECK(coolbpf_profiler_finish(profiler, &profile) == 0);
	if (!profile)
		return;
	CHECK(coolbpf_profile_samples(profile, &spans, &lost) == 0);
	printf("off-CPU: %llu spans, %llu lost\n", (unsigned long long)spans,
	       (unsigned long long)lost);
	CHECK(spans >= 19); /* one per sleep at least */
	CHECK(coolbpf_profile_export(profile, COOLBPF_FORMAT_FOLDED, &folded) == 0);
	CHECK(folded.data && strstr((const char *)folded.data, "nanosleep") != NULL);
	coolbpf_bytes_free(&folded);
	coolbpf_profile_free(profile);
}

int main(int argc, char **argv)
{
	arguments();
	symbolize();
	if (argc > 1 && strcmp(argv[1], "profile") == 0) {
		profile();
		off_cpu();
	}
	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	printf("OK\n");
	return 0;
}
