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
