//! coolbpf-symbolize against blazesym and addr2line, on the same binary and the same
//! addresses in the same run. BENCHMARKS.md ("Symbolizer") gives the method and results.
//!
//! ```text
//! cargo bench -p coolbpf-symbolize --bench symbolize                # everything
//! cargo bench -p coolbpf-symbolize --bench symbolize -- warm rss    # some experiments
//! cargo bench -p coolbpf-symbolize --bench symbolize -- --binary PATH [--symtab PATH]
//! ```
//!
//! Experiments (all by default):
//! - `cold`: a fresh process opens the binary and symbolizes one address with lines and
//!   inlines; time from creating the symbolizer to having the result. Page cache warm.
//! - `warm`: 100,000 random addresses inside functions (fixed seed), in one batch per
//!   pass, with lines and inlines. A new symbolizer per round; its first pass (which
//!   parses) is reported apart from the later passes, which reuse it.
//! - `symtab`: cold and warm on a copy without DWARF (`objcopy --strip-debug`), names
//!   from the symbol table only.
//! - `rss`: peak resident set (`VmHWM`) of a fresh process symbolizing 2,000 of those
//!   addresses with lines and inlines, against the same process doing nothing.
//!
//! The binary is a generated C++ program (`support/corpus.rs`), built on first use with
//! `g++ -O2 -g` and cached under `target/tmp`; `--binary` uses another one instead.
//! Cold runs and RSS runs re-execute this binary (`__child ...`) so that each starts
//! from nothing.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use support::peers::{self, Digest, Instance, Mode, Peer};
use support::{corpus, median, range, read_addrs, status_kib, write_addrs, Timer, Times};

/// Addresses in the warm experiments.
const WARM_ADDRS: usize = 100_000;
/// Addresses in the RSS experiment.
const RSS_ADDRS: usize = 2_000;
/// The seed the addresses are drawn with.
const SEED: u64 = 0x00c0_01bf_5eed;
/// Passes after the first in each warm round.
const WARM_PASSES: usize = 3;

/// Counts live heap bytes while [`TRACK`] is set (only in RSS children, so timed runs
/// pay one relaxed load per allocation).
struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        // SAFETY: the caller's layout contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACK.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `alloc` or `realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let live = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(live, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        // SAFETY: the caller's contract for `ptr`, `layout` and `new_size` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Options {
    experiments: Vec<String>,
    binary: Option<PathBuf>,
    symtab: Option<PathBuf>,
    cold_rounds: usize,
    warm_rounds: usize,
    rss_rounds: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__child") {
        child(&args[1..]);
        return;
    }
    let options = parse(&args);
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coolbpf-symbolize-bench");
    std::fs::create_dir_all(&work).expect("create the benchmark's directory");
    let (full, symtab) = if let Some(binary) = &options.binary {
        (binary.clone(), options.symtab.clone())
    } else {
        let built = corpus::build(&work);
        (built.full, Some(built.symtab))
    };
    describe(&full, symtab.as_deref());

    let functions = support::functions(&full);
    let addrs = support::random_addrs(&functions, WARM_ADDRS, SEED);
    println!(
        "addresses: {} drawn (seed {SEED:#x}) uniformly over the {} bytes of {} functions",
        addrs.len(),
        functions.iter().map(|f| f.1).sum::<u64>(),
        functions.len()
    );
    // Where child processes read the addresses from (kept, for running a child by hand
    // under a profiler: `symbolize-HASH __child cold coolbpf full BINARY ADDRS 1`).
    let addrs_file = work.join(format!("addrs-{SEED:x}-{}.bin", addrs.len()));
    write_addrs(&addrs_file, &addrs);

    let wants = |name: &str| {
        options.experiments.is_empty() || options.experiments.iter().any(|e| e == name)
    };
    if wants("cold") {
        cold(&full, Mode::Full, &addrs_file, options.cold_rounds);
    }
    if wants("warm") {
        warm(&full, Mode::Full, &addrs, options.warm_rounds);
    }
    if wants("symtab") {
        if let Some(symtab) = &symtab {
            cold(symtab, Mode::Symtab, &addrs_file, options.cold_rounds);
            warm(symtab, Mode::Symtab, &addrs, options.warm_rounds);
        } else {
            println!("\nsymtab: skipped (no --symtab copy given)");
        }
    }
    if wants("rss") {
        rss(&full, &addrs_file, options.rss_rounds);
    }
}

fn parse(args: &[String]) -> Options {
    let mut options = Options {
        experiments: Vec::new(),
        binary: None,
        symtab: None,
        cold_rounds: 7,
        warm_rounds: 3,
        rss_rounds: 3,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // What cargo passes to every benchmark binary.
            "--bench" => {}
            "--binary" => options.binary = args.next().map(PathBuf::from),
            "--symtab" => options.symtab = args.next().map(PathBuf::from),
            "--quick" => {
                options.cold_rounds = 3;
                options.warm_rounds = 1;
                options.rss_rounds = 1;
            }
            "cold" | "warm" | "symtab" | "rss" => options.experiments.push(arg.clone()),
            unknown => panic!(
                "unknown argument {unknown:?}: expected cold, warm, symtab, rss, --quick, \
                 --binary PATH, --symtab PATH"
            ),
        }
    }
    options
}

fn describe(full: &Path, symtab: Option<&Path>) {
    let sizes = corpus::sizes(full);
    println!(
        "binary: {} ({:.1} MB; .text {:.1} MB; DWARF {:.1} MB = sum of .debug_* sections)",
        full.display(),
        mb(sizes.file),
        mb(sizes.text),
        mb(sizes.dwarf)
    );
    let sections: Vec<String> = sizes
        .sections
        .iter()
        .map(|(name, size)| format!("{name} {:.1}", mb(*size)))
        .collect();
    println!("  DWARF sections (MB): {}", sections.join(", "));
    if let Some(symtab) = symtab {
        let sizes = corpus::sizes(symtab);
        println!(
            "symbol table copy: {} ({:.1} MB, DWARF {:.1} MB)",
            symtab.display(),
            mb(sizes.file),
            mb(sizes.dwarf)
        );
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn mib(bytes: f64) -> f64 {
    bytes / f64::from(1 << 20)
}

/// Peers in the order used by `round`: rotated each round.
fn rotated(round: usize) -> Vec<Peer> {
    let mut peers = Peer::ALL.to_vec();
    let by = round % peers.len();
    peers.rotate_left(by);
    peers
}

fn cold(path: &Path, mode: Mode, addrs_file: &Path, rounds: usize) {
    println!(
        "\ncold ({}): fresh process, open + symbolize 1 address; {rounds} rounds, a different \
         address each, peers rotated; page cache warm",
        mode.name()
    );
    let path = path_str(path);
    let addrs_file = path_str(addrs_file);
    // Warm the page cache and the dynamic loader; not counted.
    for peer in Peer::ALL {
        spawn(&["cold", peer.name(), mode.name(), &path, &addrs_file, "0"]);
    }
    let mut wall = vec![Vec::new(); Peer::ALL.len()];
    let mut cpu = vec![Vec::new(); Peer::ALL.len()];
    let mut hwm = vec![Vec::new(); Peer::ALL.len()];
    for round in 0..rounds {
        let index = (round * 7919 + 1).to_string();
        for peer in rotated(round) {
            let out = spawn(&["cold", peer.name(), mode.name(), &path, &addrs_file, &index]);
            let slot = peer_index(peer);
            wall[slot].push(field(&out, "wall_s") * 1e3);
            cpu[slot].push(field(&out, "cpu_s") * 1e3);
            hwm[slot].push(field(&out, "hwm_kib") / 1024.0);
        }
    }
    println!(
        "  {:<10} {:>8} {:>16} {:>8} {:>16} {:>10} {:>10} {:>10}",
        "peer",
        "CPU ms",
        "CPU range",
        "wall ms",
        "wall range",
        "CPU vs bz",
        "wall vs bz",
        "VmHWM MiB"
    );
    let bz = peer_index(Peer::Blazesym);
    for peer in Peer::ALL {
        let slot = peer_index(peer);
        let ((clo, chi), (wlo, whi)) = (range(&cpu[slot]), range(&wall[slot]));
        println!(
            "  {:<10} {:>8.2} {:>16} {:>8.2} {:>16} {:>9.2}x {:>9.2}x {:>10.1}",
            peer.name(),
            median(&cpu[slot]),
            format!("{clo:.2} - {chi:.2}"),
            median(&wall[slot]),
            format!("{wlo:.2} - {whi:.2}"),
            median(&cpu[slot]) / median(&cpu[bz]),
            median(&wall[slot]) / median(&wall[bz]),
            median(&hwm[slot])
        );
    }
    let ours = peer_index(Peer::Coolbpf);
    per_round("coolbpf / blazesym CPU time", &cpu[ours], &cpu[bz]);
    per_round("coolbpf / blazesym wall time", &wall[ours], &wall[bz]);
}

/// The median and range of `a[i] / b[i]`.
fn per_round(what: &str, a: &[f64], b: &[f64]) {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    let (lo, hi) = range(&ratios);
    println!(
        "  {what}, per round: median {:.2}x (range {lo:.2} - {hi:.2})",
        median(&ratios)
    );
}

fn warm(path: &Path, mode: Mode, addrs: &[u64], rounds: usize) {
    println!(
        "\nwarm ({}): {} addresses per pass, one batch; {rounds} rounds of [new symbolizer, \
         first pass, {WARM_PASSES} more passes], peers rotated; warm = the later passes",
        mode.name(),
        addrs.len()
    );
    let mut first: Vec<Vec<Times>> = vec![Vec::new(); Peer::ALL.len()];
    let mut later: Vec<Vec<Times>> = vec![Vec::new(); Peer::ALL.len()];
    let mut frames = vec![0; Peer::ALL.len()];
    for round in 0..rounds {
        for peer in rotated(round) {
            let slot = peer_index(peer);
            let mut instance = Instance::new(peer, mode);
            let (times, n) = peers::pass(&mut instance, path, mode, addrs);
            first[slot].push(times);
            frames[slot] = n;
            for _ in 0..WARM_PASSES {
                let (times, _) = peers::pass(&mut instance, path, mode, addrs);
                later[slot].push(times);
            }
        }
    }
    // Addresses per second, of CPU time and of wall-clock time.
    let rates = |samples: &[Times], cpu: bool| -> Vec<f64> {
        samples
            .iter()
            .map(|t| addrs.len() as f64 / if cpu { t.cpu } else { t.wall })
            .collect()
    };
    println!(
        "  {:<10} {:>12} {:>12} {:>12} {:>20} {:>12} {:>10} {:>10} {:>8}",
        "peer",
        "1st CPU s",
        "1st wall s",
        "warm/CPU-s",
        "warm/CPU-s range",
        "warm/wall-s",
        "CPU vs bz",
        "wall vs bz",
        "frames"
    );
    let bz = peer_index(Peer::Blazesym);
    let (bz_cpu, bz_wall) = (
        median(&rates(&later[bz], true)),
        median(&rates(&later[bz], false)),
    );
    for peer in Peer::ALL {
        let slot = peer_index(peer);
        let cpu = rates(&later[slot], true);
        let (lo, hi) = range(&cpu);
        let wall = median(&rates(&later[slot], false));
        println!(
            "  {:<10} {:>12.3} {:>12.3} {:>12.0} {:>20} {:>12.0} {:>9.2}x {:>9.2}x {:>8}",
            peer.name(),
            median(&first[slot].iter().map(|t| t.cpu).collect::<Vec<_>>()),
            median(&first[slot].iter().map(|t| t.wall).collect::<Vec<_>>()),
            median(&cpu),
            format!("{lo:.0} - {hi:.0}"),
            wall,
            median(&cpu) / bz_cpu,
            wall / bz_wall,
            frames[slot]
        );
    }
    let first_cpu = |slot: usize| median(&first[slot].iter().map(|t| t.cpu).collect::<Vec<_>>());
    println!(
        "  first pass, coolbpf speed / blazesym's (CPU): {:.2}x",
        first_cpu(bz) / first_cpu(peer_index(Peer::Coolbpf))
    );
    agreement(path, mode, addrs);
}

/// How often the peers agree with coolbpf on what they found (untimed passes).
fn agreement(path: &Path, mode: Mode, addrs: &[u64]) {
    let ours = peers::digests(&mut Instance::new(Peer::Coolbpf, mode), path, mode, addrs);
    for peer in [Peer::Blazesym, Peer::Addr2line] {
        let theirs = peers::digests(&mut Instance::new(peer, mode), path, mode, addrs);
        let differ = |same: fn(&Digest, &Digest) -> bool| {
            ours.iter()
                .zip(&theirs)
                .filter(|(a, b)| !same(a, b))
                .count()
        };
        println!(
            "  {} differs from coolbpf at: frame count {} addresses, innermost line {}, \
             outermost line {} (of {})",
            peer.name(),
            differ(|a, b| a.depth == b.depth),
            differ(|a, b| a.inner_line == b.inner_line),
            differ(|a, b| a.outer_line == b.outer_line),
            addrs.len()
        );
    }
}

fn rss(path: &Path, addrs_file: &Path, rounds: usize) {
    println!(
        "\nrss (full): fresh process, symbolize the first {RSS_ADDRS} addresses in one batch, \
         VmHWM at the end; {rounds} rounds"
    );
    let path = path_str(path);
    let addrs_file = path_str(addrs_file);
    let names: Vec<&str> = std::iter::once("none")
        .chain(Peer::ALL.iter().map(|p| p.name()))
        .collect();
    let mut outputs: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        for (name, outs) in names.iter().zip(&mut outputs) {
            outs.push(spawn(&["rss", name, "full", &path, &addrs_file, "0"]));
        }
    }
    let get = |name: &str, key: &str| -> f64 {
        let slot = names.iter().position(|n| *n == name).expect("a known name");
        let values: Vec<f64> = outputs[slot].iter().map(|out| field(out, key)).collect();
        median(&values)
    };
    let base = get("none", "hwm_kib");
    println!(
        "  {:<10} {:>10} {:>11} {:>12} {:>14} {:>13} {:>13} {:>12}",
        "peer",
        "VmHWM MiB",
        "- baseline",
        "vs blazesym",
        "heap peak MiB",
        "RssAnon end",
        "RssFile end",
        "results MiB"
    );
    let blaze = get("blazesym", "hwm_kib") - base;
    for name in &names {
        let hwm = get(name, "hwm_kib");
        let results = get(name, "results_bytes");
        println!(
            "  {name:<10} {:>10.1} {:>11.1} {:>12} {:>14.1} {:>13.1} {:>13.1} {:>12}",
            hwm / 1024.0,
            (hwm - base) / 1024.0,
            if *name == "none" {
                String::from("-")
            } else {
                format!("{:.2}x", (hwm - base) / blaze)
            },
            mib(get(name, "heap_peak_bytes")),
            get(name, "anon_kib") / 1024.0,
            get(name, "file_kib") / 1024.0,
            if results > 0.0 {
                format!("{:.2}", mib(results))
            } else {
                String::from("-")
            },
        );
    }
    println!(
        "  coolbpf / blazesym peak RSS: {:.2}x above baseline, {:.2}x as measured",
        (get("coolbpf", "hwm_kib") - base) / blaze,
        get("coolbpf", "hwm_kib") / get("blazesym", "hwm_kib")
    );
}

fn peer_index(peer: Peer) -> usize {
    Peer::ALL
        .iter()
        .position(|p| *p == peer)
        .expect("a known peer")
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("paths are UTF-8").to_owned()
}

/// Runs this binary as a child with `args`; its stdout.
fn spawn(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("this binary's path");
    let output = Command::new(exe)
        .arg("__child")
        .args(args)
        .output()
        .expect("run a child");
    assert!(
        output.status.success(),
        "child {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the child prints text")
}

/// A `key=value` number from a child's output (0 when missing).
fn field(out: &str, key: &str) -> f64 {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0.0)
}

/// `__child cold|rss|warm PEER MODE BINARY ADDRS_FILE N`: one measurement in a fresh
/// process, printed as `key=value` pairs. N is the address's index for `cold`, the
/// number of passes for `warm`, unused for `rss`. PEER `none` (rss only) measures the
/// process alone.
fn child(args: &[String]) {
    let [kind, peer, mode, path, addrs_file, index] = args else {
        panic!("child arguments: {args:?}");
    };
    let mode = Mode::from_name(mode).expect("a mode");
    let path = Path::new(path);
    let addrs = read_addrs(Path::new(addrs_file));
    match kind.as_str() {
        "cold" => {
            let index: usize = index.parse().expect("an index");
            let addr = addrs[index % addrs.len()];
            let peer = Peer::from_name(peer).expect("a peer");
            let timer = Timer::start();
            let mut instance = Instance::new(peer, mode);
            let (_, frames) = peers::pass(&mut instance, path, mode, &[addr]);
            let took = timer.stop();
            println!(
                "wall_s={} cpu_s={} frames={frames} hwm_kib={}",
                took.wall,
                took.cpu,
                status_kib("VmHWM")
            );
        }
        "rss" => {
            let addrs = &addrs[..RSS_ADDRS.min(addrs.len())];
            TRACK.store(true, Ordering::Relaxed);
            let instance = Peer::from_name(peer).map(|peer| {
                let mut instance = Instance::new(peer, mode);
                peers::pass(&mut instance, path, mode, addrs);
                instance
            });
            print!(
                "hwm_kib={} rss_kib={} anon_kib={} file_kib={} heap_peak_bytes={}",
                status_kib("VmHWM"),
                status_kib("VmRSS"),
                status_kib("RssAnon"),
                status_kib("RssFile"),
                PEAK.load(Ordering::Relaxed),
            );
            if let Some(Instance::Coolbpf(symbolizer)) = &instance {
                // What the results alone hold, measured after the peak was read.
                let results = symbolizer
                    .symbolize(&coolbpf_symbolize::Source::elf(path), addrs)
                    .expect("coolbpf symbolizes");
                print!(" results_bytes={}", results_heap(&results));
            }
            println!();
        }
        "warm" => {
            // Not used by the experiments: one peer alone, for profiling
            // (`perf record -g symbolize-HASH __child warm coolbpf full BINARY ADDRS 5`).
            let passes: usize = index.parse().expect("a number of passes");
            let peer = Peer::from_name(peer).expect("a peer");
            let mut instance = Instance::new(peer, mode);
            for pass in 0..passes {
                let (times, frames) = peers::pass(&mut instance, path, mode, &addrs);
                println!(
                    "pass={pass} cpu_s={:.3} wall_s={:.3} addr_per_cpu_s={:.0} frames={frames}",
                    times.cpu,
                    times.wall,
                    addrs.len() as f64 / times.cpu
                );
            }
        }
        unknown => panic!("unknown child kind {unknown}"),
    }
}

/// Heap bytes held by coolbpf's results: the vectors and each frame's strings.
fn results_heap(results: &[coolbpf_symbolize::Symbolized]) -> usize {
    let mut bytes = size_of_val(results);
    for result in results {
        let frames = result.frames();
        bytes += size_of_val(frames);
        for frame in frames {
            bytes += frame.function.capacity()
                + frame.raw_name.capacity()
                + frame.file.as_ref().map_or(0, String::capacity);
        }
    }
    bytes
}
