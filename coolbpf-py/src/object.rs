//! `coolbpf.Object`: a user's own BPF object, its maps and ring buffers.

use std::path::PathBuf;
use std::sync::Mutex;

use coolbpf_core::decode::int_ne_bytes;
use coolbpf_core::{AttachTarget, BpfObject, Environment, Error, Layout, MapView, ObjectBuilder};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList};

use crate::convert::to_py;
use crate::errors::{self, IntoPy};
use crate::ringbuf::PyRingBuffer;

/// A loaded BPF object; dropping or closing it detaches everything it attached.
#[pyclass(module = "coolbpf._native", name = "Object")]
pub struct PyObject {
    // Locked only for calls that never wait on Python (see `PyProbeSession`).
    object: Mutex<Option<BpfObject>>,
    name: String,
}

impl PyObject {
    fn with<T>(&self, f: impl FnOnce(&mut BpfObject) -> Result<T, Error>) -> PyResult<T> {
        let mut guard = self
            .object
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let object = guard
            .as_mut()
            .ok_or_else(|| errors::core(&Error::Closed("object")))?;
        f(object).py_err()
    }
}

/// A Python int as an i128, the widest integer the bindings pass on.
fn int_value(name: &str, value: &Bound<'_, PyAny>) -> PyResult<i128> {
    value
        .extract()
        .map_err(|_| errors::invalid(format!("{name}: the integer does not fit in 128 bits")))
}

/// A Python int as `size` native-endian bytes, refusing values that do not fit.
fn int_bytes(name: &str, value: &Bound<'_, PyAny>, size: usize) -> PyResult<Vec<u8>> {
    let value = int_value(name, value)?;
    int_ne_bytes(value, size).ok_or_else(|| {
        errors::invalid(format!(
            "{name} is {size} bytes; {value} does not fit (pass bytes for other sizes)"
        ))
    })
}

/// Sets `{name: int | bool | bytes}` on `builder`: bytes as they are, a bool as one
/// byte, an int in the size the variable has (the builder reads it from BTF at load).
fn set_globals(mut builder: ObjectBuilder, globals: &Bound<'_, PyDict>) -> PyResult<ObjectBuilder> {
    for (key, value) in globals.iter() {
        let name: String = key
            .extract()
            .map_err(|_| errors::invalid("global variable names must be strings"))?;
        builder = if let Ok(b) = value.cast::<PyBytes>() {
            builder.global(&name, b.as_bytes())
        } else if value.is_instance_of::<PyBool>() {
            builder.global(&name, &value.is_truthy()?)
        } else if value.is_instance_of::<PyInt>() {
            builder.global_int(&name, int_value(&name, &value)?)
        } else {
            return Err(errors::invalid(format!(
                "global {name}: expected int, bool or bytes, got {}",
                value.get_type().name()?
            )));
        };
    }
    Ok(builder)
}

/// A map key or value from Python: bytes as they are, an int as `size` bytes.
fn key_bytes(what: &str, value: &Bound<'_, PyAny>, size: u32) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if value.is_instance_of::<PyInt>() {
        return int_bytes(what, value, size as usize);
    }
    Err(errors::invalid(format!(
        "{what}: expected bytes or int, got {}",
        value.get_type().name()?
    )))
}

#[pymethods]
impl PyObject {
    /// Loads a BPF object from `path` (a `.bpf.o` file) or from `data` (its bytes).
    ///
    /// `globals` sets global variables before load (`{name: int | bool | bytes}`; ints
    /// take the variable's size from BTF); `max_entries` resizes maps (`{map: entries}`).
    #[new]
    #[pyo3(signature = (path=None, *, data=None, globals=None, max_entries=None))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        data: Option<Vec<u8>>,
        globals: Option<Bound<'_, PyDict>>,
        max_entries: Option<Vec<(String, u32)>>,
    ) -> PyResult<Self> {
        let (bytes, describe) = match (path, data) {
            (Some(path), None) => {
                let bytes = std::fs::read(&path).map_err(|source| {
                    errors::core(&Error::ObjectFile {
                        path: path.clone(),
                        source,
                    })
                })?;
                (bytes, path.display().to_string())
            }
            (None, Some(data)) => (data, "bytes".to_owned()),
            _ => return Err(errors::invalid("give exactly one of path and data")),
        };
        let mut builder = ObjectBuilder::from_vec(bytes);
        if let Some(globals) = &globals {
            builder = set_globals(builder, globals)?;
        }
        for (map, entries) in max_entries.unwrap_or_default() {
            builder = builder.max_entries(&map, entries);
        }
        let object = py
            .detach(|| {
                Environment::prepare()?;
                builder.load()
            })
            .py_err()?;
        let name = if object.name().is_empty() {
            describe
        } else {
            object.name().to_owned()
        };
        Ok(Self {
            object: Mutex::new(Some(object)),
            name,
        })
    }

    /// The object's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Names of the loaded programs.
    #[getter]
    fn programs(&self) -> PyResult<Vec<String>> {
        self.with(|o| Ok(o.program_names()))
    }

    /// Names of the maps.
    #[getter]
    fn maps(&self) -> PyResult<Vec<String>> {
        self.with(|o| Ok(o.map_names()))
    }

    /// Number of live kernel attachments.
    #[getter]
    fn attachments(&self) -> PyResult<usize> {
        self.with(|o| Ok(o.attachment_count()))
    }

    /// Attaches `program` to `target` (text form: `tracepoint:syscalls:sys_enter_read`,
    /// `raw_tp:sys_enter`, `tp_btf:sched_switch`, `uprobe:getppid@libc`, ...); without a
    /// target, where the program's `SEC()` says.
    #[pyo3(signature = (program, target=None))]
    fn attach(&self, py: Python<'_>, program: &str, target: Option<&str>) -> PyResult<()> {
        let target: AttachTarget = match target {
            Some(text) => text.parse().py_err()?,
            None => AttachTarget::FromSection,
        };
        py.detach(|| self.with(|o| o.attach(program, &target)))
    }

    /// Detaches everything attached so far (the object stays loaded).
    fn detach_all(&self) -> PyResult<()> {
        self.with(|o| {
            o.detach_all();
            Ok(())
        })
    }

    /// Map `name`.
    fn map(&self, name: &str) -> PyResult<PyMap> {
        let view = self.with(|o| o.map(name))?;
        Ok(PyMap { view })
    }

    /// The current bytes of global variable `name`, read from the kernel.
    fn global_bytes<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(|o| o.global_bytes(name))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Global variable `name` as an unsigned integer (1, 2, 4 or 8 bytes).
    fn global_int(&self, name: &str) -> PyResult<u64> {
        let bytes = self.with(|o| o.global_bytes(name))?;
        if !matches!(bytes.len(), 1 | 2 | 4 | 8) {
            return Err(errors::invalid(format!(
                "global {name} is {} bytes, not an integer (use global_bytes)",
                bytes.len()
            )));
        }
        let mut word = [0u8; 8];
        if cfg!(target_endian = "little") {
            word[..bytes.len()].copy_from_slice(&bytes);
        } else {
            word[8 - bytes.len()..].copy_from_slice(&bytes);
        }
        Ok(u64::from_ne_bytes(word))
    }

    /// Consumes ring buffer `map` on a framework thread; events wait in a queue of
    /// `capacity` (events that find it full are counted as lost).
    #[pyo3(signature = (map, capacity=1 << 20))]
    fn ring_buffer(&self, map: &str, capacity: usize) -> PyResult<PyRingBuffer> {
        if capacity == 0 {
            return Err(errors::invalid("capacity must be at least 1"));
        }
        self.with(|o| PyRingBuffer::open(o, map, capacity))
    }

    /// Detaches everything and unloads the object.
    fn close(&self, py: Python<'_>) {
        let taken = self
            .object
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        py.detach(move || drop(taken));
    }

    fn __repr__(&self) -> String {
        format!("<coolbpf.Object {:?}>", self.name)
    }
}

/// A view of one map of an object (it stays usable after the object is closed).
#[pyclass(module = "coolbpf._native", name = "Map")]
pub struct PyMap {
    view: MapView,
}

#[pymethods]
impl PyMap {
    /// The map's name.
    #[getter]
    fn name(&self) -> &str {
        self.view.name()
    }

    /// Key size in bytes.
    #[getter]
    fn key_size(&self) -> u32 {
        self.view.key_size()
    }

    /// Value size in bytes.
    #[getter]
    fn value_size(&self) -> u32 {
        self.view.value_size()
    }

    /// The map type's name (e.g. `Hash`, `RingBuf`).
    #[getter]
    fn map_type(&self) -> String {
        format!("{:?}", self.view.map_type())
    }

    /// The value at `key` (bytes, or an int of the key's size), or `None`. Per-CPU values
    /// come summed as u64 words.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = key_bytes("key", key, self.view.key_size())?;
        let value = self.view.lookup(&key).py_err()?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    /// Sets `key` to `value` (bytes, or ints of the key's and value's sizes).
    fn update(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = key_bytes("key", key, self.view.key_size())?;
        let value = key_bytes("value", value, self.view.value_size())?;
        self.view.update(&key, &value).py_err()
    }

    /// Every entry as `(key, value)` bytes pairs.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries = self.view.entries().py_err()?;
        let list = PyList::empty(py);
        for (key, value) in entries {
            list.append((PyBytes::new(py, &key), PyBytes::new(py, &value)))?;
        }
        Ok(list)
    }

    /// The u64 counter at `key` (summed over CPUs; 0 when absent).
    fn counter(&self, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        let key = key_bytes("key", key, self.view.key_size())?;
        self.view.counter(&key).py_err()
    }

    /// Every entry's u64 counter, as a dict `{key bytes: count}`.
    fn counters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, count) in self.view.counters().py_err()? {
            dict.set_item(PyBytes::new(py, &key), count)?;
        }
        Ok(dict)
    }

    /// Each u64 slot of an array map, summed over CPUs.
    fn array_counters(&self) -> PyResult<Vec<u64>> {
        self.view.array_counters().py_err()
    }

    /// The `struct coolbpf_log2_hist` (or linear, with `linear=(min, step)`) at `key`, as
    /// a dict with unit, buckets, count and sum.
    #[pyo3(signature = (key, unit="", linear=None))]
    fn histogram<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        unit: &str,
        linear: Option<(u64, u64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_bytes("key", key, self.view.key_size())?;
        let layout = linear.map_or(Layout::Log2, |(min, step)| Layout::Linear { min, step });
        let histogram = self.view.histogram(&key, layout, unit).py_err()?;
        to_py(py, &histogram)
    }

    fn __repr__(&self) -> String {
        format!("<coolbpf.Map {:?}>", self.view.name())
    }
}
