# coolbpf's Python profiling workload: `work` ranks lists forever (or `naps` forever with
# the argument "sleep"), spending its time in pywork_lib.fib under sorted(key=...).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pywork_lib  # noqa: E402


def work():
    sorter = pywork_lib.Sorter()
    while True:
        sorter.rank(list(range(12)))


def naps():
    while True:
        pywork_lib.nap(0.05)


if __name__ == "__main__":
    print("ready", flush=True)
    if sys.argv[1:] == ["sleep"]:
        naps()
    else:
        work()
