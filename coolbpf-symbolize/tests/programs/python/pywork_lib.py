# The library half of coolbpf's Python profiling workload: a recursion (fib), reached
# through a class method (Sorter.key) that a C function (sorted) calls back.


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Sorter:
    def rank(self, items):
        return sorted(items, key=self.key)

    def key(self, x):
        return fib(x % 5 + 14)


def nap(seconds):
    import time

    time.sleep(seconds)
