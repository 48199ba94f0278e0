//! CFI unwinding in the kernel, for real: C, C++ and Rust programs built without frame
//! pointers, and a C program whose hot path is a comparator called from inside Debian's
//! libc, profiled by the `profile` probe in pid mode. For each, at least 95% of the
//! samples in the hot function hold the whole call chain in order, and the most frequent
//! stack is the one `perf record --call-graph dwarf` finds on the same workload. Also: a
//! stack deeper than the limit is counted as truncated, a file without CFI falls back to
//! frame pointers (counted), and `unwind=fp` on the same programs loses the chain (what
//! CFI is for). Tests run one at a time: they measure samples of a spinning process.

mod unwind_support;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use coolbpf_core::testing::bpf_available;
use coolbpf_probes::profile::{ProfileConfig, ProfileSession, SessionResult};
use coolbpf_probes::stacks::UnwindMode;
use coolbpf_probes::stacks::UnwindStats;
use tempfile::TempDir;

use unwind_support::perf::top_stack;
use unwind_support::{build, normalize, Workload, NOFP};

const FREQ: u64 = 199;
const SECONDS: f64 = 3.0;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One profile of one run of `workload`, user stacks only.
fn profile(workload: &mut Workload, unwind: UnwindMode) -> (SessionResult, Option<UnwindStats>) {
    let config = ProfileConfig {
        frequency: FREQ,
        pid: Some(workload.pid()),
        kernel_stacks: false,
        unwind,
        ..ProfileConfig::default()
    };
    let session = ProfileSession::start(&config).expect("start the profiler");
    workload.run();
    let stats = session.profiler().expect("on-CPU").unwind_stats();
    (session.finish().expect("finish"), stats)
}

/// The workload's stacks, root first, names normalized, with their weights.
fn stacks(result: &SessionResult, pid: u32) -> Vec<(Vec<String>, u64)> {
    let mut merged: HashMap<Vec<String>, u64> = HashMap::new();
    for stack in result.profile.stacks().iter().filter(|s| s.pid == pid) {
        let names = stack.frame_names().iter().map(|n| normalize(n)).collect();
        *merged.entry(names).or_default() += stack.weight;
    }
    merged.into_iter().collect()
}

/// Whether `names` ends with `chain`: contiguous, or (`gaps`) with other frames (libc's)
/// allowed between the chain's frames.
fn holds(names: &[String], chain: &[&str], gaps: bool) -> bool {
    if !gaps {
        return names.len() >= chain.len() && names[names.len() - chain.len()..] == *chain;
    }
    let mut rest = names.iter();
    chain.iter().all(|want| rest.any(|n| n == want))
        && names.last().map(String::as_str) == chain.last().copied()
}

/// `names` up to the last frame of `hot`: frames below it are functions inlined into
/// it (Rust's `wrapping_mul`, from DWARF) or its own callees (the clock it reads).
fn up_to<'a>(names: &'a [String], hot: &str) -> Option<&'a [String]> {
    let at = names.iter().rposition(|n| n == hot)?;
    Some(&names[..=at])
}

/// Share of the samples in the chain's last function that hold the whole chain.
fn chain_share(stacks: &[(Vec<String>, u64)], chain: &[&str], gaps: bool) -> (f64, u64) {
    let hot = chain.last().unwrap();
    let (mut with, mut all) = (0, 0);
    for (names, weight) in stacks {
        if let Some(names) = up_to(names, hot) {
            all += weight;
            if holds(names, chain, gaps) {
                with += weight;
            }
        }
    }
    (
        if all == 0 {
            0.0
        } else {
            with as f64 / all as f64
        },
        all,
    )
}

/// `names` from `first` on, up to the hot function.
fn from<'a>(names: &'a [String], first: &str, hot: &str) -> &'a [String] {
    let names = up_to(names, hot).unwrap_or(names);
    let at = names.iter().position(|n| n == first).unwrap_or(names.len());
    &names[at..]
}

/// Profiles `binary` (whose chain, root first, is `chain`) with CFI and checks the
/// chain, and perf's most frequent stack from `compare_from` on (perf names inlined
/// frames its own way: above the first real call of the chain they may differ); then
/// with frame pointers only, which must lose the chain in most samples.
fn check_workload(
    dir: &TempDir,
    binary: &std::path::Path,
    chain: &[&str],
    gaps: bool,
    compare_from: &str,
) {
    let hot_fn = chain.last().unwrap();
    let mut workload = Workload::start(binary, SECONDS);
    let (result, stats) = profile(&mut workload, UnwindMode::Cfi);
    let ours = stacks(&result, workload.pid());
    let (share, hot) = chain_share(&ours, chain, gaps);
    let losses = result.losses.kernel;
    eprintln!(
        "{}: {:.1}% of {hot} samples in {} hold the chain; {} samples, losses {losses:?}, {stats:?}",
        binary.display(),
        share * 100.0,
        chain.last().unwrap(),
        result.samples
    );
    let (top, _) = ours.iter().max_by_key(|(_, w)| *w).unwrap();
    assert!(
        hot >= 100,
        "too few samples in the hot function: {hot}; top stack: {top:?}"
    );
    assert!(
        share >= 0.95,
        "only {:.1}% hold {chain:?}; top stack: {top:?}",
        share * 100.0
    );
    match top_stack(&mut workload, dir.path(), SECONDS) {
        Some((perf, count)) => {
            eprintln!("perf's top stack ({count} samples): {perf:?}\nours: {top:?}");
            if gaps {
                // Inside libc the recursion depth of the sort varies from sample to
                // sample, and so does the most frequent depth: compare the chain's own
                // frames, in order.
                let own = |names: &[String]| -> Vec<String> {
                    from(names, compare_from, hot_fn)
                        .iter()
                        .filter(|n| chain.contains(&n.as_str()))
                        .cloned()
                        .collect()
                };
                assert_eq!(own(top), own(&perf), "perf's top stack differs");
            } else {
                assert_eq!(
                    from(top, compare_from, hot_fn),
                    from(&perf, compare_from, hot_fn),
                    "perf's top stack differs"
                );
            }
        }
        None => panic!("perf record --call-graph dwarf did not run"),
    }
    let (fp, _) = profile(&mut workload, UnwindMode::FramePointers);
    let (fp_share, fp_hot) = chain_share(&stacks(&fp, workload.pid()), chain, gaps);
    eprintln!(
        "unwind=fp: {:.1}% of {fp_hot} samples hold the chain",
        fp_share * 100.0
    );
    assert!(
        fp_share < 0.5,
        "frame pointers alone should not find this chain"
    );
}

fn ready(name: &str) -> Option<(MutexGuard<'static, ()>, TempDir)> {
    if !bpf_available(name) {
        return None;
    }
    Some((serial(), tempfile::tempdir().unwrap()))
}

const C_CHAIN: &[&str] = &[
    "main", "serve", "run", "level1", "level2", "level3", "level4", "level5", "hot",
];

#[test]
fn c_without_frame_pointers_unwinds_like_perf() {
    let Some((_serial, dir)) = ready("c_without_frame_pointers_unwinds_like_perf") else {
        return;
    };
    let binary = build(dir.path(), "chain.c", NOFP);
    check_workload(&dir, &binary, C_CHAIN, false, "main");
}

#[test]
fn cpp_without_frame_pointers_unwinds_like_perf() {
    let Some((_serial, dir)) = ready("cpp_without_frame_pointers_unwinds_like_perf") else {
        return;
    };
    let binary = build(dir.path(), "chain.cpp", NOFP);
    let chain = [
        "main",
        "serve",
        "run",
        "chain::level1",
        "chain::level2",
        "chain::Level3::go",
        "chain::level4",
        "chain::level5",
        "chain::hot",
    ];
    check_workload(&dir, &binary, &chain, false, "chain::level1");
}

#[test]
fn rust_without_frame_pointers_unwinds_like_perf() {
    let Some((_serial, dir)) = ready("rust_without_frame_pointers_unwinds_like_perf") else {
        return;
    };
    let binary = build(dir.path(), "chain.rs", &[]);
    let chain = [
        "chain::main",
        "level1",
        "level2",
        "level3",
        "level4",
        "level5",
        "hot",
    ];
    check_workload(&dir, &binary, &chain, false, "level1");
}

#[test]
fn comparator_called_from_libc_keeps_the_frames_above_libc() {
    let Some((_serial, dir)) = ready("comparator_called_from_libc_keeps_the_frames_above_libc")
    else {
        return;
    };
    let binary = build(dir.path(), "qsort.c", NOFP);
    let chain = ["main", "level1", "level2", "sort_all", "compare"];
    check_workload(&dir, &binary, &chain, true, "main");
}

#[test]
fn a_stack_deeper_than_the_limit_is_counted_as_truncated() {
    let Some((_serial, dir)) = ready("a_stack_deeper_than_the_limit_is_counted_as_truncated")
    else {
        return;
    };
    let binary = build(dir.path(), "deep.c", NOFP);
    let mut workload = Workload::start(&binary, SECONDS);
    let (result, _) = profile(&mut workload, UnwindMode::Cfi);
    let pid = workload.pid();
    let deepest = result
        .profile
        .stacks()
        .iter()
        .filter(|s| s.pid == pid)
        .map(|s| (s.user.len(), s.weight))
        .fold(HashMap::<usize, u64>::new(), |mut m, (len, w)| {
            *m.entry(len).or_default() += w;
            m
        });
    let full = deepest
        .get(&coolbpf_probes::profile::MAX_DEPTH)
        .copied()
        .unwrap_or(0);
    let truncated = result.losses.kernel.stack_truncated;
    eprintln!(
        "deep: {} samples, {full} of {} frames, {truncated} truncated",
        result.samples,
        coolbpf_probes::profile::MAX_DEPTH
    );
    assert!(full as f64 >= 0.9 * result.samples as f64, "{deepest:?}");
    assert!(
        truncated >= full,
        "every full-depth stack is counted: {truncated} < {full}"
    );
}

#[test]
fn a_file_without_cfi_falls_back_to_frame_pointers_counted() {
    let Some((_serial, dir)) = ready("a_file_without_cfi_falls_back_to_frame_pointers_counted")
    else {
        return;
    };
    let with_fp = build(
        dir.path(),
        "chain.c",
        &["-O2", "-g", "-fno-omit-frame-pointer"],
    );
    let stripped = dir.path().join("chain_without_cfi");
    let built = Command::new("objcopy")
        .args([
            "--remove-section",
            ".eh_frame",
            "--remove-section",
            ".eh_frame_hdr",
        ])
        .arg(&with_fp)
        .arg(&stripped)
        .status()
        .expect("run objcopy");
    assert!(built.success());
    let mut workload = Workload::start(&stripped, SECONDS);
    let (result, stats) = profile(&mut workload, UnwindMode::Cfi);
    let (share, hot) = chain_share(&stacks(&result, workload.pid()), C_CHAIN, false);
    let fallback = result.losses.kernel.unwind_fallback;
    eprintln!(
        "no CFI: {:.1}% of {hot} samples hold the chain, {fallback} frame-pointer steps, {stats:?}",
        share * 100.0
    );
    assert!(
        share >= 0.95,
        "frame pointers carry the walk: {:.1}%",
        share * 100.0
    );
    // hot, level5 .. level1 and main are walked by frame pointers: 7 steps a sample.
    assert!(fallback >= 6 * hot, "{fallback} steps for {hot} samples");
}

/// The BPF program's run time per sample, CFI against frame pointers, as the kernel
/// accounts it (`kernel.bpf_stats_enabled`): reported, not asserted on.
#[test]
fn run_time_per_sample_is_reported() {
    let Some((_serial, dir)) = ready("run_time_per_sample_is_reported") else {
        return;
    };
    let binary = build(dir.path(), "chain.c", NOFP);
    let sysctl = "/proc/sys/kernel/bpf_stats_enabled";
    let before = std::fs::read_to_string(sysctl).unwrap_or_default();
    std::fs::write(sysctl, "1").expect("enable BPF run-time stats");
    let mut workload = Workload::start(&binary, SECONDS);
    let mut per_sample = Vec::new();
    for unwind in [UnwindMode::Cfi, UnwindMode::FramePointers] {
        let config = ProfileConfig {
            frequency: FREQ,
            pid: Some(workload.pid()),
            kernel_stacks: false,
            unwind,
            ..ProfileConfig::default()
        };
        let session = ProfileSession::start(&config).expect("start");
        workload.run();
        let object = session.profiler().expect("on-CPU").object().as_libbpf();
        let program = object.progs().find(|p| p.name() == "on_sample").unwrap();
        let (ns, runs) = coolbpf_core::sys::prog_info::run_time(program.as_fd()).unwrap();
        let ns_per_run = ns as f64 / runs.max(1) as f64;
        eprintln!("unwind={unwind:?}: {runs} runs, {ns_per_run:.0} ns per sample");
        per_sample.push((runs, ns_per_run));
        session.finish().unwrap();
    }
    let _ = std::fs::write(sysctl, before.trim());
    assert!(
        per_sample.iter().all(|(runs, ns)| *runs > 100 && *ns > 0.0),
        "{per_sample:?}"
    );
}
