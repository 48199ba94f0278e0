//! Folded stacks (Brendan Gregg's format, what `stackcollapse-*` and bcc's `profile -f`
//! write): `comm;root;...;leaf count`, one line per distinct stack.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use super::stack::SymbolizedProfile;

impl SymbolizedProfile {
    /// The folded lines with their counts: `comm;root;...;leaf`, user frames then kernel
    /// frames (suffixed `_[k]`), inline chains expanded. Stacks that read the same merge
    /// (summing, saturating); stacks of weight zero are left out. Sorted by line, so the
    /// output is deterministic. A `;` inside a name (or comm) becomes `:` and line breaks
    /// become spaces, so that every line parses back.
    pub fn folded_lines(&self) -> Vec<(String, u64)> {
        let mut lines: BTreeMap<String, u64> = BTreeMap::new();
        for stack in self.stacks().iter().filter(|s| s.weight > 0) {
            let mut line = sanitize(&stack.comm);
            for name in stack.frame_names() {
                line.push(';');
                line.push_str(&sanitize(&name));
            }
            let count = lines.entry(line).or_insert(0);
            *count = count.saturating_add(stack.weight);
        }
        lines.into_iter().collect()
    }

    /// The folded stacks as text, one `line count` per line, each ending in `\n`.
    pub fn folded(&self) -> String {
        let mut text = String::new();
        for (line, count) in self.folded_lines() {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{line} {count}");
        }
        text
    }

    /// Writes [`folded`](Self::folded) to `out`.
    pub fn write_folded(&self, mut out: impl Write) -> io::Result<()> {
        for (line, count) in self.folded_lines() {
            writeln!(out, "{line} {count}")?;
        }
        Ok(())
    }
}

/// A name that cannot break a folded line.
fn sanitize(name: &str) -> String {
    let clean = |c: char| match c {
        ';' => ':',
        '\n' | '\r' => ' ',
        c => c,
    };
    let name: String = name.chars().map(clean).collect();
    if name.trim().is_empty() {
        "[unknown]".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn names_cannot_break_lines() {
        assert_eq!(sanitize("a;b\nc"), "a:b c");
        assert_eq!(sanitize(""), "[unknown]");
        assert_eq!(
            sanitize("operator<<(std::ostream&, int)"),
            "operator<<(std::ostream&, int)"
        );
    }
}
