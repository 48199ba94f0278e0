//! `coolbpf.Probe`'s native half: any registry probe through [`ProbeSession`].

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::{Error, Record};
use coolbpf_probes::{ProbeOptions, ProbeSession};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert::{records_to_py, seconds};
use crate::errors::{self, IntoPy};
use crate::wait_sliced;

/// One registry probe, by name; records are polled as dicts (the JSON data model).
#[pyclass(module = "coolbpf._native", name = "ProbeSession")]
pub struct PyProbeSession {
    name: String,
    // Locked only with the GIL released (inside `detach`) or for calls that never wait
    // on Python, so a thread holding the GIL never waits for a thread that needs it.
    session: Mutex<Option<ProbeSession>>,
}

impl PyProbeSession {
    fn with<T>(&self, f: impl FnOnce(&mut ProbeSession) -> Result<T, Error>) -> PyResult<T> {
        let mut guard = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = guard
            .as_mut()
            .ok_or_else(|| errors::core(&Error::Closed("probe")))?;
        f(session).py_err()
    }
}

#[pymethods]
impl PyProbeSession {
    /// Creates probe `name` (nothing is loaded until `start`). `options` are the probe's
    /// `KEY=VALUE` options as `(key, value)` string pairs.
    #[new]
    #[pyo3(signature = (name, pid=None, options=Vec::new(), interval=1.0, capacity=coolbpf_probes::session::DEFAULT_QUEUE_CAPACITY))]
    fn new(
        name: &str,
        pid: Option<u32>,
        options: Vec<(String, String)>,
        interval: f64,
        capacity: usize,
    ) -> PyResult<Self> {
        let interval = seconds(Some(interval), "interval")?.unwrap_or_default();
        let mut probe_options = ProbeOptions::new();
        probe_options.pid = pid;
        for (key, value) in &options {
            probe_options = probe_options.with(key, value);
        }
        let session = ProbeSession::with_capacity(
            coolbpf_gpu::CATALOGUE.find(name).py_err()?,
            &probe_options,
            interval,
            capacity,
        )
        .py_err()?;
        Ok(Self {
            name: session.probe().name.to_owned(),
            session: Mutex::new(Some(session)),
        })
    }

    /// The probe's registry name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Loads and attaches the probe (prepares the host first).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.with(ProbeSession::start))
    }

    /// Stops the probe (one last collect); queued records stay readable.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.with(ProbeSession::stop))
    }

    /// Whether the probe runs.
    #[getter]
    fn running(&self) -> PyResult<bool> {
        self.with(|s| Ok(s.is_running()))
    }

    /// Records lost on their way to the caller (the queue was full).
    #[getter]
    fn dropped(&self) -> PyResult<u64> {
        self.with(|s| Ok(s.records_dropped()))
    }

    /// Records queued and not yet polled.
    #[getter]
    fn queued(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.queued()))
    }

    /// Waits up to `timeout` seconds (`None`: until one arrives) for a record, then returns
    /// it and the others queued (at most `max`), as dicts. An empty list: none arrived.
    #[pyo3(signature = (timeout=None, max=usize::MAX))]
    fn poll<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
        max: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let timeout = seconds(timeout, "timeout")?;
        let records = wait_sliced(py, timeout, |slice| {
            let mut out = Vec::new();
            self.with(|s| s.poll_into(slice, max, &mut out))?;
            Ok((!out.is_empty()).then_some(out))
        })?
        .unwrap_or_default();
        records_to_py(py, &records)
    }

    /// Starts the probe if needed, runs it for `duration` seconds, stops it, and returns
    /// every record it emitted (and any still queued from before).
    fn run<'py>(&self, py: Python<'py>, duration: f64) -> PyResult<Bound<'py, PyList>> {
        let duration = seconds(Some(duration), "duration")?.unwrap_or_default();
        if !self.running()? {
            self.start(py)?;
        }
        let mut records: Vec<Record> = Vec::new();
        let outcome = wait_sliced(py, Some(duration), |slice| {
            let mut batch = Vec::new();
            self.with(|s| s.poll_into(slice, usize::MAX, &mut batch))?;
            records.append(&mut batch);
            Ok(None::<()>)
        });
        // Stopped even when interrupted, so that Ctrl-C leaves nothing attached.
        self.stop(py)?;
        outcome?;
        py.detach(|| self.with(|s| s.poll_into(Duration::ZERO, usize::MAX, &mut records)))?;
        records_to_py(py, &records)
    }

    /// Stops the probe and releases everything it holds; queued records are lost.
    fn close(&self, py: Python<'_>) {
        let taken = py.detach(|| {
            self.session
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        });
        py.detach(move || drop(taken));
    }

    fn __repr__(&self) -> String {
        format!("<coolbpf.Probe {:?}>", self.name)
    }
}
