//! What the CPython tests of coolbpf-symbolize and coolbpf-probes share: the workload
//! process (this directory's pywork_main.py under a given interpreter), killed when
//! dropped, and where py-spy is. Included by path from both crates' tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A workload process, killed when dropped.
pub struct Workload(pub Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Workload {
    /// Starts pywork_main.py (in `dir`) under `python`.
    pub fn start(python: &Path, dir: &Path) -> Self {
        let child = Command::new(python)
            .arg(dir.join("pywork_main.py"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        Self(child)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// py-spy: `PY_SPY`, or where `pip install --target ~/.cache/coolbpf/py-spy` puts it.
pub fn py_spy() -> Option<PathBuf> {
    let path = std::env::var_os("PY_SPY").map(PathBuf::from).or_else(|| {
        let home = std::env::var_os("HOME")?;
        Some(Path::new(&home).join(".cache/coolbpf/py-spy/bin/py-spy"))
    })?;
    path.exists().then_some(path)
}
