//! [`TextSink`]: records for people, as `coolbpf run` prints them without `--json`.
//!
//! Counters and gauges become aligned tables, one per metric name, and histograms become
//! bar charts in the style of libbpf-tools:
//!
//! ```text
//! runqlat runq_latency
//!      usecs               : count    distribution
//!          0 -> 1          : 12       |************                            |
//!          2 -> 3          : 40       |****************************************|
//!      count=52 sum=83 mean=1.60 p50<=3 p99<=3 (us)
//! ```
//!
//! Events print as one line each (`ts` in seconds, then `name=value` pairs) and stacks as
//! folded frames followed by their count. The formatting is in pure functions,
//! [`format_record`] and [`format_metrics`], so it can be tested and reused.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Stdout, Write};

use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::record::{Event, FieldValue, Metric, MetricValue, Record, StackSample};
use crate::sink::Sink;

/// Writes records as text.
///
/// Events and stacks are written as they arrive. Metrics are held until [`Sink::flush`]
/// (which the runtime calls after each collected batch) so that one interval's counters
/// form one aligned table.
#[derive(Debug)]
pub struct TextSink<W: Write> {
    out: W,
    pending: Vec<Metric>,
}

impl TextSink<BufWriter<Stdout>> {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::new(BufWriter::new(io::stdout()))
    }
}

impl<W: Write> TextSink<W> {
    /// Writes to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            out: writer,
            pending: Vec::new(),
        }
    }

    /// Gives back the underlying writer (metrics not yet flushed are discarded).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn put(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .map_err(|err| Error::io("write text output", err))
    }
}

impl<W: Write + Send> Sink for TextSink<W> {
    fn write(&mut self, record: &Record) -> Result<()> {
        match record {
            Record::Metric(metric) => {
                self.pending.push(metric.clone());
                Ok(())
            }
            Record::Event(_) | Record::Stack(_) => self.put(&format_record(record)),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            // A blank line after each group keeps consecutive intervals apart.
            let text = format_metrics(&self.pending) + "\n";
            self.pending.clear();
            self.put(&text)?;
        }
        self.out
            .flush()
            .map_err(|err| Error::io("flush text output", err))
    }
}

/// Formats one record; the result ends with a newline.
pub fn format_record(record: &Record) -> String {
    match record {
        Record::Metric(metric) => format_metrics(std::slice::from_ref(metric)),
        Record::Event(event) => format_event(event),
        Record::Stack(stack) => format_stack(stack),
    }
}

/// Formats a batch of metrics: counters and gauges as one aligned table per
/// `(probe, name)`, in order of first appearance, and each histogram as a bar chart.
/// Blocks are separated by a blank line; the result ends with a newline.
pub fn format_metrics(metrics: &[Metric]) -> String {
    let mut blocks: Vec<Block<'_>> = Vec::new();
    for metric in metrics {
        if let MetricValue::Histogram(histogram) = &metric.value {
            blocks.push(Block::Chart(metric, histogram));
            continue;
        }
        let table = blocks.iter_mut().find_map(|block| match block {
            Block::Table { first, rows }
                if first.probe == metric.probe && first.name == metric.name =>
            {
                Some(rows)
            }
            _ => None,
        });
        match table {
            Some(rows) => rows.push(metric),
            None => blocks.push(Block::Table {
                first: metric,
                rows: vec![metric],
            }),
        }
    }
    let rendered: Vec<String> = blocks.iter().map(Block::render).collect();
    rendered.join("\n")
}

/// A unit of text output.
enum Block<'a> {
    /// Scalar metrics sharing the probe and name of `first` (which is also in `rows`).
    Table {
        first: &'a Metric,
        rows: Vec<&'a Metric>,
    },
    /// One histogram.
    Chart(&'a Metric, &'a Histogram),
}

impl Block<'_> {
    fn render(&self) -> String {
        match self {
            Self::Table { first, rows } => format_table(first, rows),
            Self::Chart(metric, histogram) => format_chart(metric, histogram),
        }
    }
}

fn heading(metric: &Metric) -> String {
    format!("{} {}", metric.probe, metric.name)
}

/// Label columns (the union of the rows' label names, sorted) then a right-aligned value.
fn format_table(first: &Metric, rows: &[&Metric]) -> String {
    let names: BTreeSet<&str> = rows
        .iter()
        .flat_map(|m| m.labels.keys().map(String::as_str))
        .collect();
    let header = (
        names.iter().map(|n| n.to_uppercase()).collect(),
        "VALUE".to_owned(),
    );
    let cells: Vec<(Vec<String>, String)> = rows
        .iter()
        .map(|metric| {
            let labels = names
                .iter()
                .map(|name| {
                    metric
                        .label(name)
                        .map_or_else(|| "-".to_owned(), ToString::to_string)
                })
                .collect();
            (labels, scalar(&metric.value))
        })
        .collect();
    let all_rows = || std::iter::once(&header).chain(&cells);
    let label_widths: Vec<usize> = (0..names.len())
        .map(|column| {
            all_rows()
                .map(|(labels, _)| labels[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let value_width = all_rows()
        .map(|(_, value)| value.chars().count())
        .max()
        .unwrap_or(0);
    let line = |(labels, value): &(Vec<String>, String)| {
        let mut columns: Vec<String> = labels
            .iter()
            .zip(&label_widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        columns.push(format!("{value:>value_width$}"));
        format!("  {}\n", columns.join("  "))
    };
    std::iter::once(heading(first) + "\n")
        .chain(all_rows().map(line))
        .collect()
}

fn scalar(value: &MetricValue) -> String {
    match value {
        MetricValue::Counter(v) => v.to_string(),
        MetricValue::Gauge(v) => v.to_string(),
        MetricValue::Histogram(h) => format!("histogram(count={})", h.count),
    }
}

/// A libbpf-tools `print_log2_hist` style chart.
///
/// Only non-empty buckets are stored, so each row spans from just above the previous
/// row's upper bound: every value counted there lies in that span, and the empty buckets
/// in between are folded into it rather than printed.
fn format_chart(metric: &Metric, histogram: &Histogram) -> String {
    let finite = histogram
        .buckets
        .iter()
        .map(|b| b.le)
        .filter(|&le| le != u64::MAX);
    // libbpf-tools widens the chart once bounds no longer fit in 10 digits.
    let wide = finite.max().is_some_and(|le| le.to_string().len() > 10);
    let (indent, label_width, width, stars) = if wide {
        (15, 29, 20, 20)
    } else {
        (5, 19, 10, 40)
    };

    let mut title = heading(metric);
    if !metric.labels.is_empty() {
        let labels: Vec<String> = metric
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        title = format!("{title} {{{}}}", labels.join(", "));
    }
    let unit = unit_label(&histogram.unit);
    let mut lines = vec![
        title,
        format!("{:indent$}{unit:<label_width$} : count    distribution", ""),
    ];

    let max = histogram.buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let mut low = 0;
    for bucket in &histogram.buckets {
        let high = bound(bucket.le);
        let bar = bar(bucket.count, max, stars);
        lines.push(format!(
            "{low:>width$} -> {high:<width$} : {:<8} |{bar}|",
            bucket.count
        ));
        low = bucket.le.saturating_add(1);
    }
    lines.push(format!("{:indent$}{}", "", summary(histogram)));
    lines.join("\n") + "\n"
}

fn bar(count: u64, max: u64, width: usize) -> String {
    let filled = if max == 0 {
        0
    } else {
        // u128: count * width can overflow u64 for huge counts.
        (u128::from(count) * width as u128 / u128::from(max)) as usize
    };
    format!("{}{}", "*".repeat(filled), " ".repeat(width - filled))
}

fn summary(histogram: &Histogram) -> String {
    let mean = histogram
        .mean()
        .map_or_else(|| "-".to_owned(), |m| format!("{m:.2}"));
    let quantile = |q| {
        histogram
            .percentile(q)
            .map_or_else(|| "-".to_owned(), bound)
    };
    let text = format!(
        "count={} sum={} mean={mean} p50<={} p99<={}",
        histogram.count,
        histogram.sum,
        quantile(0.5),
        quantile(0.99)
    );
    if histogram.unit.is_empty() {
        text
    } else {
        format!("{text} ({})", histogram.unit)
    }
}

/// Shows the open-ended bound as `inf`.
fn bound(le: u64) -> String {
    if le == u64::MAX {
        "inf".to_owned()
    } else {
        le.to_string()
    }
}

/// The column title libbpf-tools uses for common time units.
fn unit_label(unit: &str) -> &str {
    match unit {
        "ns" => "nsecs",
        "us" => "usecs",
        "ms" => "msecs",
        "" => "value",
        other => other,
    }
}

/// `ts` in seconds (exact, 6 decimals) then `name=value` pairs.
fn format_event(event: &Event) -> String {
    let ts = format!(
        "{}.{:06}",
        event.ts_ns / 1_000_000_000,
        event.ts_ns % 1_000_000_000 / 1_000
    );
    let fields = event
        .fields
        .iter()
        .map(|(name, value)| format!("{name}={}", field(value)));
    std::iter::once(ts)
        .chain(fields)
        .collect::<Vec<_>>()
        .join(" ")
        + "\n"
}

fn field(value: &FieldValue) -> String {
    match value {
        FieldValue::Int(v) => v.to_string(),
        FieldValue::UInt(v) => v.to_string(),
        FieldValue::Float(v) => v.to_string(),
        FieldValue::Str(v) => v.clone(),
        FieldValue::StrList(v) => v.join(" "),
    }
}

/// Frames root first joined by `;`, then the count (folded-stack style). Unsymbolized
/// stacks show their addresses, user frames first as in [`StackSample::frames`].
fn format_stack(stack: &StackSample) -> String {
    let frames = if stack.frames.is_empty() {
        let addresses: Vec<String> = stack
            .user_ips
            .iter()
            .rev()
            .chain(stack.kernel_ips.iter().rev())
            .map(|ip| format!("{ip:#x}"))
            .collect();
        if addresses.is_empty() {
            "[unknown]".to_owned()
        } else {
            addresses.join(";")
        }
    } else {
        stack.frames.join(";")
    };
    format!("{frames} {}\n", stack.weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{Bucket, Layout};
    use crate::labels;

    #[test]
    fn counters_form_one_aligned_table_per_name() {
        let metrics = vec![
            Metric::counter(
                "syscount",
                "syscalls_total",
                labels! { "comm" => "sh", "pid" => 7 },
                5,
            ),
            Metric::gauge("core", "load", labels! {}, 0.5),
            Metric::counter(
                "syscount",
                "syscalls_total",
                labels! { "comm" => "python3", "pid" => 4242, "syscall" => "read" },
                1000,
            ),
        ];
        let expected = "\
syscount syscalls_total
  COMM     PID   SYSCALL  VALUE
  sh       7     -            5
  python3  4242  read      1000

core load
  VALUE
    0.5
";
        assert_eq!(format_metrics(&metrics), expected);
    }

    #[test]
    fn histogram_matches_libbpf_tools_layout() {
        let histogram = Histogram::from_slots(Layout::Log2, &[0, 12, 40], 83, "us");
        let metric = Metric::histogram("runqlat", "runq_latency", labels! {}, histogram);
        let expected = "\
runqlat runq_latency
     usecs               : count    distribution
         0 -> 1          : 12       |************                            |
         2 -> 3          : 40       |****************************************|
     count=52 sum=83 mean=1.60 p50<=3 p99<=3 (us)
";
        assert_eq!(format_record(&metric.into()), expected);
    }

    #[test]
    fn open_ended_bucket_shows_inf_and_labels_show() {
        let histogram = Histogram {
            unit: "bytes".into(),
            buckets: vec![
                Bucket { le: 7, count: 1 },
                Bucket {
                    le: u64::MAX,
                    count: 3,
                },
            ],
            count: 4,
            sum: 100,
        };
        let metric = Metric::histogram("io", "size", labels! { "dev" => "sda" }, histogram);
        let text = format_record(&metric.into());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "io size {dev=sda}");
        assert_eq!(lines[1], "     bytes               : count    distribution");
        assert_eq!(
            lines[2],
            "         0 -> 7          : 1        |*************                           |"
        );
        assert_eq!(
            lines[3],
            "         8 -> inf        : 3        |****************************************|"
        );
        assert_eq!(
            lines[4],
            "     count=4 sum=100 mean=25.00 p50<=inf p99<=inf (bytes)"
        );
    }

    #[test]
    fn wide_bounds_widen_the_chart() {
        let histogram = Histogram {
            unit: "ns".into(),
            buckets: vec![Bucket {
                le: (1 << 40) - 1,
                count: 2,
            }],
            count: 2,
            sum: 1 << 39,
        };
        let metric = Metric::histogram("p", "h", labels! {}, histogram);
        let text = format_record(&metric.into());
        let row = text.lines().nth(2).unwrap();
        assert_eq!(
            row,
            format!(
                "{:>20} -> {:<20} : 2        |{}|",
                0,
                (1u64 << 40) - 1,
                "*".repeat(20)
            )
        );
    }

    #[test]
    fn event_is_one_line_with_exact_seconds() {
        let event = Event::new("execsnoop", 12_345_678_901)
            .with("pid", FieldValue::UInt(4243))
            .with("ret", FieldValue::Int(-2))
            .with(
                "args",
                FieldValue::StrList(vec!["/bin/true".into(), "x".into()]),
            );
        assert_eq!(
            format_record(&event.into()),
            "12.345678 pid=4243 ret=-2 args=/bin/true x\n"
        );
    }

    #[test]
    fn stacks_fold_frames_or_addresses() {
        let mut stack = StackSample {
            probe: "profile".into(),
            pid: 1,
            tid: 1,
            comm: "burn".into(),
            kernel_ips: vec![0xffff_0001, 0xffff_0000],
            user_ips: vec![0x20, 0x10],
            frames: Vec::new(),
            weight: 97,
            ts_ns: 0,
        };
        assert_eq!(
            format_record(&stack.clone().into()),
            "0x10;0x20;0xffff0000;0xffff0001 97\n"
        );
        stack.frames = vec!["_start".into(), "main".into(), "hot_spin".into()];
        assert_eq!(format_record(&stack.into()), "_start;main;hot_spin 97\n");
    }

    #[test]
    fn sink_holds_metrics_until_flush() {
        let mut sink = TextSink::new(Vec::new());
        sink.write(&Metric::counter("p", "c", labels! {}, 3).into())
            .unwrap();
        sink.write(&Event::new("p", 1_000).into()).unwrap();
        assert_eq!(sink.out, b"0.000001\n");
        sink.flush().unwrap();
        let text = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(text, "0.000001\np c\n  VALUE\n      3\n\n");
    }
}
