/* The workloads' shared loop: each line on stdin runs the chain for argv[1] seconds and
 * answers "done", so a profiler is attached before the work starts and the process is
 * still alive (blocked on stdin) when its addresses are symbolized. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#ifdef WANT_HOT
volatile unsigned long long sink;

/* The hot function of the C chains: spins for `seconds`. */
static NOINLINE unsigned long long hot(double seconds)
{
	double end = now() + seconds;
	unsigned long long x = 1;

	do {
		for (int i = 0; i < 1000000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		sink = x;
	} while (now() < end);
	return x;
}
#endif

/* Calls run(seconds) once per line on stdin. */
static inline int serve(int argc, char **argv, void (*run)(double))
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	char c;

	while (read(0, &c, 1) == 1) {
		if (c != '\n')
			continue;
		run(seconds);
		if (write(1, "done\n", 5) != 5)
			return 1;
	}
	return 0;
}
