//! Flame graph SVGs, drawn by `inferno` from the folded stacks.

use std::io::{self, Write};

use inferno::flamegraph::color::{MultiPalette, Palette};

use super::stack::SymbolizedProfile;

/// How a flame graph is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlameGraphOptions {
    /// The title at the top.
    pub title: String,
    /// A second line under the title, if any.
    pub subtitle: Option<String>,
    /// What the counts are, shown in tooltips (`samples`, `us`, ...).
    pub count_name: String,
}

impl Default for FlameGraphOptions {
    fn default() -> Self {
        Self {
            title: "Flame Graph".into(),
            subtitle: None,
            count_name: "samples".into(),
        }
    }
}

impl FlameGraphOptions {
    /// The labels of an off-CPU profile, whose counts are microseconds.
    pub fn off_cpu() -> Self {
        Self {
            title: "coolbpf off-CPU profile".into(),
            subtitle: None,
            count_name: "us".into(),
        }
    }
}

impl SymbolizedProfile {
    /// Writes a flame graph SVG of the [folded stacks](Self::folded_lines). Kernel frames
    /// are drawn orange and shown without their `_[k]` suffix (flamegraph.pl's `java`
    /// palette, as perf and bcc users use for mixed stacks); colours follow a hash of each
    /// function's name, so the same profile draws the same picture.
    ///
    /// An empty profile (no stack of weight above zero) is an error
    /// (`InvalidData`), after inferno has written an SVG that says so.
    pub fn write_flamegraph(&self, options: &FlameGraphOptions, out: impl Write) -> io::Result<()> {
        let mut opts = inferno::flamegraph::Options::default();
        opts.title.clone_from(&options.title);
        opts.subtitle.clone_from(&options.subtitle);
        opts.count_name.clone_from(&options.count_name);
        opts.hash = true;
        opts.colors = Palette::Multi(MultiPalette::Java);
        let lines: Vec<String> = self
            .folded_lines()
            .into_iter()
            .map(|(line, count)| format!("{line} {count}"))
            .collect();
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
    }

    /// The flame graph SVG as bytes; see [`write_flamegraph`](Self::write_flamegraph).
    pub fn flamegraph(&self, options: &FlameGraphOptions) -> io::Result<Vec<u8>> {
        let mut svg = Vec::new();
        self.write_flamegraph(options, &mut svg)?;
        Ok(svg)
    }
}
