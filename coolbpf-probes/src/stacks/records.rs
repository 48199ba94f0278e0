//! Between symbolized stacks and the data model's [`StackSample`] records, both ways.
//!
//! A record carries frame names root first (user frames, then kernel frames suffixed
//! `_[k]`), what `{"kind":"stacks"}` JSON lines and sinks see; a [`SymbolizedStack`]
//! carries locations innermost first, what the profile exports (folded, pprof, SVG) need.
//! These functions are not specific to the on-CPU profiler: any probe that emits stacks
//! (off-CPU time, GPU launches) uses them, and
//! [`ProfileFileSink`](crate::profile::ProfileFileSink)
//! turns anyone's stack records back into a profile.

use std::sync::Arc;

use coolbpf_core::StackSample;
use coolbpf_symbolize::profile::{Location, SymbolizedProfile, SymbolizedStack};
use coolbpf_symbolize::Frame;

/// How kernel frames are marked in frame names (perf's and bcc's convention).
const KERNEL_SUFFIX: &str = "_[k]";

/// The record of one symbolized stack, from probe `probe`, last seen at `ts_ns`.
///
/// `frames` are [`SymbolizedStack::frame_names`]; the instruction pointers are the raw ones
/// (a caller's location is looked up at its return address minus one, which is undone
/// here).
pub fn stack_record(probe: &str, stack: &SymbolizedStack, ts_ns: u64) -> StackSample {
    StackSample {
        probe: probe.to_owned(),
        pid: stack.pid,
        tid: stack.tid,
        comm: stack.comm.clone(),
        kernel_ips: raw_ips(&stack.kernel),
        user_ips: raw_ips(&stack.user),
        frames: stack.frame_names(),
        weight: stack.weight,
        ts_ns,
    }
}

fn raw_ips(locations: &[Arc<Location>]) -> Vec<u64> {
    locations
        .iter()
        .enumerate()
        .map(|(i, loc)| {
            if i == 0 {
                loc.address
            } else {
                loc.address.saturating_add(1)
            }
        })
        .collect()
}

/// The symbolized stack a record describes: one location per frame name. Inline chains
/// come back as separate locations (a record does not say which frames were inlined),
/// which the folded and flame-graph exports do not distinguish. A record without frames
/// (not symbolized) gets one location per address, named by its address.
pub fn stack_from_record(record: &StackSample) -> SymbolizedStack {
    let (user, kernel) = if record.frames.is_empty() {
        (
            address_locations(&record.user_ips),
            address_locations(&record.kernel_ips),
        )
    } else {
        let split = kernel_start(&record.frames);
        let (user, kernel) = record.frames.split_at(split);
        let kernel: Vec<&str> = kernel
            .iter()
            .map(|name| name.strip_suffix(KERNEL_SUFFIX).unwrap_or(name))
            .collect();
        let user: Vec<&str> = user.iter().map(String::as_str).collect();
        (
            named_locations(&user, &record.user_ips),
            named_locations(&kernel, &record.kernel_ips),
        )
    };
    SymbolizedStack {
        pid: record.pid,
        tid: record.tid,
        comm: record.comm.clone(),
        user,
        kernel,
        weight: record.weight,
    }
}

/// A profile of records (stacks that read the same merge in every export).
pub fn profile_from_records<'a>(
    records: impl IntoIterator<Item = &'a StackSample>,
) -> SymbolizedProfile {
    SymbolizedProfile::from_stacks(records.into_iter().map(stack_from_record).collect())
}

/// Where the trailing run of kernel frames starts (`frames.len()` when there is none).
fn kernel_start(frames: &[String]) -> usize {
    let kernel = frames
        .iter()
        .rev()
        .take_while(|name| name.ends_with(KERNEL_SUFFIX))
        .count();
    frames.len() - kernel
}

/// Locations for `names` (root first), innermost first. The addresses are the record's
/// when there is one per name (no inline chain was expanded), else 0.
fn named_locations(names: &[&str], ips: &[u64]) -> Vec<Arc<Location>> {
    let addresses: Vec<u64> = if ips.len() == names.len() {
        ips.iter()
            .enumerate()
            .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
            .collect()
    } else {
        vec![0; names.len()]
    };
    names
        .iter()
        .rev()
        .zip(addresses)
        .map(|(name, address)| Arc::new(Location::new(address, vec![frame(name)])))
        .collect()
}

fn address_locations(ips: &[u64]) -> Vec<Arc<Location>> {
    ips.iter()
        .map(|&ip| {
            let name = format!("{ip:#x}");
            Arc::new(Location::unknown(ip, &name, "not symbolized"))
        })
        .collect()
}

fn frame(name: &str) -> Frame {
    Frame {
        function: name.to_owned(),
        raw_name: name.to_owned(),
        offset: 0,
        file: None,
        line: None,
        column: None,
        inlined: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(frames: &[&str], user_ips: &[u64], kernel_ips: &[u64]) -> StackSample {
        StackSample {
            probe: "profile".into(),
            pid: 42,
            tid: 43,
            comm: "burn".into(),
            kernel_ips: kernel_ips.to_vec(),
            user_ips: user_ips.to_vec(),
            frames: frames.iter().map(|&f| f.to_owned()).collect(),
            weight: 97,
            ts_ns: 5,
        }
    }

    #[test]
    fn records_round_trip_through_stacks() {
        let original = record(
            &[
                "_start",
                "main",
                "hot_spin",
                "asm_sysvec_apic_timer_interrupt_[k]",
            ],
            &[0x1010, 0x2001, 0x3001],
            &[0xffff_0010],
        );
        let stack = stack_from_record(&original);
        assert_eq!(stack.user.len(), 3);
        assert_eq!(stack.kernel.len(), 1);
        assert_eq!(stack.user[0].frames[0].function, "hot_spin");
        assert_eq!(stack.user[1].address, 0x2000);
        assert_eq!(stack_record("profile", &stack, 5), original);
        let profile = profile_from_records([&original]);
        assert_eq!(
            profile.folded(),
            "burn;_start;main;hot_spin;asm_sysvec_apic_timer_interrupt_[k] 97\n"
        );
    }

    #[test]
    fn unsymbolized_records_show_addresses() {
        let stack = stack_from_record(&record(&[], &[0x10, 0x21], &[]));
        let profile = SymbolizedProfile::from_stacks(vec![stack]);
        assert_eq!(profile.folded(), "burn;0x21;0x10 97\n");
    }

    #[test]
    fn inline_expanded_frames_get_no_addresses() {
        let stack = stack_from_record(&record(&["main", "inlined", "leaf"], &[0x10, 0x21], &[]));
        assert!(stack.user.iter().all(|loc| loc.address == 0));
        assert_eq!(stack.user.len(), 3);
        assert!(stack.kernel.is_empty());
    }
}
