//! The CPU-bound workload: one thread per CPU, each doing a fixed amount of work 14 calls
//! deep (so every sample carries a user stack of about 16 frames to walk).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::measure::{reap, Usage};

const SOURCE: &str = r"
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static long chunks;
static double seconds;
static volatile unsigned long long sink;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) unsigned long long bench_leaf(unsigned long long x)
{
	for (int i = 0; i < 1000000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	return x;
}

__attribute__((noinline)) unsigned long long bench_depth(int depth, unsigned long long x)
{
	if (depth == 0)
		return bench_leaf(x);
	return bench_depth(depth - 1, x) + 1;
}

static void *worker(void *arg)
{
	unsigned long long x = (unsigned long long)(long)arg;
	double end = now() + seconds;

	for (long i = 0; chunks ? i < chunks : now() < end; i++)
		x = bench_depth(12, x);
	sink = x;
	return NULL;
}

/* work THREADS CHUNKS        fixed work: CHUNKS million iterations per thread
 * work THREADS 0 SECONDS     spin for SECONDS */
int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	pthread_t ids[256];

	chunks = argc > 2 ? atol(argv[2]) : 100;
	seconds = argc > 3 ? atof(argv[3]) : 0;
	if (threads < 1 || threads > 256)
		return 2;
	for (long t = 0; t < threads; t++)
		pthread_create(&ids[t], NULL, worker, (void *)(t + 1));
	for (int t = 0; t < threads; t++)
		pthread_join(ids[t], NULL);
	return 0;
}
";

/// The built workload.
pub struct Workload {
    binary: PathBuf,
    threads: usize,
}

impl Workload {
    /// Builds it in `dir` (no sibling-call optimization, so the call chain stays on the
    /// stack; with frame pointers, or without when `frame_pointers` is false, as
    /// Debian's libraries are built); `threads` threads per run.
    pub fn build(dir: &Path, threads: usize, frame_pointers: bool) -> io::Result<Self> {
        let source = dir.join("work.c");
        let binary = dir.join("coolbpf-bench-work");
        std::fs::write(&source, SOURCE)?;
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O1", "-g", "-fno-optimize-sibling-calls"])
            .arg(if frame_pointers {
                "-fno-omit-frame-pointer"
            } else {
                "-fomit-frame-pointer"
            })
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .arg("-lpthread")
            .status()?;
        if !status.success() {
            return Err(io::Error::other("cc failed to build the workload"));
        }
        Ok(Self { binary, threads })
    }

    /// Runs `chunks` million iterations on every thread and waits.
    pub fn run(&self, chunks: u64) -> io::Result<Usage> {
        let started = Instant::now();
        let child = Command::new(&self.binary)
            .args([self.threads.to_string(), chunks.to_string()])
            .stdin(Stdio::null())
            .spawn()?;
        reap(&child, started)
    }

    /// Starts spinning on every thread for `seconds`.
    pub fn spawn_for(&self, seconds: f64) -> io::Result<Child> {
        Command::new(&self.binary)
            .args([self.threads.to_string(), "0".into(), seconds.to_string()])
            .stdin(Stdio::null())
            .spawn()
    }
}
