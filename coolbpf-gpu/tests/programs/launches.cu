// A real CUDA program: `launches N` launches demo::scale<float> N times through the
// `<<<>>>` syntax (CUDA 13: __cudaGetKernel + __cudaLaunchKernel, or cudaLaunchKernel).
// Without a driver every launch fails at once; the runtime's code still runs with the
// real arguments. Prints "ready", waits for a byte on stdin, launches, prints "done",
// then waits for stdin to close so that its maps outlive the tracer's last look.
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <cuda_runtime.h>

namespace demo {
template <typename T> __global__ void scale(T *x, T a, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		x[i] *= a;
}
} // namespace demo

__global__ void spin_forever(volatile int *flag)
{
	while (*flag == 0) {
	}
}

__attribute__((noinline)) void launch_scales(int n)
{
	for (int i = 0; i < n; i++)
		demo::scale<float><<<dim3(3, 2, 1), dim3(64, 1, 1), 128>>>(nullptr, 2.0f, 1024);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	char go;
	printf("ready\n");
	fflush(stdout);
	if (read(0, &go, 1) != 1)
		return 1;
	launch_scales(n);
	printf("done %d\n", (int)cudaGetLastError());
	fflush(stdout);
	while (read(0, &go, 1) > 0) {
	}
	return 0;
}
