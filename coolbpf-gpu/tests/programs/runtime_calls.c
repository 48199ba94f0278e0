/* Calls the real CUDA runtime's exported functions a known number of times with known
 * arguments: `runtime_calls LIBCUDART N`. Without a driver each call fails at once
 * (cudaErrorInsufficientDriver), which is what a uprobe test needs: the library's real
 * code runs with the real arguments. Waits for stdin to close before exiting, so that
 * the tracer can still read its maps. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct { unsigned x, y, z; } dim3;
typedef int (*launch_fn)(const void *, dim3, dim3, void **, size_t, void *);
typedef int (*malloc_fn)(void **, size_t);
typedef int (*free_fn)(void *);
typedef int (*memcpy_fn)(void *, const void *, size_t, int);
typedef int (*sync_stream_fn)(void *);
typedef int (*sync_device_fn)(void);

static launch_fn launch;
static malloc_fn cuda_malloc;
static free_fn cuda_free;
static memcpy_fn cuda_memcpy;
static sync_stream_fn stream_sync;
static sync_device_fn device_sync;

/* Stands in for a kernel's host stub: its address is what the launch passes. */
__attribute__((noinline)) void fake_kernel_stub(void) { __asm__ volatile(""); }

__attribute__((noinline)) int launch_site(int i)
{
	dim3 grid = { 7, 5, 3 }, block = { 128, 2, 1 };
	void *args[1] = { &i };
	return launch((const void *)fake_kernel_stub, grid, block, args, 4096, (void *)0xabc0);
}

__attribute__((noinline)) void run_calls(int n)
{
	static char host[1 << 16];
	int last = 0;

	for (int i = 0; i < n; i++) {
		void *ptr = 0;
		last = launch_site(i);
		cuda_malloc(&ptr, 1 << 20);
		cuda_memcpy(host, host + 4096, 4096, 1);
		stream_sync((void *)0xabc0);
		cuda_free((void *)0x7000);
	}
	device_sync();
	printf("last launch returned %d\n", last);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s LIBCUDART N\n", argv[0]);
		return 2;
	}
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	launch = (launch_fn)dlsym(lib, "cudaLaunchKernel");
	cuda_malloc = (malloc_fn)dlsym(lib, "cudaMalloc");
	cuda_free = (free_fn)dlsym(lib, "cudaFree");
	cuda_memcpy = (memcpy_fn)dlsym(lib, "cudaMemcpy");
	stream_sync = (sync_stream_fn)dlsym(lib, "cudaStreamSynchronize");
	device_sync = (sync_device_fn)dlsym(lib, "cudaDeviceSynchronize");
	if (!launch || !cuda_malloc || !cuda_free || !cuda_memcpy || !stream_sync || !device_sync) {
		fprintf(stderr, "a runtime function is missing\n");
		return 1;
	}
	/* Tell the test the library is mapped, then wait for it to start the calls. */
	printf("ready\n");
	fflush(stdout);
	char go;
	if (read(0, &go, 1) != 1)
		return 1;
	run_calls(atoi(argv[2]));
	fflush(stdout);
	while (read(0, &go, 1) > 0) {
	}
	return 0;
}
