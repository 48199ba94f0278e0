//! [`StackTotals`]: off-CPU stack records of several intervals added up into one per
//! distinct stack.

use std::collections::BTreeMap;

use coolbpf_core::StackSample;

/// What tells two stack records apart: pid, tid, comm and frames; for unsymbolized
/// records (no frames), their user and kernel addresses.
type StackKey = (u32, u32, String, Vec<String>, Vec<u64>, Vec<u64>);

/// Off-CPU stack records (the plugin emits each interval's time per stack) added up:
/// records of the same stack sum their weights and keep the latest timestamp.
#[derive(Debug, Default, Clone)]
pub struct StackTotals {
    stacks: BTreeMap<StackKey, StackSample>,
}

impl StackTotals {
    /// No stacks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record.
    pub fn add(&mut self, stack: StackSample) {
        let (user, kernel) = if stack.frames.is_empty() {
            (stack.user_ips.clone(), stack.kernel_ips.clone())
        } else {
            (Vec::new(), Vec::new())
        };
        let key = (
            stack.pid,
            stack.tid,
            stack.comm.clone(),
            stack.frames.clone(),
            user,
            kernel,
        );
        self.stacks
            .entry(key)
            .and_modify(|known| {
                known.weight = known.weight.saturating_add(stack.weight);
                known.ts_ns = known.ts_ns.max(stack.ts_ns);
            })
            .or_insert(stack);
    }

    /// Distinct stacks so far.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The totals, one per distinct stack.
    pub fn into_stacks(self) -> Vec<StackSample> {
        self.stacks.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(frames: &[&str], weight: u64, ts_ns: u64) -> StackSample {
        StackSample {
            probe: "offcpu".into(),
            pid: 1,
            tid: 1,
            comm: "a".into(),
            kernel_ips: Vec::new(),
            user_ips: Vec::new(),
            frames: frames.iter().map(|f| (*f).to_owned()).collect(),
            weight,
            ts_ns,
        }
    }

    #[test]
    fn same_stacks_add_up_and_others_stay_apart() {
        let mut totals = StackTotals::new();
        totals.add(stack(&["main", "sleep"], 10, 5));
        totals.add(stack(&["main", "sleep"], 7, 9));
        totals.add(stack(&["main", "read"], 3, 1));
        let stacks = totals.into_stacks();
        assert_eq!(stacks.len(), 2);
        let sleep = stacks.iter().find(|s| s.frames[1] == "sleep").unwrap();
        assert_eq!((sleep.weight, sleep.ts_ns), (17, 9));
    }
}
