/* A process with a known shape, calling the real cudaLaunchKernel (which fails at once
 * without a driver):
 *   launch_loop LIBCUDART busy SECONDS   launches back to back, with a little CPU work
 *                                        between launches (launch-bound);
 *   launch_loop LIBCUDART sleepy SECONDS launches, then sleeps 20 ms (blocked elsewhere);
 *   launch_loop LIBCUDART count N        N launches, then prints the ns per launch
 *                                        (the cost-per-call benchmark).
 * Prints "ready" and waits for a byte on stdin before it starts. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct { unsigned x, y, z; } dim3;
typedef int (*launch_fn)(const void *, dim3, dim3, void **, size_t, void *);

static launch_fn launch;

__attribute__((noinline)) void train_step_kernel(void) { __asm__ volatile(""); }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) int launch_one(int i)
{
	dim3 grid = { 64, 1, 1 }, block = { 256, 1, 1 };
	void *args[1] = { &i };
	return launch((const void *)train_step_kernel, grid, block, args, 0, 0);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s LIBCUDART busy|sleepy|count ARG\n", argv[0]);
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW);
	launch = lib ? (launch_fn)dlsym(lib, "cudaLaunchKernel") : 0;
	if (!launch) {
		fprintf(stderr, "cannot load cudaLaunchKernel from %s\n", argv[1]);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char go;
	if (read(0, &go, 1) != 1)
		return 1;
	const char *mode = argv[2];
	volatile unsigned long work = 0;
	if (strcmp(mode, "count") == 0) {
		long n = atol(argv[3]);
		double start = now_s();
		for (long i = 0; i < n; i++)
			launch_one((int)i);
		printf("%.1f ns per launch\n", (now_s() - start) * 1e9 / n);
	} else {
		double end = now_s() + atof(argv[3]);
		int sleepy = strcmp(mode, "sleepy") == 0;
		for (int i = 0; now_s() < end; i++) {
			launch_one(i);
			if (sleepy)
				usleep(20000);
			else
				for (int j = 0; j < 20000; j++)
					work += j;
		}
		printf("done\n");
	}
	fflush(stdout);
	while (read(0, &go, 1) > 0) {
	}
	return 0;
}
