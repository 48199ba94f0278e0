//! [`UserStacks`]: names the user stacks the GPU probes capture (launch sites, blocked
//! calls, NCCL calls), through one bounded-cache resolver that keeps what it resolved.

use std::sync::Mutex;

use coolbpf_core::StackSample;
use coolbpf_probes::stacks::{stack_record, symbolizer};
use coolbpf_symbolize::profile::StackResolver;
use coolbpf_symbolize::{Profile, Sample};

use crate::sync::lock;

/// User stacks to frame names, with the resolver's caches kept between calls.
#[derive(Debug)]
pub struct UserStacks {
    resolver: Mutex<StackResolver>,
}

impl Default for UserStacks {
    fn default() -> Self {
        Self {
            // Symbol tables only: stacks are named every interval, DWARF would cost more
            // than the probes themselves.
            resolver: Mutex::new(StackResolver::new(symbolizer(false))),
        }
    }
}

fn sample(pid: u32, comm: &str, stack: &[u64], weight: u64) -> Sample {
    Sample {
        pid,
        tid: 0,
        comm: comm.to_owned(),
        kernel_ips: Vec::new(),
        user_ips: stack.to_vec(),
        python: Vec::new(),
        weight,
    }
}

impl UserStacks {
    /// The frames of user stack `stack` (innermost first) of process `pid`, root first.
    /// The process must still be alive for its addresses to resolve.
    pub fn frames(&self, pid: u32, comm: &str, stack: &[u64]) -> Vec<String> {
        if stack.is_empty() {
            return Vec::new();
        }
        let one = sample(pid, comm, stack, 1);
        let mut resolver = lock(&self.resolver);
        resolver.resolve_user(&Profile::from_iter([one.clone()]));
        resolver.stack(&one).frame_names()
    }

    /// Stack records of probe `probe` for `sites` (pid, comm, stack innermost first,
    /// weight, and a leaf frame to append), all resolved in one pass.
    pub fn records<'a>(
        &self,
        probe: &str,
        ts_ns: u64,
        sites: impl IntoIterator<Item = (u32, &'a str, &'a [u64], u64, String)>,
    ) -> Vec<StackSample> {
        let sites: Vec<_> = sites.into_iter().collect();
        let mut all = Profile::new();
        for (pid, comm, stack, weight, _) in &sites {
            all.add(sample(*pid, comm, stack, *weight));
        }
        let mut resolver = lock(&self.resolver);
        resolver.resolve_user(&all);
        let mut out = Vec::new();
        for (pid, comm, stack, weight, leaf) in sites {
            let stack = resolver.stack(&sample(pid, comm, stack, weight));
            let mut record = stack_record(probe, &stack, ts_ns);
            record.frames.push(leaf);
            out.push(record);
        }
        out
    }
}
