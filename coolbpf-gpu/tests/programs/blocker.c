/* A stand-in for a call that hangs in the GPU stack: `blocker MS QUICK` calls
 * quick_call() QUICK times, then block_in_driver(MS) from wait_for_gpu(). The hang
 * watchdog is generic (a watched call entered and not returned), so any function will
 * do. Prints "ready", waits for a byte, works, prints "done", waits for stdin to close. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int quick_call(int i) { return i * 2; }

__attribute__((noinline)) void block_in_driver(int ms) { usleep(ms * 1000); }

__attribute__((noinline)) void wait_for_gpu(int ms) { block_in_driver(ms); }

int main(int argc, char **argv)
{
	char go;
	int sum = 0;

	if (argc != 3)
		return 2;
	printf("ready\n");
	fflush(stdout);
	if (read(0, &go, 1) != 1)
		return 1;
	for (int i = 0; i < atoi(argv[2]); i++)
		sum += quick_call(i);
	wait_for_gpu(atoi(argv[1]));
	printf("done %d\n", sum);
	fflush(stdout);
	while (read(0, &go, 1) > 0) {
	}
	return 0;
}
