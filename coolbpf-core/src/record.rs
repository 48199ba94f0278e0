//! The one data model everything emits: [`Metric`], [`Event`] and [`StackSample`],
//! wrapped in [`Record`].
//!
//! Sinks, exporters and the C and Python bindings work on these types, never on a probe's
//! private structs. The JSON form (one record per line) is the `coolbpf --json` contract:
//!
//! ```json
//! {"probe":"syscount","kind":"counter","name":"syscalls_total","labels":{"pid":42,"comm":"sh","syscall":"read"},"value":10}
//! {"probe":"runqlat","kind":"histogram","name":"runq_latency","labels":{},"unit":"us","buckets":[{"le":1,"count":12}],"count":12,"sum":9}
//! {"probe":"execsnoop","kind":"event","ts_ns":123,"pid":7,"comm":"true","args":["/bin/true"]}
//! {"probe":"profile","kind":"stacks","pid":42,"comm":"burn","frames":["main","spin"],"count":97}
//! ```

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::histogram::Histogram;

/// A label value: a string or an integer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum LabelValue {
    /// An integer label (pid, cpu, irq...).
    Int(i64),
    /// A string label (comm, syscall name...).
    Str(String),
}

impl From<&str> for LabelValue {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}
impl From<String> for LabelValue {
    fn from(value: String) -> Self {
        Self::Str(value)
    }
}
impl From<i64> for LabelValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}
impl From<u32> for LabelValue {
    fn from(value: u32) -> Self {
        Self::Int(i64::from(value))
    }
}
impl From<i32> for LabelValue {
    fn from(value: i32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl std::fmt::Display for LabelValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Str(v) => f.write_str(v),
        }
    }
}

/// Metric labels, ordered by name so output is stable.
pub type Labels = BTreeMap<String, LabelValue>;

/// What a metric measures.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// Monotonic, cumulative since the probe started (Prometheus semantics).
    Counter(u64),
    /// A value that goes up and down.
    Gauge(f64),
    /// A distribution.
    Histogram(Histogram),
}

impl MetricValue {
    /// The JSON `kind` of this value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Counter(_) => "counter",
            Self::Gauge(_) => "gauge",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// A named, labelled measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The probe (or `core`) that produced it.
    pub probe: String,
    /// The metric's name, e.g. `syscalls_total`.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Its value.
    pub value: MetricValue,
}

impl Metric {
    /// A counter.
    pub fn counter(probe: &str, name: &str, labels: Labels, value: u64) -> Self {
        Self {
            probe: probe.into(),
            name: name.into(),
            labels,
            value: MetricValue::Counter(value),
        }
    }

    /// A gauge.
    pub fn gauge(probe: &str, name: &str, labels: Labels, value: f64) -> Self {
        Self {
            probe: probe.into(),
            name: name.into(),
            labels,
            value: MetricValue::Gauge(value),
        }
    }

    /// A histogram.
    pub fn histogram(probe: &str, name: &str, labels: Labels, value: Histogram) -> Self {
        Self {
            probe: probe.into(),
            name: name.into(),
            labels,
            value: MetricValue::Histogram(value),
        }
    }

    /// The value of label `name`, if set.
    pub fn label(&self, name: &str) -> Option<&LabelValue> {
        self.labels.get(name)
    }
}

/// A field value of an [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Floating point.
    Float(f64),
    /// Text.
    Str(String),
    /// A list of strings (e.g. argv).
    StrList(Vec<String>),
}

impl FieldValue {
    /// The value as an unsigned integer, when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::UInt(v) => Some(v),
            Self::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text, when it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// One thing that happened, with named fields in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The probe that saw it.
    pub probe: String,
    /// Kernel monotonic time (`bpf_ktime_get_ns`) when it happened.
    pub ts_ns: u64,
    /// Its fields, in the order the probe defines.
    pub fields: Vec<(String, FieldValue)>,
}

impl Event {
    /// An event with no fields yet.
    pub fn new(probe: &str, ts_ns: u64) -> Self {
        Self {
            probe: probe.into(),
            ts_ns,
            fields: Vec::new(),
        }
    }

    /// Appends a field (builder style).
    #[must_use]
    pub fn with(mut self, name: &str, value: FieldValue) -> Self {
        self.fields.push((name.into(), value));
        self
    }

    /// The value of field `name`.
    pub fn field(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// An aggregated stack: how often (or how long) a task was seen in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSample {
    /// The probe that sampled it.
    pub probe: String,
    /// Userspace pid (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name.
    pub comm: String,
    /// Kernel instruction pointers, innermost first.
    pub kernel_ips: Vec<u64>,
    /// User instruction pointers, innermost first.
    pub user_ips: Vec<u64>,
    /// Symbolized frames, root first (kernel frames after user frames), once symbolized.
    pub frames: Vec<String>,
    /// Sample count, or time in the probe's unit.
    pub weight: u64,
    /// When it was (last) seen, kernel monotonic ns.
    pub ts_ns: u64,
}

/// Anything a probe emits.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A metric.
    Metric(Metric),
    /// An event.
    Event(Event),
    /// A stack sample.
    Stack(StackSample),
}

impl Record {
    /// The name of the probe that produced it.
    pub fn probe(&self) -> &str {
        match self {
            Self::Metric(m) => &m.probe,
            Self::Event(e) => &e.probe,
            Self::Stack(s) => &s.probe,
        }
    }

    /// The record as one JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("records always serialize")
    }
}

impl From<Metric> for Record {
    fn from(value: Metric) -> Self {
        Self::Metric(value)
    }
}
impl From<Event> for Record {
    fn from(value: Event) -> Self {
        Self::Event(value)
    }
}
impl From<StackSample> for Record {
    fn from(value: StackSample) -> Self {
        Self::Stack(value)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("probe", self.probe())?;
        match self {
            Self::Metric(metric) => {
                map.serialize_entry("kind", metric.value.kind())?;
                map.serialize_entry("name", &metric.name)?;
                map.serialize_entry("labels", &metric.labels)?;
                match &metric.value {
                    MetricValue::Counter(v) => map.serialize_entry("value", v)?,
                    MetricValue::Gauge(v) => map.serialize_entry("value", v)?,
                    MetricValue::Histogram(h) => {
                        map.serialize_entry("unit", &h.unit)?;
                        map.serialize_entry("buckets", &h.buckets)?;
                        map.serialize_entry("count", &h.count)?;
                        map.serialize_entry("sum", &h.sum)?;
                    }
                }
            }
            Self::Event(event) => {
                map.serialize_entry("kind", "event")?;
                map.serialize_entry("ts_ns", &event.ts_ns)?;
                for (name, value) in &event.fields {
                    map.serialize_entry(name, value)?;
                }
            }
            Self::Stack(stack) => {
                map.serialize_entry("kind", "stacks")?;
                map.serialize_entry("pid", &stack.pid)?;
                map.serialize_entry("tid", &stack.tid)?;
                map.serialize_entry("comm", &stack.comm)?;
                if stack.frames.is_empty() {
                    let hex =
                        |ips: &[u64]| ips.iter().map(|ip| format!("{ip:#x}")).collect::<Vec<_>>();
                    map.serialize_entry("kernel_ips", &hex(&stack.kernel_ips))?;
                    map.serialize_entry("user_ips", &hex(&stack.user_ips))?;
                } else {
                    map.serialize_entry("frames", &stack.frames)?;
                }
                map.serialize_entry("count", &stack.weight)?;
            }
        }
        map.end()
    }
}

/// Builds [`Labels`] from `name => value` pairs.
///
/// ```
/// let labels = coolbpf_core::labels! { "pid" => 42, "comm" => "sh" };
/// assert_eq!(labels.len(), 2);
/// ```
#[macro_export]
macro_rules! labels {
    () => { $crate::record::Labels::new() };
    ($($name:expr => $value:expr),+ $(,)?) => {{
        let mut labels = $crate::record::Labels::new();
        $( labels.insert(::std::string::String::from($name), $crate::record::LabelValue::from($value)); )+
        labels
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::{Histogram, Layout};

    #[test]
    fn counter_json_matches_contract() {
        let m = Metric::counter(
            "syscount",
            "syscalls_total",
            labels! { "pid" => 4242, "comm" => "python3", "syscall" => "getppid" },
            1000,
        );
        assert_eq!(
            Record::from(m).to_json(),
            r#"{"probe":"syscount","kind":"counter","name":"syscalls_total","labels":{"comm":"python3","pid":4242,"syscall":"getppid"},"value":1000}"#
        );
    }

    #[test]
    fn histogram_json_matches_contract() {
        let h = Histogram::from_slots(Layout::Log2, &[0, 12, 40], 83, "us");
        let json =
            Record::from(Metric::histogram("runqlat", "runq_latency", labels! {}, h)).to_json();
        assert_eq!(
            json,
            r#"{"probe":"runqlat","kind":"histogram","name":"runq_latency","labels":{},"unit":"us","buckets":[{"le":1,"count":12},{"le":3,"count":40}],"count":52,"sum":83}"#
        );
    }

    #[test]
    fn event_json_flattens_fields() {
        let e = Event::new("execsnoop", 5)
            .with("pid", FieldValue::UInt(7))
            .with(
                "args",
                FieldValue::StrList(vec!["/bin/true".into(), "x".into()]),
            );
        assert_eq!(
            Record::from(e).to_json(),
            r#"{"probe":"execsnoop","kind":"event","ts_ns":5,"pid":7,"args":["/bin/true","x"]}"#
        );
    }
}
