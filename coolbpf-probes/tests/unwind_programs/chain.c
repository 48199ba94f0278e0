/* main -> level1 -> ... -> level5 -> hot, spinning in hot. level3 has a variable-length
 * array (an rbp-based CFA without frame pointers). Each call is followed by a use of its
 * result: no tail calls. */
#include <string.h>
#define WANT_HOT
#include "common.h"

NOINLINE unsigned long long level5(double s) { unsigned long long r = hot(s); sink += r; return r + 5; }
NOINLINE unsigned long long level4(double s) { unsigned long long r = level5(s); sink += r; return r + 4; }

NOINLINE unsigned long long level3(double s)
{
	int n = 16 + (int)(sink & 15);
	char buf[n];
	memset(buf, (int)n, sizeof(buf));
	unsigned long long r = level4(s);
	sink += r + buf[n - 1];
	return r + 3;
}

NOINLINE unsigned long long level2(double s) { unsigned long long r = level3(s); sink += r; return r + 2; }
NOINLINE unsigned long long level1(double s) { unsigned long long r = level2(s); sink += r; return r + 1; }

static void run(double s) { sink += level1(s); }

int main(int argc, char **argv) { return serve(argc, argv, run); }
