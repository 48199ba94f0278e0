// chain::level1 -> ... -> chain::level5 -> chain::hot, in C++: a class with virtual
// dispatch on the way and a std::vector in the hot loop.
#include <vector>
extern "C" {
#include "common.h"
}

namespace chain {

volatile unsigned long long sink;

struct Step {
	virtual ~Step() = default;
	virtual unsigned long long go(double s) = 0;
};

NOINLINE unsigned long long hot(double seconds)
{
	double end = now() + seconds;
	std::vector<unsigned long long> v(64, 1);
	do {
		for (int i = 0; i < 1000000; i++)
			v[i & 63] = v[(i + 1) & 63] * 6364136223846793005ULL + 1442695040888963407ULL;
		sink = v[7];
	} while (now() < end);
	return v[3];
}

NOINLINE unsigned long long level5(double s) { unsigned long long r = hot(s); sink += r; return r + 5; }
NOINLINE unsigned long long level4(double s) { unsigned long long r = level5(s); sink += r; return r + 4; }

struct Level3 : Step {
	NOINLINE unsigned long long go(double s) override { unsigned long long r = level4(s); sink += r; return r + 3; }
};

NOINLINE unsigned long long level2(Step &step, double s) { unsigned long long r = step.go(s); sink += r; return r + 2; }
NOINLINE unsigned long long level1(double s) { Level3 l3; unsigned long long r = level2(l3, s); sink += r; return r + 1; }

} // namespace chain

static void run(double s) { chain::sink += chain::level1(s); }

int main(int argc, char **argv) { return serve(argc, argv, run); }
