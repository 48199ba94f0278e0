/* A known call chain for the unwinding tests: main -> level1 -> ... -> level5 -> leaf,
 * built without frame pointers. leaf blocks in read(0) so that a test can take a
 * snapshot of the stack (/proc/PID/syscall, /proc/PID/mem) and unwind it. level3 has a
 * variable-length array, so its CFA is rbp-based even without frame pointers. Every call
 * is followed by a use of its result: no tail calls, and noinline keeps each frame. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

volatile int sink;

NOINLINE int leaf(int x)
{
	char c;
	ssize_t n = read(0, &c, 1);
	return x + (int)n + sink;
}

NOINLINE int level5(int x) { int r = leaf(x + 1); sink += r; return r * 3; }
NOINLINE int level4(int x) { int r = level5(x + 1); sink += r; return r * 5; }

NOINLINE int level3(int x)
{
	char buf[x * 16 + 16];
	memset(buf, x, sizeof(buf));
	int r = level4(x + buf[x]);
	sink += r + buf[3];
	return r * 7;
}

NOINLINE int level2(int x) { int r = level3(x + 1); sink += r; return r * 11; }
NOINLINE int level1(int x) { int r = level2(x + 1); sink += r; return r * 13; }

int main(int argc, char **argv)
{
	(void)argv;
	int r = level1(argc);
	printf("%d\n", r);
	return 0;
}
