//! Each distinct address resolved once: callers pass stacks full of repeats.

/// The distinct addresses of a batch, sorted.
#[derive(Debug)]
pub(crate) struct Distinct {
    sorted: Vec<u64>,
}

impl Distinct {
    /// The distinct addresses of `addrs`.
    pub(crate) fn new(addrs: &[u64]) -> Self {
        let mut sorted = addrs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        Self { sorted }
    }

    /// The distinct addresses, sorted; results are indexed like this slice.
    pub(crate) fn addrs(&self) -> &[u64] {
        &self.sorted
    }

    /// One result per address of `addrs` (the batch this was made from), in its order,
    /// from `results`, which holds one per distinct address.
    pub(crate) fn spread<T: Clone>(&self, addrs: &[u64], results: &[T]) -> Vec<T> {
        addrs
            .iter()
            .filter_map(|addr| {
                let index = self.sorted.binary_search(addr).ok()?;
                results.get(index).cloned()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_resolved_once_and_spread_back() {
        let addrs = [30, 10, 30, 20, 10];
        let distinct = Distinct::new(&addrs);
        assert_eq!(distinct.addrs(), [10, 20, 30]);
        let results: Vec<String> = distinct.addrs().iter().map(|a| format!("r{a}")).collect();
        assert_eq!(
            distinct.spread(&addrs, &results),
            ["r30", "r10", "r30", "r20", "r10"]
        );
    }
}
