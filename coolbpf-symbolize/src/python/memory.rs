//! Reading another process's memory through `/proc/PID/mem` (the same permission as
//! ptrace-attach, which a profiler running as root has; no stopping of the process).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::error::PythonError;

/// ESRCH: the process exited.
const ESRCH: i32 = 3;

/// The memory of one process, open for reading.
#[derive(Debug)]
pub struct Memory {
    pid: u32,
    file: File,
}

impl Memory {
    /// Opens the memory of `pid`.
    pub fn open(pid: u32) -> Result<Self, PythonError> {
        let path = format!("/proc/{pid}/mem");
        match File::open(&path) {
            Ok(file) => Ok(Self { pid, file }),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(ESRCH) => {
                Err(crate::Error::NoSuchProcess { pid }.into())
            }
            Err(e) => Err(crate::Error::io(path, e).into()),
        }
    }

    /// The process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fills `buf` from `addr`; a short read (an unmapped page) is an error.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), PythonError> {
        self.file
            .read_exact_at(buf, addr)
            .map_err(|source| PythonError::Read {
                pid: self.pid,
                addr,
                len: buf.len(),
                source,
            })
    }

    /// `len` bytes from `addr`.
    pub fn bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, PythonError> {
        let mut buf = vec![0; len];
        self.read(addr, &mut buf)?;
        Ok(buf)
    }

    /// A little-endian `u64` (a pointer) at `addr`.
    pub fn u64(&self, addr: u64) -> Result<u64, PythonError> {
        let mut buf = [0; 8];
        self.read(addr, &mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    /// A little-endian `u32` at `addr`.
    pub fn u32(&self, addr: u64) -> Result<u32, PythonError> {
        let mut buf = [0; 4];
        self.read(addr, &mut buf)?;
        Ok(u32::from_le_bytes(buf))
    }

    /// One byte at `addr`.
    pub fn u8(&self, addr: u64) -> Result<u8, PythonError> {
        let mut buf = [0; 1];
        self.read(addr, &mut buf)?;
        Ok(buf[0])
    }

    /// A NUL-terminated C string at `addr`, of at most `max` bytes (lossy UTF-8).
    pub fn c_string(&self, addr: u64, max: usize) -> Result<String, PythonError> {
        let mut out = Vec::new();
        // Small chunks: the string may end just before an unmapped page.
        let mut chunk = [0u8; 32];
        while out.len() < max {
            let at = addr.wrapping_add(out.len() as u64);
            let len = chunk.len().min(max - out.len());
            // Reading up to the page end never crosses into a page that may be unmapped.
            let to_page_end = (0x1000 - (at & 0xfff)) as usize;
            let len = len.min(to_page_end);
            self.read(at, &mut chunk[..len])?;
            if let Some(nul) = chunk[..len].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk[..len]);
        }
        Err(PythonError::malformed(
            "C string",
            format!("no NUL in {max} bytes at {addr:#x}"),
        ))
    }
}
