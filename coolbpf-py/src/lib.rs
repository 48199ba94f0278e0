//! `coolbpf._native`: the Rust half of coolbpf's Python module.
//!
//! Python users import `coolbpf`, a small pure-Python package (docstrings, keyword
//! handling, the exception classes) over the classes defined here:
//!
//! - [`features`] and [`probes`]: what this kernel can do, and the probe catalogue;
//! - [`probe::PyProbeSession`]: any registry probe by name, its records as dicts;
//! - [`object::PyObject`], [`object::PyMap`], [`ringbuf::PyRingBuffer`]: a user's own BPF
//!   object (from a `.bpf.o` file, bytes, or C source compiled by [`compile`]);
//! - [`profiler::PyProfiler`] and [`profiler::PyProfile`]: on- and off-CPU profiles;
//! - [`symbolizer::PySymbolizer`]: addresses to functions, files and lines.
//!
//! Every call that waits releases the GIL, and waits in short slices so that Ctrl-C
//! (`KeyboardInterrupt`) ends it. Errors become the exceptions of `coolbpf.errors`,
//! chosen by [`coolbpf_core::ErrorKind`].
//!
//! The crate is built with maturin (`pyproject.toml` enables pyo3's `extension-module`
//! feature); cargo builds and checks it like any other workspace member.

// pyo3 extracts Python arguments into owned values (a `Vec`, a `PathBuf`, a `Bound`):
// taking them by value is how #[pyfunction]/#[pymethods] receive them.
#![allow(clippy::needless_pass_by_value)]

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pub mod compile;
mod convert;
mod errors;
pub mod object;
pub mod probe;
pub mod profiler;
pub mod ringbuf;
pub mod symbolizer;

use errors::IntoPy;

/// The longest a blocking call waits before it checks for Ctrl-C.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Waits up to `timeout` (`None`: forever) for `step` to return `Some`, calling it with
/// slices of at most [`SLICE`] while the GIL is released, and checking for signals
/// between slices. Returns `None` when the time is up.
pub(crate) fn wait_sliced<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut step: impl FnMut(Duration) -> PyResult<Option<T>> + Send,
) -> PyResult<Option<T>> {
    // A timeout too large for `Instant` is the same as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(SLICE),
            None => SLICE,
        };
        if let Some(value) = py.detach(|| step(slice))? {
            return Ok(Some(value));
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// The kernel's BPF capabilities, as detected (a dict: feature -> {available, reason}).
#[pyfunction]
pub fn features(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let detected = py.detach(|| {
        coolbpf_core::Environment::prepare()?;
        coolbpf_core::Features::detect()
    });
    convert::to_py(py, detected.py_err()?)
}

/// The probe catalogue: one dict per probe with its name, category, description, hooks,
/// options, and whether it is available on this kernel (and why not).
#[pyfunction]
pub fn probes(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let features = py.detach(|| {
        coolbpf_core::Environment::prepare()?;
        coolbpf_core::Features::detect()
    });
    let list = PyList::empty(py);
    for probe in coolbpf_gpu::CATALOGUE.probes() {
        let dict = PyDict::new(py);
        dict.set_item("name", probe.name)?;
        dict.set_item("category", convert::to_py(py, &probe.category)?)?;
        dict.set_item("description", probe.description)?;
        dict.set_item("hooks", probe.hooks.to_vec())?;
        let options = PyList::empty(py);
        for spec in probe.options {
            let option = PyDict::new(py);
            option.set_item("name", spec.name)?;
            option.set_item("help", spec.help)?;
            option.set_item("default", spec.default)?;
            options.append(option)?;
        }
        dict.set_item("options", options)?;
        match &features {
            Ok(features) => {
                let availability = probe.availability(features);
                dict.set_item("available", availability.available)?;
                dict.set_item("reason", availability.reason)?;
            }
            Err(err) => {
                dict.set_item("available", py.None())?;
                dict.set_item("reason", format!("cannot detect kernel features: {err}"))?;
            }
        }
        list.append(dict)?;
    }
    Ok(list)
}

/// The Rust half of the `coolbpf` Python package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(features, m)?)?;
    m.add_function(wrap_pyfunction!(probes, m)?)?;
    m.add_function(wrap_pyfunction!(compile::compile_source, m)?)?;
    m.add_function(wrap_pyfunction!(compile::cache_dir, m)?)?;
    m.add_class::<probe::PyProbeSession>()?;
    m.add_class::<object::PyObject>()?;
    m.add_class::<object::PyMap>()?;
    m.add_class::<ringbuf::PyRingBuffer>()?;
    m.add_class::<profiler::PyProfiler>()?;
    m.add_class::<profiler::PyProfile>()?;
    m.add_class::<symbolizer::PySymbolizer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
