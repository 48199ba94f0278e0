//! Rust values (through serde) as Python objects, and Python arguments as Rust values.

use std::time::Duration;

use coolbpf_core::{MetricValue, Record};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;

use crate::errors;

/// A JSON value as the equivalent Python object (dict, list, int, float, str, None).
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Any serializable value as a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| errors::core(&coolbpf_core::Error::Decode(e.to_string())))?;
    json_to_py(py, &json)
}

/// Percentiles given for every histogram record.
const PERCENTILES: &[(&str, f64)] = &[
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
];

/// A record as a dict: its JSON form (the `coolbpf --json` contract), plus `percentiles`
/// and `mean` for histograms.
pub(crate) fn record_to_py<'py>(py: Python<'py>, record: &Record) -> PyResult<Bound<'py, PyAny>> {
    let value = to_py(py, record)?;
    if let Record::Metric(metric) = record {
        if let MetricValue::Histogram(histogram) = &metric.value {
            let dict = value.cast::<PyDict>()?;
            let percentiles = PyDict::new(py);
            for (name, q) in PERCENTILES {
                percentiles.set_item(name, histogram.percentile(*q))?;
            }
            dict.set_item("percentiles", percentiles)?;
            dict.set_item("mean", histogram.mean())?;
        }
    }
    Ok(value)
}

/// Records as a list of dicts.
pub(crate) fn records_to_py<'py>(
    py: Python<'py>,
    records: &[Record],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for record in records {
        list.append(record_to_py(py, record)?)?;
    }
    Ok(list)
}

/// Seconds from Python as a duration; `None` stays `None` (wait forever).
pub(crate) fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                errors::invalid(format!(
                    "{what}={s}: expected a finite, non-negative number of seconds"
                ))
            })
        })
        .transpose()
}
