//! `coolbpf.Profiler`: on-CPU stacks or off-CPU time, one [`ProfileSession`] either way,
//! symbolized while the processes still run, and the finished [`PyProfile`] with its
//! exports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use coolbpf_core::{Environment, Error, Record, StackSample};
use coolbpf_probes::offcpu::OffCpuConfig;
use coolbpf_probes::profile::{ProfileConfig, ProfileKind, ProfileSession};
use coolbpf_symbolize::profile::{FlameGraphOptions, PprofOptions};
use coolbpf_symbolize::SymbolizedProfile;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::to_py;
use crate::errors::{self, IntoPy};

/// How often the background thread symbolizes new user addresses.
const TICK: Duration = Duration::from_secs(1);

struct Running {
    session: Arc<Mutex<Option<ProfileSession>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), Error>>,
    started: Instant,
    wall: SystemTime,
}

/// A profiler: `start`, `stop`, then `profile()`.
#[pyclass(module = "coolbpf._native", name = "Profiler")]
pub struct PyProfiler {
    freq: u64,
    pid: Option<u32>,
    off_cpu: bool,
    debug_info: bool,
    running: Mutex<Option<Running>>,
    result: Mutex<Option<Py<PyProfile>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PyProfiler {
    fn open(&self) -> Result<ProfileSession, Error> {
        if let Some(pid) = self.pid {
            Environment::require_process(pid)?;
        }
        Environment::prepare()?;
        let kind = if self.off_cpu {
            ProfileKind::OffCpu(OffCpuConfig {
                pid: self.pid,
                debug_info: self.debug_info,
                ..OffCpuConfig::default()
            })
        } else {
            let config = ProfileConfig {
                frequency: self.freq,
                pid: self.pid,
                debug_info: self.debug_info,
                interval: None,
                ..ProfileConfig::default()
            };
            config.validate()?;
            ProfileKind::OnCpu(config)
        };
        ProfileSession::start(kind)
    }

    fn finish(&self, running: Running) -> Result<PyProfile, Error> {
        running.stop.store(true, Ordering::Relaxed);
        let ticked = running.thread.join().map_err(|_| Error::Plugin {
            plugin: "profiler".into(),
            reason: "the profiler's thread panicked".into(),
        })?;
        let elapsed = running.started.elapsed();
        let session = lock(&running.session)
            .take()
            .ok_or(Error::Closed("profiler"))?;
        let result = session.finish()?;
        ticked?;
        let scope = self
            .pid
            .map_or_else(|| "all CPUs".to_owned(), |pid| format!("pid {pid}"));
        Ok(PyProfile {
            samples: result.samples,
            losses: serde_json::to_value(result.losses).unwrap_or_default(),
            records: result.stack_records(),
            pprof: result.pprof(running.wall, elapsed),
            flamegraph: result.flame_graph(&scope, elapsed),
            profile: result.profile,
        })
    }
}

#[pymethods]
impl PyProfiler {
    /// A profiler sampling at `freq` Hz (per CPU, or per thread with `pid`), or measuring
    /// off-CPU time by stack with `off_cpu=True`.
    #[new]
    #[pyo3(signature = (freq=99, pid=None, off_cpu=false, debug_info=true))]
    fn new(freq: u64, pid: Option<u32>, off_cpu: bool, debug_info: bool) -> PyResult<Self> {
        if off_cpu && freq != 99 {
            return Err(errors::invalid(
                "freq sets the on-CPU sampling rate; off_cpu measures every switch",
            ));
        }
        if !off_cpu {
            ProfileConfig {
                frequency: freq,
                ..ProfileConfig::default()
            }
            .validate()
            .py_err()?;
        }
        Ok(Self {
            freq,
            pid,
            off_cpu,
            debug_info,
            running: Mutex::new(None),
            result: Mutex::new(None),
        })
    }

    /// Whether the profiler runs.
    #[getter]
    fn running(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Loads and attaches the profiler; a background thread symbolizes as it goes.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        if self.running() {
            return Ok(());
        }
        let session = py.detach(|| self.open()).py_err()?;
        let session = Arc::new(Mutex::new(Some(session)));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_session, thread_stop) = (Arc::clone(&session), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("coolbpf-py-profile".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    if last.elapsed() >= TICK {
                        last = Instant::now();
                        if let Some(session) = lock(&thread_session).as_mut() {
                            session.tick()?;
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e| errors::core(&Error::io("cannot start the profiler's thread", e)))?;
        *lock(&self.running) = Some(Running {
            session,
            stop,
            thread,
            started: Instant::now(),
            wall: SystemTime::now(),
        });
        Ok(())
    }

    /// Stops the profiler and builds the profile (see `profile`).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let Some(running) = lock(&self.running).take() else {
            return Ok(());
        };
        let profile = py.detach(|| self.finish(running)).py_err()?;
        *lock(&self.result) = Some(Py::new(py, profile)?);
        Ok(())
    }

    /// The profile of the last run (stopping the profiler first if it runs).
    fn profile(&self, py: Python<'_>) -> PyResult<Py<PyProfile>> {
        self.stop(py)?;
        lock(&self.result)
            .as_ref()
            .map(|p| p.clone_ref(py))
            .ok_or_else(|| errors::invalid("the profiler has not run: call start() first"))
    }
}

/// A finished profile: folded stacks, top functions, pprof and flame graph exports.
#[pyclass(module = "coolbpf._native", name = "Profile")]
pub struct PyProfile {
    profile: SymbolizedProfile,
    records: Vec<StackSample>,
    samples: u64,
    losses: serde_json::Value,
    pprof: PprofOptions,
    flamegraph: FlameGraphOptions,
}

fn write_file(
    path: &PathBuf,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> PyResult<()> {
    let result = File::create(path).and_then(|file| {
        let mut out = BufWriter::new(file);
        write(&mut out)?;
        out.flush()
    });
    result.map_err(|e| errors::core(&Error::io(format!("cannot write {}", path.display()), e)))
}

#[pymethods]
impl PyProfile {
    /// Samples taken (on-CPU), or distinct stacks (off-CPU).
    #[getter]
    fn samples(&self) -> u64 {
        self.samples
    }

    /// The sum of all stacks' weights (samples, or microseconds off-CPU).
    #[getter]
    fn total_weight(&self) -> u64 {
        self.profile.total_weight()
    }

    /// Delivered and lost counts.
    #[getter]
    fn losses<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::convert::json_to_py(py, &self.losses)
    }

    /// Folded stacks: one `comm;root;...;leaf count` line per stack.
    fn folded(&self) -> String {
        self.profile.folded()
    }

    /// The stacks as dicts: pid, tid, comm, frames (root first), count.
    fn stacks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for stack in &self.records {
            list.append(to_py(py, &Record::Stack(stack.clone()))?)?;
        }
        Ok(list)
    }

    /// The `n` functions with the most self weight: dicts with function, kernel, self,
    /// total and their shares of the whole profile (0.0 to 1.0).
    #[pyo3(signature = (n=10))]
    fn top<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        let top = self.profile.top(n);
        let total = top.total_weight.max(1) as f64;
        let list = PyList::empty(py);
        for entry in &top.entries {
            let dict = PyDict::new(py);
            dict.set_item("function", &entry.function)?;
            dict.set_item("kernel", entry.kernel)?;
            dict.set_item("self", entry.self_weight)?;
            dict.set_item("total", entry.total_weight)?;
            dict.set_item("self_share", entry.self_weight as f64 / total)?;
            dict.set_item("total_share", entry.total_weight as f64 / total)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// Writes the profile as pprof (gzipped profile.proto) to `path`.
    fn write_pprof(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| write_file(&path, |out| self.profile.write_pprof(&self.pprof, out)))
    }

    /// Writes a flame graph SVG to `path`.
    #[pyo3(signature = (path, title=None))]
    fn write_svg(&self, py: Python<'_>, path: PathBuf, title: Option<String>) -> PyResult<()> {
        let mut options = self.flamegraph.clone();
        if let Some(title) = title {
            options.title = title;
        }
        py.detach(|| write_file(&path, |out| self.profile.write_flamegraph(&options, out)))
    }

    fn __repr__(&self) -> String {
        format!(
            "<coolbpf.Profile {} stacks, weight {}>",
            self.records.len(),
            self.profile.total_weight()
        )
    }
}
