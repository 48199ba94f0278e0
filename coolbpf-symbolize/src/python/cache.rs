//! Code objects already read, keyed by (pid, code object address): a profile sees the
//! same few hundred code objects in thousands of samples.
//!
//! A code object lives as long as its function in most programs (module-level code for
//! the process's life), so entries are kept until the process is forgotten or the cache
//! is full, when it is emptied (a cheap bound; refilling costs a few reads per code
//! object). An address freed and reused for another code object while cached would be
//! named by the old entry: the price of not re-reading each sample.

use std::collections::HashMap;
use std::sync::Arc;

use super::code::CodeInfo;
use super::error::PythonError;

/// Entries kept before the cache empties itself.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// A read code object, or why it could not be read (kept too: a bad address stays bad,
/// and reading it again costs as much as the first time).
pub type CachedCode = Result<Arc<CodeInfo>, Arc<str>>;

/// See the module documentation of `coolbpf_symbolize::python`.
#[derive(Debug)]
pub struct CodeCache {
    entries: HashMap<(u32, u64), CachedCode>,
    capacity: usize,
}

impl Default for CodeCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl CodeCache {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The code object at `addr` in `pid`, read by `read` on a miss.
    pub fn get_or_read(
        &mut self,
        pid: u32,
        addr: u64,
        read: impl FnOnce() -> Result<CodeInfo, PythonError>,
    ) -> CachedCode {
        if let Some(found) = self.entries.get(&(pid, addr)) {
            return found.clone();
        }
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
        let value = read()
            .map(Arc::new)
            .map_err(|e| Arc::from(e.to_string().as_str()));
        self.entries.insert((pid, addr), value.clone());
        value
    }

    /// Drops the entries of `pid` (it exited: its addresses mean nothing now).
    pub fn forget(&mut self, pid: u32) {
        self.entries.retain(|&(p, _), _| p != pid);
    }

    /// How many entries are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(name: &str) -> CodeInfo {
        CodeInfo::for_tests(name)
    }

    #[test]
    fn reads_once_per_key_and_forgets_a_process() {
        let mut cache = CodeCache::new(8);
        let mut reads = 0;
        for _ in 0..3 {
            let got = cache.get_or_read(1, 0x10, || {
                reads += 1;
                Ok(code("fib"))
            });
            assert_eq!(got.unwrap().qualname, "fib");
        }
        assert_eq!(reads, 1);
        let err = cache.get_or_read(2, 0x10, || Err(PythonError::malformed("code object", "x")));
        assert!(err.unwrap_err().contains("malformed code object"));
        assert_eq!(cache.len(), 2);
        cache.forget(1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_cache_empties_instead_of_growing() {
        let mut cache = CodeCache::new(2);
        for addr in 0..5 {
            let _ = cache.get_or_read(1, addr, || Ok(code("f")));
            assert!(cache.len() <= 2);
        }
    }
}
