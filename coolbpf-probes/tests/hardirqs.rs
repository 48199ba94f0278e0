//! hardirqs and softirqs against the real kernel: over one window with disk reads that
//! bypass the page cache (each one ends in a device interrupt), the handler runs they
//! count per IRQ and per vector agree with /proc/interrupts and /proc/softirqs.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Mutex;

use coolbpf_core::testing::bpf_available;
use coolbpf_probes::hardirqs::{Hardirqs, HardirqsConfig};
use coolbpf_probes::sched::HookKind;
use coolbpf_probes::softirqs::{Softirqs, SoftirqsConfig};

/// The tests count system-wide: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Numbered rows of /proc/interrupts: IRQ -> (count summed over CPUs, name).
fn proc_interrupts() -> BTreeMap<u32, (u64, String)> {
    let text = std::fs::read_to_string("/proc/interrupts").expect("/proc/interrupts");
    let cpus = text
        .lines()
        .next()
        .map_or(0, |header| header.split_whitespace().count());
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (irq, rest) = line.split_once(':')?;
            let irq: u32 = irq.trim().parse().ok()?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let count = fields
                .iter()
                .take(cpus)
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
            let name = fields.last().copied().unwrap_or_default().to_owned();
            Some((irq, (count, name)))
        })
        .collect()
}

/// /proc/softirqs: vector name -> count summed over CPUs.
fn proc_softirqs() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/softirqs").expect("/proc/softirqs");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (name, counts) = line.split_once(':')?;
            let total = counts
                .split_whitespace()
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
            Some((name.trim().to_owned(), total))
        })
        .collect()
}

/// `reads` 4 KiB reads of a file on disk with O_DIRECT, so each one reaches the device.
fn direct_reads(reads: u64) {
    let path = std::env::temp_dir().join(format!("coolbpf-irqs-{}", std::process::id()));
    let block = vec![7u8; 1 << 20];
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(&block).expect("write");
    file.sync_all().expect("fsync");
    let direct = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .expect("open O_DIRECT");
    // O_DIRECT wants a buffer aligned to the logical block size: 4 KiB covers it.
    let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: a non-zero size layout; freed below with the same layout.
    let buffer = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!buffer.is_null());
    // SAFETY: `buffer` holds 4096 initialized bytes and nothing else refers to it.
    let slice = unsafe { std::slice::from_raw_parts_mut(buffer, 4096) };
    for i in 0..reads {
        direct
            .read_exact_at(slice, (i % 256) * 4096)
            .expect("direct read");
    }
    // SAFETY: allocated above with this layout, no longer used.
    unsafe { std::alloc::dealloc(buffer, layout) };
    let _ = std::fs::remove_file(&path);
}

fn close_enough(ours: u64, kernel: u64) -> bool {
    ours.abs_diff(kernel) as f64 <= 0.02 * kernel as f64 + 2.0
}

#[test]
fn hardirq_runs_agree_with_proc_interrupts() {
    if !bpf_available("hardirq_runs_agree_with_proc_interrupts") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for hook in [HookKind::Auto, HookKind::Tracepoint] {
        let mut hardirqs = Hardirqs::start(&HardirqsConfig { hook }).expect("start");
        let ours_before: BTreeMap<u32, u64> = hardirqs
            .irqs()
            .expect("irqs")
            .into_iter()
            .map(|irq| (irq.irq, irq.histogram.count))
            .collect();
        let before = proc_interrupts();
        direct_reads(2_000);
        let after = proc_interrupts();
        let irqs = hardirqs.irqs().expect("irqs");
        hardirqs.stop();
        let mut compared = 0;
        for irq in &irqs {
            let Some(((end, name), (start, _))) = after.get(&irq.irq).zip(before.get(&irq.irq))
            else {
                continue;
            };
            let kernel = end - start;
            let ours = irq.histogram.count - ours_before.get(&irq.irq).copied().unwrap_or(0);
            eprintln!(
                "{hook} irq {} ({}, /proc: {name}): ours {ours}, /proc/interrupts {kernel}, {} ns in all",
                irq.irq, irq.name, irq.histogram.sum
            );
            if kernel >= 100 {
                assert!(
                    close_enough(ours, kernel),
                    "irq {}: {ours} vs {kernel}",
                    irq.irq
                );
                assert_eq!(
                    &irq.name, name,
                    "the handler's name as /proc/interrupts shows it"
                );
                compared += 1;
            }
        }
        assert!(compared >= 1, "the disk's interrupts were seen: {irqs:?}");
        assert_eq!(hardirqs.losses().expect("losses").total(), 0);
    }
}

#[test]
fn softirq_runs_agree_with_proc_softirqs() {
    if !bpf_available("softirq_runs_agree_with_proc_softirqs") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for hook in [HookKind::Auto, HookKind::Tracepoint] {
        let mut softirqs = Softirqs::start(&SoftirqsConfig { hook }).expect("start");
        // Per vector: (runs timed, runs the kernel counted but did not show the probe).
        let counts = |softirqs: &Softirqs| -> BTreeMap<String, (u64, u64)> {
            let vectors = softirqs.vectors().expect("vectors");
            vectors
                .into_iter()
                .map(|v| (v.name, (v.histogram.count, v.unseen_runs)))
                .collect()
        };
        let misses = || softirqs.losses().expect("losses").program_misses;
        // Sandwich our reads between two pairs of /proc reads: our window lies inside the
        // outer pair's and holds the inner pair's, so our counts can be held to both
        // bounds however long a read takes or whatever fires between them.
        let outer_before = proc_softirqs();
        let (ours_before, misses_before) = (counts(&softirqs), misses());
        let before = proc_softirqs();
        direct_reads(1_000);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let after = proc_softirqs();
        let (ours_after, misses_after) = (counts(&softirqs), misses());
        let outer_after = proc_softirqs();
        softirqs.stop();
        let skipped = misses_after - misses_before;
        let delta = |end: &BTreeMap<String, u64>, start: &BTreeMap<String, u64>, name: &str| {
            end.get(name).copied().unwrap_or(0) - start.get(name).copied().unwrap_or(0)
        };
        let ours_delta = |pick: fn((u64, u64)) -> u64, name: &str| {
            let at =
                |counts: &BTreeMap<String, (u64, u64)>| counts.get(name).copied().map_or(0, pick);
            at(&ours_after) - at(&ours_before)
        };
        for name in after.keys() {
            let (inner, outer) = (
                delta(&after, &before, name),
                delta(&outer_after, &outer_before, name),
            );
            let ours = ours_delta(|(timed, _)| timed, name);
            let unseen = ours_delta(|(_, unseen)| unseen, name);
            eprintln!(
                "{hook} {name}: ours {ours} (+{unseen} unseen), /proc/softirqs {inner} \
                 (outer reads {outer}), {skipped} program runs skipped"
            );
            // Never a run the kernel did not count (one of slack: the kernel counts a run
            // as it starts, we as it ends).
            assert!(
                ours <= outer + 1,
                "{name}: ours {ours} > /proc/softirqs' {outer}"
            );
            // What the kernel counted and did not show us is reported as unseen: the two
            // add up to its count (each side of the probe's own /proc read can catch a
            // run in progress).
            assert!(
                inner.saturating_sub(2) <= ours + unseen && ours + unseen <= outer + 2,
                "{name}: ours {ours} + unseen {unseen}, /proc/softirqs {inner}..={outer}"
            );
            // Unseen runs are the kernel's doing, a few percent of SCHED and RCU runs on an
            // idle CPU (module docs), never most of them.
            assert!(
                (ours + skipped + 2) as f64 >= 0.85 * inner as f64,
                "{name}: ours {ours}, /proc/softirqs {inner}"
            );
        }
        // The disk reads' completions run from the reading task's CPU, not an idle one:
        // every one of them is seen.
        let (block, block_ours) = (
            delta(&after, &before, "BLOCK"),
            ours_delta(|(timed, _)| timed, "BLOCK"),
        );
        assert!(
            block >= 500,
            "the disk reads completed in BLOCK softirqs: {block}"
        );
        assert!(
            block_ours + skipped + 1 >= block,
            "BLOCK: ours {block_ours}, /proc/softirqs {block}"
        );
    }
}
