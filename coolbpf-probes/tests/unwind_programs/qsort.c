/* main -> level1 -> level2 -> sort_all -> qsort (Debian's libc, no frame pointers) ->
 * ... -> compare: the hot path is the comparator, called from inside libc. */
#include <stdlib.h>
#include "common.h"

#define N 4096

volatile unsigned long long sink;
static unsigned int values[N];

NOINLINE int compare(const void *a, const void *b)
{
	unsigned int x = *(const unsigned int *)a, y = *(const unsigned int *)b;
	unsigned long long h = x;

	/* Make each comparison cost something, so that the comparator is the hot spot. */
	for (int i = 0; i < 200; i++)
		h = h * 6364136223846793005ULL + y;
	sink += h;
	return (x > y) - (x < y);
}

NOINLINE unsigned long long sort_all(double seconds)
{
	double end = now() + seconds;
	unsigned int seed = 1;

	do {
		for (int i = 0; i < N; i++)
			values[i] = seed = seed * 1103515245 + 12345;
		qsort(values, N, sizeof(values[0]), compare);
	} while (now() < end);
	return values[N / 2];
}

NOINLINE unsigned long long level2(double s) { unsigned long long r = sort_all(s); sink += r; return r + 2; }
NOINLINE unsigned long long level1(double s) { unsigned long long r = level2(s); sink += r; return r + 1; }

static void run(double s) { sink += level1(s); }

int main(int argc, char **argv) { return serve(argc, argv, run); }
