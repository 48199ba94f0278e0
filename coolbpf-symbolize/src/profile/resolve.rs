//! Symbolizing a [`Profile`]: each distinct address once, per address space.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::Result;
use crate::source::Source;
use crate::symbolizer::Symbolizer;

use super::stack::{
    AddressSpace, Location, SymbolizeFailure, SymbolizedProfile, SymbolizedStack, UNKNOWN,
};
use super::{Profile, StackKey};

impl Profile {
    /// Symbolizes every distinct address once: user addresses grouped per pid (through
    /// [`Source::process`]), kernel addresses together (through [`Source::kernel`]).
    ///
    /// Callers' return addresses (every instruction pointer but the innermost of the
    /// user and of the kernel part) are looked up at `ip - 1`, so that the call site and
    /// its inline chain are reported, not the instruction after the call.
    ///
    /// Nothing here aborts the profile: an address that comes back unknown, or whose
    /// whole source fails (the process exited, the kernel's symbols are unreadable),
    /// becomes an unknown [`Location`], counted in
    /// [`SymbolizedProfile::unknown_addresses`]; source failures are listed in
    /// [`SymbolizedProfile::failures`].
    pub fn symbolize(&self, symbolizer: &Symbolizer) -> Result<SymbolizedProfile> {
        let mut failures = Vec::new();
        let mut resolved: HashMap<(AddressSpace, u64), Arc<Location>> = HashMap::new();
        for (space, addrs) in wanted(self.stacks.keys()) {
            let source = match space {
                AddressSpace::Kernel => Source::kernel(),
                AddressSpace::Process(pid) => Source::process(pid),
            };
            let addrs: Vec<u64> = addrs.into_iter().collect();
            let locations = match symbolizer.symbolize(&source, &addrs) {
                Ok(results) if results.len() == addrs.len() => {
                    let zipped = addrs.iter().zip(results);
                    zipped
                        .map(|(&addr, result)| Location::from_symbolized(addr, result))
                        .collect()
                }
                outcome => {
                    let error = match outcome {
                        Err(e) => e.to_string(),
                        Ok(results) => format!(
                            "the symbolizer returned {} results for {} addresses",
                            results.len(),
                            addrs.len()
                        ),
                    };
                    let unknown = addrs.iter().map(|&a| Location::unknown(a, UNKNOWN, &error));
                    let locations: Vec<_> = unknown.collect();
                    failures.push(SymbolizeFailure {
                        space,
                        addresses: addrs.len(),
                        error,
                    });
                    locations
                }
            };
            for location in locations {
                resolved.insert((space, location.address), Arc::new(location));
            }
        }
        let stacks = self.stacks.iter().map(|(key, &weight)| {
            let lookup = |space, ips: &[u64]| -> Vec<Arc<Location>> {
                adjusted(ips)
                    .map(|addr| {
                        let found = resolved.get(&(space, addr)).cloned();
                        // Every adjusted address was collected by `wanted`.
                        found.unwrap_or_else(|| Arc::new(Location::unknown(addr, UNKNOWN, "lost")))
                    })
                    .collect()
            };
            SymbolizedStack {
                pid: key.pid,
                tid: key.tid,
                comm: key.comm.clone(),
                user: lookup(AddressSpace::Process(key.pid), &key.user_ips),
                kernel: lookup(AddressSpace::Kernel, &key.kernel_ips),
                weight,
            }
        });
        let mut profile = SymbolizedProfile::from_stacks(stacks.collect());
        profile.set_failures(failures);
        Ok(profile)
    }
}

/// The addresses to look up for a chain of instruction pointers, innermost first: the
/// innermost as is, callers' return addresses minus one.
fn adjusted(ips: &[u64]) -> impl Iterator<Item = u64> + '_ {
    ips.iter()
        .enumerate()
        .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
}

/// The distinct addresses to look up, per address space.
fn wanted<'a>(keys: impl Iterator<Item = &'a StackKey>) -> BTreeMap<AddressSpace, BTreeSet<u64>> {
    let mut wanted: BTreeMap<AddressSpace, BTreeSet<u64>> = BTreeMap::new();
    for key in keys {
        if !key.user_ips.is_empty() {
            let set = wanted.entry(AddressSpace::Process(key.pid)).or_default();
            set.extend(adjusted(&key.user_ips));
        }
        if !key.kernel_ips.is_empty() {
            wanted
                .entry(AddressSpace::Kernel)
                .or_default()
                .extend(adjusted(&key.kernel_ips));
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32, user: &[u64], kernel: &[u64]) -> StackKey {
        StackKey {
            pid,
            tid: pid,
            comm: String::new(),
            user_ips: user.to_vec(),
            kernel_ips: kernel.to_vec(),
            python: Vec::new(),
        }
    }

    #[test]
    fn each_address_is_wanted_once_per_space() {
        let keys = [
            key(1, &[0x10, 0x21, 0x31], &[0xf0, 0xf1]),
            key(1, &[0x20, 0x21], &[]),
            key(2, &[0x10], &[0xf0]),
        ];
        let wanted = wanted(keys.iter());
        let flat: Vec<(AddressSpace, Vec<u64>)> = wanted
            .into_iter()
            .map(|(space, addrs)| (space, addrs.into_iter().collect()))
            .collect();
        assert_eq!(
            flat,
            vec![
                (AddressSpace::Kernel, vec![0xf0]),
                (AddressSpace::Process(1), vec![0x10, 0x20, 0x30]),
                (AddressSpace::Process(2), vec![0x10]),
            ]
        );
    }

    #[test]
    fn a_failing_source_makes_unknown_locations() {
        let profile: Profile = [super::super::Sample {
            pid: u32::MAX,
            tid: 1,
            comm: "gone".into(),
            kernel_ips: vec![],
            user_ips: vec![0x1000, 0x2001],
            python: Vec::new(),
            weight: 2,
        }]
        .into_iter()
        .collect();
        let symbolized = profile.symbolize(&Symbolizer::new()).expect("never fails");
        assert_eq!(symbolized.unknown_addresses(), 2);
        assert_eq!(symbolized.failures().len(), 1);
        assert_eq!(
            symbolized.failures()[0].space,
            AddressSpace::Process(u32::MAX)
        );
        assert_eq!(symbolized.failures()[0].addresses, 2);
        assert_eq!(symbolized.folded(), "gone;[unknown];[unknown] 2\n");
        let addrs: Vec<u64> = symbolized.stacks()[0]
            .user
            .iter()
            .map(|l| l.address)
            .collect();
        assert_eq!(addrs, vec![0x1000, 0x2000]);
    }
}
