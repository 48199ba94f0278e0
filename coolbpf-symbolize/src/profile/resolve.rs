//! [`StackResolver`]: the one way stacks are symbolized. Each distinct address is looked
//! up once per address space, and what was found is kept.
//!
//! User addresses must be resolved while their process is alive (its maps say which file
//! an address belongs to); kernel addresses can wait, so callers resolve them as late and
//! as rarely as they can. A profiler that symbolizes every second cannot look every
//! address up again each time and stay under 1% of a core, so the resolver keeps kernel
//! locations for as long as it lives (kernel text does not move) and user locations per
//! process until [`forget_processes`](StackResolver::forget_processes).
//!
//! CPython frames captured with a sample ([`Sample::python`]) are named from the
//! process's memory in the same user pass (the code objects must still exist), and put
//! where the interpreter runs them by [`interleave`].

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::python::{interleave, PythonSymbolizer};
use crate::source::Source;
use crate::symbolizer::Symbolizer;

use super::stack::{
    AddressSpace, Location, SymbolizeFailure, SymbolizedProfile, SymbolizedStack, UNKNOWN,
};
use super::{Profile, PythonFrame, Sample};

impl Profile {
    /// Symbolizes every distinct address once: user addresses grouped per pid (through
    /// [`Source::process`]), kernel addresses together (through [`Source::kernel`]). The
    /// same as a fresh [`StackResolver`] resolving this profile.
    ///
    /// Callers' return addresses (every instruction pointer but the innermost of the
    /// user and of the kernel part) are looked up at `ip - 1`, so that the call site and
    /// its inline chain are reported, not the instruction after the call.
    ///
    /// Nothing here fails the profile: an address that comes back unknown, or whose
    /// whole source fails (the process exited, the kernel's symbols are unreadable),
    /// becomes an unknown [`Location`], counted in
    /// [`SymbolizedProfile::unknown_addresses`]; source failures are listed in
    /// [`SymbolizedProfile::failures`].
    pub fn symbolize(&self, symbolizer: &Symbolizer) -> SymbolizedProfile {
        let mut resolver = StackResolver::new(symbolizer);
        resolver.resolve_user(self);
        resolver.resolve_kernel(self);
        resolver.profile(self)
    }
}

/// Symbolizes stacks with caches, the one way stacks are symbolized: each distinct
/// address is looked up once per address space, and what was found is kept. `S` is the
/// symbolizer, owned or borrowed.
///
/// User addresses must be resolved while their process is alive (its maps say which file
/// an address belongs to); kernel addresses can wait, so callers resolve them as late and
/// as rarely as they can. Kernel locations are kept for as long as the resolver lives
/// (kernel text does not move), user locations per process until
/// [`forget_processes`](Self::forget_processes).
#[derive(Debug)]
pub struct StackResolver<S = Symbolizer> {
    symbolizer: S,
    kernel: HashMap<u64, Arc<Location>>,
    user: HashMap<(u32, u64), Arc<Location>>,
    python_names: PythonSymbolizer,
    python: HashMap<(u32, PythonFrame), Arc<Location>>,
    failures: Vec<SymbolizeFailure>,
}

impl<S: Borrow<Symbolizer>> StackResolver<S> {
    /// A resolver over `symbolizer`, with nothing resolved yet.
    pub fn new(symbolizer: S) -> Self {
        Self {
            symbolizer,
            kernel: HashMap::new(),
            user: HashMap::new(),
            python_names: PythonSymbolizer::new(),
            python: HashMap::new(),
            failures: Vec::new(),
        }
    }

    /// Resolves the user addresses and Python frames of `profile` not resolved yet, per
    /// process.
    pub fn resolve_user(&mut self, profile: &Profile) {
        let mut wanted: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
        for sample in profile.samples() {
            for frame in &sample.python {
                if !self.python.contains_key(&(sample.pid, *frame)) {
                    let named = self.python_names.locations(sample.pid, &[*frame]);
                    self.python
                        .extend(named.into_iter().map(|l| ((sample.pid, *frame), l)));
                }
            }
            let known = |addr: &u64| self.user.contains_key(&(sample.pid, *addr));
            let fresh: Vec<u64> = lookup_addresses(&sample.user_ips)
                .filter(|addr| !known(addr))
                .collect();
            if !fresh.is_empty() {
                wanted.entry(sample.pid).or_default().extend(fresh);
            }
        }
        for (pid, addrs) in wanted {
            let space = AddressSpace::Process(pid);
            for location in self.lookup(space, &Source::process(pid), addrs) {
                self.user
                    .insert((pid, location.address), Arc::new(location));
            }
        }
    }

    /// Resolves the kernel addresses of `profile` not resolved yet: one read of the
    /// kernel's symbols, or none when every address is known.
    pub fn resolve_kernel(&mut self, profile: &Profile) {
        let wanted: BTreeSet<u64> = profile
            .samples()
            .flat_map(|sample| lookup_addresses(&sample.kernel_ips).collect::<Vec<_>>())
            .filter(|addr| !self.kernel.contains_key(addr))
            .collect();
        if wanted.is_empty() {
            return;
        }
        for location in self.lookup(AddressSpace::Kernel, &Source::kernel(), wanted) {
            self.kernel.insert(location.address, Arc::new(location));
        }
    }

    /// Forgets user locations (bounded memory, and a reused pid is not mistaken for the
    /// process that had it before). Kernel locations stay.
    pub fn forget_processes(&mut self) {
        self.user.clear();
        self.python.clear();
        self.python_names = PythonSymbolizer::new();
    }

    /// Sources that failed as a whole, once per address space (their addresses show as
    /// `[unknown]`).
    pub fn failures(&self) -> &[SymbolizeFailure] {
        &self.failures
    }

    /// The stacks of `profile` from what was resolved; an address never resolved shows
    /// as `[unknown]`.
    pub fn stacks(&self, profile: &Profile) -> Vec<SymbolizedStack> {
        profile
            .samples()
            .map(|sample| self.stack(&sample))
            .collect()
    }

    /// [`stacks`](Self::stacks) as a profile, with the failures so far.
    pub fn profile(&self, profile: &Profile) -> SymbolizedProfile {
        let mut symbolized = SymbolizedProfile::from_stacks(self.stacks(profile));
        symbolized.set_failures(self.failures.clone());
        symbolized
    }

    /// The stack of one sample from what was resolved, its Python frames interleaved.
    pub fn stack(&self, sample: &Sample) -> SymbolizedStack {
        let native: Vec<Arc<Location>> = lookup_addresses(&sample.user_ips)
            .map(|addr| found(self.user.get(&(sample.pid, addr)), addr))
            .collect();
        let user = if sample.python.is_empty() {
            native
        } else {
            let python: Vec<Arc<Location>> = sample
                .python
                .iter()
                .map(|frame| found(self.python.get(&(sample.pid, *frame)), frame.code))
                .collect();
            interleave(&native, &sample.python, &python)
        };
        let kernel = lookup_addresses(&sample.kernel_ips)
            .map(|addr| found(self.kernel.get(&addr), addr))
            .collect();
        SymbolizedStack {
            pid: sample.pid,
            tid: sample.tid,
            comm: sample.comm.clone(),
            user,
            kernel,
            weight: sample.weight,
        }
    }

    /// Looks `addrs` up in `source`; a source that fails as a whole yields unknown
    /// locations and is noted in [`failures`](Self::failures).
    fn lookup(
        &mut self,
        space: AddressSpace,
        source: &Source,
        addrs: BTreeSet<u64>,
    ) -> Vec<Location> {
        let addrs: Vec<u64> = addrs.into_iter().collect();
        let error = match self.symbolizer.borrow().symbolize(source, &addrs) {
            Ok(results) if results.len() == addrs.len() => {
                return addrs
                    .iter()
                    .zip(results)
                    .map(|(&addr, result)| Location::from_symbolized(addr, result))
                    .collect();
            }
            Ok(results) => format!(
                "the symbolizer returned {} results for {} addresses",
                results.len(),
                addrs.len()
            ),
            Err(err) => err.to_string(),
        };
        if !self.failures.iter().any(|f| f.space == space) {
            self.failures.push(SymbolizeFailure {
                space,
                addresses: addrs.len(),
                error: error.clone(),
            });
        }
        addrs
            .iter()
            .map(|&addr| Location::unknown(addr, UNKNOWN, error.clone()))
            .collect()
    }
}

fn found(location: Option<&Arc<Location>>, addr: u64) -> Arc<Location> {
    location
        .cloned()
        .unwrap_or_else(|| Arc::new(Location::unknown(addr, UNKNOWN, "not resolved")))
}

/// The addresses to look up for instruction pointers innermost first: the innermost as
/// captured, every caller's return address minus one, so that the call (with its inline
/// chain) is named rather than whatever follows it.
fn lookup_addresses(ips: &[u64]) -> impl Iterator<Item = u64> + '_ {
    ips.iter()
        .enumerate()
        .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pid: u32, user: &[u64], kernel: &[u64]) -> Sample {
        Sample {
            pid,
            tid: pid,
            comm: "gone".into(),
            kernel_ips: kernel.to_vec(),
            user_ips: user.to_vec(),
            python: Vec::new(),
            weight: 2,
        }
    }

    #[test]
    fn a_failing_source_makes_unknown_locations() {
        let profile: Profile = [sample(u32::MAX, &[0x1000, 0x2001], &[])]
            .into_iter()
            .collect();
        let symbolized = profile.symbolize(&Symbolizer::new());
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

    #[test]
    fn a_failing_source_fails_once() {
        let mut resolver = StackResolver::new(Symbolizer::new());
        let profile: Profile = [sample(u32::MAX, &[0x1000, 0x2001], &[])]
            .into_iter()
            .collect();
        resolver.resolve_user(&profile);
        resolver.resolve_user(&profile);
        assert_eq!(resolver.failures().len(), 1);
        assert!(resolver.stacks(&profile)[0]
            .user
            .iter()
            .all(|l| l.is_unknown()));
    }

    #[test]
    fn unresolved_addresses_are_unknown_not_missing() {
        let resolver = StackResolver::new(Symbolizer::new());
        let profile: Profile = [sample(1, &[0x10], &[0xffff_ffff_8100_0000])]
            .into_iter()
            .collect();
        let stacks = resolver.stacks(&profile);
        assert_eq!(stacks[0].frame_names(), vec!["[unknown]", "[unknown]_[k]"]);
    }

    #[test]
    fn this_process_resolves_and_is_cached() {
        let mut resolver = StackResolver::new(Symbolizer::new());
        let here = this_process_resolves_and_is_cached as *const () as u64;
        let profile: Profile = [sample(std::process::id(), &[here], &[])]
            .into_iter()
            .collect();
        resolver.resolve_user(&profile);
        let names = resolver.stacks(&profile)[0].frame_names();
        assert!(
            names[0].contains("this_process_resolves_and_is_cached"),
            "{names:?}"
        );
        assert_eq!(resolver.user.len(), 1);
        resolver.forget_processes();
        assert!(resolver.user.is_empty());
    }
}
