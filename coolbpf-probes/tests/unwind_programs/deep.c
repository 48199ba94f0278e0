/* main -> deep(200) -> deep(199) -> ... -> deep(0) -> hot: a stack deeper than the
 * profiler's 127 frames, so every sample in hot is truncated. */
#define WANT_HOT
#include "common.h"

NOINLINE unsigned long long deep(int n, double s)
{
	unsigned long long r = n ? deep(n - 1, s) : hot(s);
	sink += r;
	return r + 1;
}

static void run(double s) { sink += deep(200, s); }

int main(int argc, char **argv) { return serve(argc, argv, run); }
