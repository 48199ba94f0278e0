#!/usr/bin/env bash
# The coolbpf demo: the kernel feature report, then syscount and execsnoop over a small
# workload this script starts, each checked against what the workload is known to do.
set -euo pipefail
coolbpf=${COOLBPF:-target/release/coolbpf}

section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

section "coolbpf features: what this kernel can do (detected by loading tiny programs)"
"$coolbpf" features

section "coolbpf list: the probe catalogue"
"$coolbpf" list

section "syscount on one process: dd copying 100000 single bytes (expect ~100000 read, 100000 write)"
# The shell waits on a fifo, then execs dd under the same pid, so syscount is attached
# before the first syscall it is meant to count.
fifo=$(mktemp -u)
mkfifo "$fifo"
sh -c "read go < $fifo; exec dd if=/dev/zero of=/dev/null bs=1 count=100000 status=none" &
workload=$!
"$coolbpf" run syscount --pid "$workload" --duration 3 &
run_pid=$!
sleep 1
echo go > "$fifo"
wait "$workload"
wait "$run_pid"
rm -f "$fifo"

section "execsnoop: five execs of /bin/true with arguments"
"$coolbpf" run execsnoop --duration 3 &
run_pid=$!
sleep 1
for i in 1 2 3 4 5; do /bin/true "demo-exec-$i" "second arg"; done
wait "$run_pid"

section "the same as JSON lines (--json), one record per line"
"$coolbpf" run execsnoop --duration 2 --json &
run_pid=$!
sleep 1
/bin/true json-demo
wait "$run_pid"

section "profile: every CPU for 10 s while a C program spins in burn_cpu (flame.svg, top 10)"
# The workload is built here with frame pointers, which user stacks are walked by. Two
# profilers run side by side (each with its own perf events): one draws flame.svg, the
# other writes folded stacks, from which the top functions are counted.
profile_dir=$(mktemp -d)
cat > "$profile_dir/burn.c" <<'EOF'
#include <stdlib.h>
#include <time.h>

volatile unsigned long long sink;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void burn_cpu(double seconds)
{
	double end = now() + seconds;
	unsigned long long x = 1;

	do {
		for (int i = 0; i < 1000000; i++)
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		sink = x;
	} while (now() < end);
}

int main(int argc, char **argv)
{
	burn_cpu(argc > 1 ? atof(argv[1]) : 12);
	return 0;
}
EOF
"${CC:-cc}" -O1 -g -fno-omit-frame-pointer "$profile_dir/burn.c" -o "$profile_dir/burn"
"$profile_dir/burn" 12 &
burn_pid=$!
"$coolbpf" profile --duration 10 --format svg -o flame.svg &
svg_pid=$!
"$coolbpf" profile --duration 10 -o "$profile_dir/profile.folded"
wait "$svg_pid"
wait "$burn_pid"
echo "wrote flame.svg ($(wc -c < flame.svg) bytes); open it in a browser to explore the stacks"
echo
echo "top 10 functions by self samples (the innermost frame of each stack):"
awk '{
	i = match($0, / [0-9]+$/)
	n = split(substr($0, 1, i - 1), frames, ";")
	self[frames[n]] += substr($0, i + 1)
	total += substr($0, i + 1)
} END {
	for (f in self) printf "%8d %6.2f%%  %s\n", self[f], 100 * self[f] / total, f
}' "$profile_dir/profile.folded" | sort -rn | head -10
rm -rf "$profile_dir"
