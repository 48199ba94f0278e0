//! The functions that cost the most: self (leaf) and total (inclusive) weights.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::stack::SymbolizedProfile;

/// One function's share of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    /// The function's (demangled) name; inlined functions count as functions of their own.
    pub function: String,
    /// Whether it is a kernel function.
    pub kernel: bool,
    /// Weight of the stacks it is the innermost frame of.
    pub self_weight: u64,
    /// Weight of the stacks it appears in (once per stack, however often it recurses).
    pub total_weight: u64,
}

/// The top functions of a profile; its [`Display`](fmt::Display) is a table in the style of
/// `pprof -top`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    /// The functions, by self weight, then total weight (both descending), then name.
    pub entries: Vec<TopEntry>,
    /// The weight of the whole profile, for percentages.
    pub total_weight: u64,
}

impl SymbolizedProfile {
    /// The `n` functions with the most self weight (ties broken by total weight, then
    /// by name), with their total weights.
    pub fn top(&self, n: usize) -> Top {
        // (name, kernel) -> (self, total)
        let mut weights: HashMap<(&str, bool), (u64, u64)> = HashMap::new();
        let mut seen = HashSet::new();
        for stack in self.stacks() {
            seen.clear();
            let user = stack.user.iter().map(|loc| (loc, false));
            let kernel = stack.kernel.iter().map(|loc| (loc, true));
            for (loc, is_kernel) in user.chain(kernel) {
                for name in loc.names_root_first() {
                    if seen.insert((name, is_kernel)) {
                        let entry = weights.entry((name, is_kernel)).or_default();
                        entry.1 = entry.1.saturating_add(stack.weight);
                    }
                }
            }
            if let Some((leaf, is_kernel)) = stack.leaf() {
                let name = leaf
                    .frames
                    .first()
                    .map_or(super::stack::UNKNOWN, |f| f.function.as_str());
                let entry = weights.entry((name, is_kernel)).or_default();
                entry.0 = entry.0.saturating_add(stack.weight);
            }
        }
        let mut entries: Vec<TopEntry> = weights
            .into_iter()
            .map(
                |((function, kernel), (self_weight, total_weight))| TopEntry {
                    function: function.to_owned(),
                    kernel,
                    self_weight,
                    total_weight,
                },
            )
            .collect();
        entries.sort_by(|a, b| {
            (b.self_weight, b.total_weight)
                .cmp(&(a.self_weight, a.total_weight))
                .then_with(|| (&a.function, a.kernel).cmp(&(&b.function, b.kernel)))
        });
        entries.truncate(n);
        Top {
            entries,
            total_weight: self.total_weight(),
        }
    }
}

impl fmt::Display for Top {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = |w: u64| {
            if self.total_weight == 0 {
                0.0
            } else {
                w as f64 * 100.0 / self.total_weight as f64
            }
        };
        writeln!(
            f,
            "{:>12} {:>7} {:>12} {:>7}  function",
            "self", "self%", "total", "total%"
        )?;
        for e in &self.entries {
            let suffix = if e.kernel { "_[k]" } else { "" };
            writeln!(
                f,
                "{:>12} {:>6.2}% {:>12} {:>6.2}%  {}{suffix}",
                e.self_weight,
                percent(e.self_weight),
                e.total_weight,
                percent(e.total_weight),
                e.function
            )?;
        }
        Ok(())
    }
}
