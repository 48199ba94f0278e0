//! `coolbpf.Symbolizer`: addresses to functions, files, lines and inline chains.

use coolbpf_symbolize::{Source, Symbolized, Symbolizer};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::to_py;
use crate::errors;

/// A symbolizer with its caches (keep one around to symbolize many addresses cheaply).
#[pyclass(module = "coolbpf._native", name = "Symbolizer")]
pub struct PySymbolizer {
    inner: Symbolizer,
}

#[pymethods]
impl PySymbolizer {
    /// A symbolizer; `debug_dirs` adds directories searched for separate debug info.
    #[new]
    #[pyo3(signature = (debug_dirs=Vec::new()))]
    fn new(debug_dirs: Vec<std::path::PathBuf>) -> Self {
        let mut builder = Symbolizer::builder();
        if !debug_dirs.is_empty() {
            builder = builder.debug_dirs(debug_dirs);
        }
        Self {
            inner: builder.build(),
        }
    }

    /// Symbolizes `addrs` in exactly one of: process `pid` (virtual addresses), ELF file
    /// `elf` (addresses as in the file), or the running `kernel`. Returns one dict per
    /// address: `address`, `function` (outermost, or None), `frames` (innermost first:
    /// function, raw_name, offset, file, line, column, inlined) and `unknown` (why
    /// nothing was found, or None).
    #[pyo3(signature = (addrs, *, pid=None, elf=None, kernel=false))]
    fn symbolize<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<u64>,
        pid: Option<u32>,
        elf: Option<std::path::PathBuf>,
        kernel: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let source = match (pid, elf, kernel) {
            (Some(pid), None, false) => Source::process(pid),
            (None, Some(path), false) => Source::elf(path),
            (None, None, true) => Source::kernel(),
            _ => {
                return Err(errors::invalid(
                    "give exactly one of pid=, elf= and kernel=True",
                ))
            }
        };
        let results = py
            .detach(|| self.inner.symbolize(&source, &addrs))
            .map_err(|e| errors::symbolize(&e))?;
        let list = PyList::empty(py);
        for (address, result) in addrs.iter().zip(&results) {
            let dict = PyDict::new(py);
            dict.set_item("address", address)?;
            dict.set_item("function", result.function())?;
            dict.set_item("frames", to_py(py, &result.frames())?)?;
            let unknown = match result {
                Symbolized::Unknown(why) => Some(why.to_string()),
                Symbolized::Frames(_) => None,
            };
            dict.set_item("unknown", unknown)?;
            list.append(dict)?;
        }
        Ok(list)
    }
}
