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
        let counts = |softirqs: &Softirqs| -> BTreeMap<String, u64> {
            let vectors = softirqs.vectors().expect("vectors");
            vectors
                .into_iter()
                .map(|v| (v.name, v.histogram.count))
                .collect()
        };
        let (ours_before, before) = (counts(&softirqs), proc_softirqs());
        direct_reads(1_000);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let (after, ours_after) = (proc_softirqs(), counts(&softirqs));
        softirqs.stop();
        for (name, end) in &after {
            let kernel = end - before.get(name).copied().unwrap_or(0);
            let ours = ours_after.get(name).copied().unwrap_or(0)
                - ours_before.get(name).copied().unwrap_or(0);
            eprintln!("{hook} {name}: ours {ours}, /proc/softirqs {kernel}");
            // Every vector, busy or not, within 2% (and a couple of runs at the edges).
            assert!(close_enough(ours, kernel), "{name}: {ours} vs {kernel}");
        }
        let block =
            after.get("BLOCK").copied().unwrap_or(0) - before.get("BLOCK").copied().unwrap_or(0);
        assert!(
            block >= 500,
            "the disk reads completed in BLOCK softirqs: {block}"
        );
    }
}
