//! Records: the data model (`Metric`, `Event`, `StackSample`) read from C.

#![allow(non_camel_case_types)]

use std::cell::OnceCell;
use std::ffi::{c_char, CString};
use std::ptr;

use coolbpf_core::{LabelValue, MetricValue, Record};

use crate::error::{guard, status, CError, CResult, COOLBPF_ERR_INVALID_ARGUMENT};
use crate::handle::{self, c_string, handle, write_out};

/// `coolbpf_record_kind()`: not a record (NULL or invalid handle).
pub const COOLBPF_RECORD_INVALID: i32 = 0;
/// A counter metric (cumulative since the probe started).
pub const COOLBPF_RECORD_COUNTER: i32 = 1;
/// A gauge metric.
pub const COOLBPF_RECORD_GAUGE: i32 = 2;
/// A histogram metric.
pub const COOLBPF_RECORD_HISTOGRAM: i32 = 3;
/// An event (named fields; read them from `coolbpf_record_json()`).
pub const COOLBPF_RECORD_EVENT: i32 = 4;
/// An aggregated stack sample.
pub const COOLBPF_RECORD_STACKS: i32 = 5;

/// One record. Borrowed inside a poll callback (valid until the callback returns), or
/// owned when it came from `coolbpf_probe_next()` / `coolbpf_record_clone()` (free it with
/// `coolbpf_record_free()`). Strings it returns live as long as the record.
pub struct coolbpf_record {
    magic: u64,
    /// Whether C owns it (false while it is lent to a poll callback).
    owned: bool,
    record: Record,
    probe: CString,
    name: Option<CString>,
    unit: Option<CString>,
    labels: OnceCell<Vec<(CString, LabelText)>>,
    json: OnceCell<CString>,
}
handle!(coolbpf_record, "record", 0x636f_6f6c_7265_6331);

enum LabelText {
    Int(i64),
    Str(CString),
}

/// One label of a metric record: a string value, or an integer one (`string_value` is
/// then NULL). The strings belong to the record.
#[repr(C)]
pub struct coolbpf_label {
    /// The label's name.
    pub key: *const c_char,
    /// The value when it is text, NULL when it is an integer.
    pub string_value: *const c_char,
    /// The value when it is an integer (0 when it is text).
    pub int_value: i64,
}

/// A histogram's totals. `unit` belongs to the record.
#[repr(C)]
pub struct coolbpf_histogram {
    /// Values recorded.
    pub count: u64,
    /// Sum of the values recorded.
    pub sum: u64,
    /// Non-empty buckets (read them with `coolbpf_record_bucket()`).
    pub bucket_count: usize,
    /// The values' unit ("us", "ns", ...).
    pub unit: *const c_char,
}

impl coolbpf_record {
    pub(crate) fn new(record: Record) -> Self {
        let (name, unit) = match &record {
            Record::Metric(metric) => (
                Some(c_string(&metric.name)),
                match &metric.value {
                    MetricValue::Histogram(h) => Some(c_string(&h.unit)),
                    _ => None,
                },
            ),
            _ => (None, None),
        };
        Self {
            magic: <Self as handle::Handle>::MAGIC,
            owned: true,
            probe: c_string(record.probe()),
            record,
            name,
            unit,
            labels: OnceCell::new(),
            json: OnceCell::new(),
        }
    }

    /// A record lent to a callback: `coolbpf_record_free()` refuses it.
    pub(crate) fn lent(record: Record) -> Self {
        Self {
            owned: false,
            ..Self::new(record)
        }
    }

    /// The wrapped record.
    pub fn record(&self) -> &Record {
        &self.record
    }

    fn labels(&self) -> &[(CString, LabelText)] {
        self.labels.get_or_init(|| match &self.record {
            Record::Metric(metric) => metric
                .labels
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        LabelValue::Int(v) => LabelText::Int(*v),
                        LabelValue::Str(s) => LabelText::Str(c_string(s)),
                    };
                    (c_string(key), value)
                })
                .collect(),
            _ => Vec::new(),
        })
    }
}

fn kind_of(record: &Record) -> i32 {
    match record {
        Record::Metric(metric) => match metric.value {
            MetricValue::Counter(_) => COOLBPF_RECORD_COUNTER,
            MetricValue::Gauge(_) => COOLBPF_RECORD_GAUGE,
            MetricValue::Histogram(_) => COOLBPF_RECORD_HISTOGRAM,
        },
        Record::Event(_) => COOLBPF_RECORD_EVENT,
        Record::Stack(_) => COOLBPF_RECORD_STACKS,
    }
}

/// Borrows a record argument.
///
/// # Safety
///
/// `record` is NULL or a live record handle.
unsafe fn arg<'a>(record: *const coolbpf_record) -> CResult<&'a coolbpf_record> {
    // SAFETY: forwarded to the caller.
    unsafe { handle::borrow(record) }
}

fn histogram_of(record: &coolbpf_record) -> CResult<&coolbpf_core::Histogram> {
    match &record.record {
        Record::Metric(metric) => match &metric.value {
            MetricValue::Histogram(h) => Ok(h),
            _ => Err(not_a(record, "histogram")),
        },
        _ => Err(not_a(record, "histogram")),
    }
}

fn not_a(record: &coolbpf_record, wanted: &str) -> CError {
    CError::invalid(format!(
        "the record is a {}, not a {wanted}",
        match &record.record {
            Record::Metric(metric) => metric.value.kind(),
            Record::Event(_) => "event",
            Record::Stack(_) => "stacks record",
        }
    ))
}

/// The record's kind (`COOLBPF_RECORD_COUNTER`, ...), or `COOLBPF_RECORD_INVALID` when
/// `record` is NULL or not a record.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_kind(record: *const coolbpf_record) -> i32 {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { arg(record) }.map(|r| kind_of(&r.record))).unwrap_or(COOLBPF_RECORD_INVALID)
}

/// The name of the probe that produced the record (`"core"` for loss counters), or NULL
/// when `record` is invalid.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_probe(record: *const coolbpf_record) -> *const c_char {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { arg(record) }.map(|r| r.probe.as_ptr())).unwrap_or(ptr::null())
}

/// The metric's name (e.g. `"syscalls_total"`), or NULL for events, stacks and invalid
/// handles.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_name(record: *const coolbpf_record) -> *const c_char {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        Ok(r.name.as_ref().map_or(ptr::null(), |n| n.as_ptr()))
    })
    .unwrap_or(ptr::null())
}

/// The record as one JSON line (no newline): the `coolbpf --json` format. Never NULL
/// for a valid record; NULL when `record` is invalid.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_json(record: *const coolbpf_record) -> *const c_char {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        Ok(r.json
            .get_or_init(|| c_string(&r.record.to_json()))
            .as_ptr())
    })
    .unwrap_or(ptr::null())
}

/// Number of labels of a metric record (0 for other kinds and invalid handles).
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_label_count(record: *const coolbpf_record) -> usize {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { arg(record) }.map(|r| r.labels().len())).unwrap_or(0)
}

/// Label `index` (in name order) of a metric record, written to `*out`.
///
/// Returns 0, or `-COOLBPF_ERR_INVALID_ARGUMENT` (NULL arguments, index out of range).
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_label(
    record: *const coolbpf_record,
    index: usize,
    out: *mut coolbpf_label,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let labels = r.labels();
        let (key, value) = labels.get(index).ok_or_else(|| {
            CError::invalid(format!(
                "label index {index} is out of range (the record has {})",
                labels.len()
            ))
        })?;
        let label = match value {
            LabelText::Int(v) => coolbpf_label {
                key: key.as_ptr(),
                string_value: ptr::null(),
                int_value: *v,
            },
            LabelText::Str(s) => coolbpf_label {
                key: key.as_ptr(),
                string_value: s.as_ptr(),
                int_value: 0,
            },
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", label) }
    })
}

/// The value of a counter record (for a stacks record: its sample count or weight).
///
/// Returns 0, or `-COOLBPF_ERR_INVALID_ARGUMENT` when the record is of another kind.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_counter(
    record: *const coolbpf_record,
    out: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let value = match &r.record {
            Record::Metric(metric) => match metric.value {
                MetricValue::Counter(v) => v,
                _ => return Err(not_a(r, "counter")),
            },
            Record::Stack(stack) => stack.weight,
            Record::Event(_) => return Err(not_a(r, "counter")),
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// The value of a gauge record; a counter's value is converted too.
///
/// Returns 0, or `-COOLBPF_ERR_INVALID_ARGUMENT` when the record is of another kind.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_gauge(record: *const coolbpf_record, out: *mut f64) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let value = match &r.record {
            Record::Metric(metric) => match metric.value {
                MetricValue::Gauge(v) => v,
                MetricValue::Counter(v) => v as f64,
                MetricValue::Histogram(_) => return Err(not_a(r, "gauge")),
            },
            _ => return Err(not_a(r, "gauge")),
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// A histogram record's count, sum, number of buckets and unit.
///
/// Returns 0, or `-COOLBPF_ERR_INVALID_ARGUMENT` when the record is not a histogram.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_histogram(
    record: *const coolbpf_record,
    out: *mut coolbpf_histogram,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let h = histogram_of(r)?;
        let value = coolbpf_histogram {
            count: h.count,
            sum: h.sum,
            bucket_count: h.buckets.len(),
            unit: r.unit.as_ref().map_or(ptr::null(), |u| u.as_ptr()),
        };
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// Bucket `index` of a histogram record: values `<= *le` (and above the previous
/// bucket's `le`) were seen `*count` times. The last bucket's `le` may be `UINT64_MAX`.
///
/// Returns 0, or `-COOLBPF_ERR_INVALID_ARGUMENT` (not a histogram, index out of range,
/// NULL pointers).
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `le` and `count` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_bucket(
    record: *const coolbpf_record,
    index: usize,
    le: *mut u64,
    count: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let h = histogram_of(r)?;
        let bucket = h.buckets.get(index).ok_or_else(|| {
            CError::invalid(format!(
                "bucket index {index} is out of range (the histogram has {})",
                h.buckets.len()
            ))
        })?;
        handle::check_out(count, "count")?;
        // SAFETY: forwarded to the caller.
        unsafe { write_out(le, "le", bucket.le) }?;
        // SAFETY: forwarded to the caller.
        unsafe { write_out(count, "count", bucket.count) }
    })
}

/// The `q`-quantile (0.0 to 1.0) of a histogram record, as the upper bound of the
/// bucket that holds it (exact to the bucket's width): 0.5 for the median, 0.99 for p99.
///
/// Returns 0; `-COOLBPF_ERR_INVALID_ARGUMENT` when the record is not a histogram or `q`
/// is outside 0..1; `-COOLBPF_ERR_NOT_FOUND` when the histogram is empty.
///
/// Thread-safety: a record may be read from one thread at a time.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_percentile(
    record: *const coolbpf_record,
    q: f64,
    out: *mut u64,
) -> i32 {
    status(|| {
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        let h = histogram_of(r)?;
        if !(0.0..=1.0).contains(&q) {
            return Err(CError {
                code: COOLBPF_ERR_INVALID_ARGUMENT,
                message: format!("invalid argument: percentile {q} is outside 0.0..=1.0"),
            });
        }
        let value = h
            .percentile(q)
            .ok_or_else(|| CError::not_found("the histogram is empty: it has no percentiles"))?;
        // SAFETY: forwarded to the caller.
        unsafe { write_out(out, "out", value) }
    })
}

/// Copies a record (for example to keep one past its poll callback) into `*out`; free
/// the copy with `coolbpf_record_free()`.
///
/// Thread-safety: a record may be read from one thread at a time; the copy is
/// independent.
///
/// # Safety
///
/// `record` is NULL or a live record; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_clone(
    record: *const coolbpf_record,
    out: *mut *mut coolbpf_record,
) -> i32 {
    status(|| {
        handle::check_out(out, "out")?;
        // SAFETY: forwarded to the caller.
        let r = unsafe { arg(record) }?;
        // SAFETY: `out` is writable by the caller's promise.
        unsafe { handle::hand_out(out, coolbpf_record::new(r.record.clone())) }
    })
}

/// Frees a record from `coolbpf_probe_next()` or `coolbpf_record_clone()`. NULL is
/// ignored. Never free a record borrowed in a poll callback.
///
/// Thread-safety: a record may be freed on any thread, once, when no one reads it.
///
/// # Safety
///
/// `record` is NULL or an owned record not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn coolbpf_record_free(record: *mut coolbpf_record) {
    let _ = guard(|| {
        // SAFETY: forwarded to the caller.
        if !unsafe { arg(record) }.is_ok_and(|r| r.owned) && !record.is_null() {
            return Err(CError::invalid(
                "coolbpf_record_free: the record is lent to a callback (or not a record)",
            ));
        }
        // SAFETY: forwarded to the caller.
        unsafe { handle::free(record) }.map(drop)
    });
}
