//! The one public entry point: [`Symbolizer`], over a [`Source`].

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::cache::ByteLru;
use crate::dwarf::{DwarfInfo, Slice, UnitHit};
use crate::elf::resolver::{ElfResolver, UnitEntry};
use crate::error::{Error, Result};
use crate::frame::{Symbolized, Unknown};
use crate::normalize::DEFAULT_DEBUG_DIR;
use crate::source::Source;

/// The default cache budget: enough for the DWARF units a large profile touches, small
/// next to the binaries it describes.
const DEFAULT_CACHE_BYTES: usize = 256 << 20;

/// Parsed DWARF (in its encoded size) after which the mapped pages it was read from
/// are released in the middle of a batch: the resident set stays this much above the
/// parsed data, however large the binary.
const RELEASE_AFTER_PARSING: u64 = 16 << 20;

/// Identifies a file's contents without reading them: a rebuilt binary at the same path
/// gets a new key, and one file reached by two paths gets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    File(FileKey),
    /// A parsed DWARF unit: the file's resolver id and the unit's `.debug_info` offset.
    Unit(u64, u64),
}

#[derive(Debug, Clone)]
enum Entry {
    File(Arc<ElfResolver>),
    Unit(UnitEntry),
}

/// Symbolizes addresses from any [`Source`]. Create one and reuse it: it caches parsed
/// files and DWARF units, within a byte budget, across calls. It is `Send + Sync`;
/// concurrent calls share the cache.
///
/// ```no_run
/// use coolbpf_symbolize::{Source, Symbolizer};
///
/// let symbolizer = Symbolizer::builder().cache_bytes(64 << 20).build();
/// let frames = symbolizer.symbolize(&Source::elf("/usr/bin/true"), &[0x2a40])?;
/// # Ok::<(), coolbpf_symbolize::Error>(())
/// ```
pub struct Symbolizer {
    debug_dirs: Vec<PathBuf>,
    use_dwarf: bool,
    cache: Mutex<ByteLru<Key, Entry>>,
    next_id: AtomicU64,
}

/// Options for a [`Symbolizer`]; see [`Symbolizer::builder`].
#[derive(Debug, Clone)]
pub struct SymbolizerBuilder {
    debug_dirs: Vec<PathBuf>,
    use_dwarf: bool,
    cache_bytes: usize,
}

impl Default for SymbolizerBuilder {
    fn default() -> Self {
        Self {
            debug_dirs: vec![PathBuf::from(DEFAULT_DEBUG_DIR)],
            use_dwarf: true,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl SymbolizerBuilder {
    /// Directories searched for separate debug files, in order (default
    /// `/usr/lib/debug`): `DIR/.build-id/xx/rest.debug` by build id, and
    /// `DIR/<binary's directory>/<debuglink name>` for a `.gnu_debuglink`. The binary's
    /// own directory and its `.debug/` subdirectory are always searched for a debuglink.
    /// [`Symbolizer::symbolize_file_offsets`] finds files given by build id here too.
    #[must_use]
    pub fn debug_dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.debug_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Roughly how many heap bytes parsed files and DWARF units may hold (default
    /// 256 MiB); the least recently used are dropped beyond it. Mapped files are not
    /// counted: their pages belong to the page cache.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether to read DWARF (default true): source lines and inlined frames. Without it
    /// frames come from symbol tables alone (`.symtab`, `.dynsym`, a separate debug
    /// file's or `.gnu_debugdata`'s): function names and offsets, no lines, no inlined
    /// functions, at a fraction of the CPU time and memory on binaries with large DWARF.
    #[must_use]
    pub fn dwarf(mut self, use_dwarf: bool) -> Self {
        self.use_dwarf = use_dwarf;
        self
    }

    /// The symbolizer.
    pub fn build(self) -> Symbolizer {
        Symbolizer {
            debug_dirs: self.debug_dirs,
            use_dwarf: self.use_dwarf,
            cache: Mutex::new(ByteLru::new(self.cache_bytes)),
            next_id: AtomicU64::new(0),
        }
    }
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("debug_dirs", &self.debug_dirs)
            .finish_non_exhaustive()
    }
}

impl Symbolizer {
    /// A symbolizer with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options for a symbolizer.
    pub fn builder() -> SymbolizerBuilder {
        SymbolizerBuilder::default()
    }

    /// The directories searched for separate debug files and build ids, as configured
    /// with [`SymbolizerBuilder::debug_dirs`].
    pub(crate) fn debug_dirs(&self) -> &[PathBuf] {
        &self.debug_dirs
    }

    /// Symbolizes `addrs` (in the address space `source` defines). The result has one
    /// entry per address, in the same order. Addresses are sorted and deduplicated
    /// internally, so each distinct address is resolved once.
    pub fn symbolize(&self, source: &Source, addrs: &[u64]) -> Result<Vec<Symbolized>> {
        match source {
            Source::Elf(elf) => self.symbolize_elf(&elf.path, addrs),
            Source::Process(p) => crate::process::symbolize(self, p, addrs),
            Source::Kernel(k) => crate::kernel::symbolize(self, k, addrs),
        }
    }

    /// Symbolizes link-time virtual addresses of the ELF file at `path`.
    pub(crate) fn symbolize_elf(&self, path: &Path, addrs: &[u64]) -> Result<Vec<Symbolized>> {
        let (key, resolver) = self.resolver(path)?;
        // Input positions sorted by address: each run of equal addresses is resolved
        // once, and its result moved (not copied) into the last of its positions.
        let mut order: Vec<usize> = (0..addrs.len()).collect();
        order.sort_unstable_by_key(|&i| addrs[i]);
        let runs: Vec<&[usize]> = order.chunk_by(|&a, &b| addrs[a] == addrs[b]).collect();
        let distinct: Vec<u64> = runs.iter().map(|run| addrs[run[0]]).collect();
        resolver.prepare(distinct.len());
        let results = self.resolve_sorted(&resolver, &distinct);
        // The resolver's indexes grow on first use: keep the budget honest.
        self.lock().resize(&key, resolver.heap_bytes());
        resolver.release_pages(1);
        let mut out: Vec<Option<Symbolized>> = addrs.iter().map(|_| None).collect();
        for (run, result) in runs.iter().zip(results) {
            if let Some((&last, rest)) = run.split_last() {
                for &i in rest {
                    out[i] = Some(result.clone());
                }
                out[last] = Some(result);
            }
        }
        Ok(out
            .into_iter()
            .map(|s| s.unwrap_or(Symbolized::Unknown(Unknown::NoSymbol)))
            .collect())
    }

    /// Resolves sorted, distinct addresses. Neighbouring addresses mostly share a DWARF
    /// unit, which is then fetched once.
    fn resolve_sorted(&self, resolver: &ElfResolver, addrs: &[u64]) -> Vec<Symbolized> {
        let dwarf = resolver.dwarf().map(|info| (info, info.gimli()));
        if let Some((info, gimli)) = &dwarf {
            info.prepare(gimli, addrs.len());
        }
        let mut hit = UnitHit::default();
        let mut current: Option<(u64, UnitEntry)> = None;
        let mut out = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let unit = dwarf.as_ref().and_then(|(info, gimli)| {
                let offset = info.unit_for(gimli, addr)?;
                if current.as_ref().is_none_or(|(o, _)| *o != offset) {
                    current = Some((offset, self.unit(resolver, info, gimli, offset)));
                }
                current.as_ref().map(|(_, entry)| entry)
            });
            out.push(resolver.frames(addr, unit, &mut hit));
        }
        out
    }

    /// The parsed unit at `offset`, from the cache or parsed now (outside the lock, so
    /// other threads are not held up).
    fn unit(
        &self,
        resolver: &ElfResolver,
        info: &DwarfInfo,
        gimli: &gimli::Dwarf<Slice<'_>>,
        offset: u64,
    ) -> UnitEntry {
        let key = Key::Unit(resolver.id(), offset);
        if let Some(Entry::Unit(entry)) = self.lock().get(&key) {
            return entry;
        }
        let (entry, bytes) = match info.parse_unit(gimli, offset) {
            Ok(data) => {
                let bytes = data.heap_bytes();
                (Ok(Arc::new(data)), bytes)
            }
            Err(why) => (Err(Arc::from(why)), 64),
        };
        self.lock().insert(key, Entry::Unit(entry.clone()), bytes);
        resolver.release_pages(RELEASE_AFTER_PARSING);
        entry
    }

    /// The resolver for the file at `path`, from the cache or opened now.
    fn resolver(&self, path: &Path) -> Result<(Key, Arc<ElfResolver>)> {
        let key = Key::File(file_key(path)?);
        if let Some(Entry::File(resolver)) = self.lock().get(&key) {
            return Ok((key, resolver));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let resolver = Arc::new(ElfResolver::open(
            id,
            path,
            &self.debug_dirs,
            self.use_dwarf,
        )?);
        self.lock().insert(
            key.clone(),
            Entry::File(resolver.clone()),
            resolver.heap_bytes(),
        );
        Ok((key, resolver))
    }

    /// The cache, even if another thread panicked while holding it: every update leaves
    /// it consistent.
    fn lock(&self) -> MutexGuard<'_, ByteLru<Key, Entry>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn file_key(path: &Path) -> Result<FileKey> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok(FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        size: meta.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Symbolizer>();
    }

    #[test]
    fn files_that_cannot_be_used_are_errors() {
        let symbolizer = Symbolizer::new();
        let missing = symbolizer.symbolize(&Source::elf("/nonexistent/binary"), &[1]);
        assert!(matches!(missing, Err(Error::Io { .. })), "{missing:?}");
        let garbage = std::env::temp_dir().join(format!("coolbpf-garbage-{}", std::process::id()));
        std::fs::write(&garbage, b"\x7fELF but not really").unwrap();
        let result = symbolizer.symbolize(&Source::elf(&garbage), &[1]);
        std::fs::remove_file(&garbage).unwrap();
        assert!(matches!(result, Err(Error::Malformed { .. })), "{result:?}");
    }

    #[test]
    fn own_executable_symbolizes_in_input_order() {
        // `main` is in this test binary's symbol table; the last address is in nothing.
        let exe = std::env::current_exe().unwrap();
        let elf = crate::elf::ElfFile::open(&exe).unwrap();
        let main = {
            use object::{Object, ObjectSymbol};
            let object = elf.object().unwrap();
            let main = object.symbols().find(|s| s.name() == Ok("main")).unwrap();
            main.address()
        };
        let symbolizer = Symbolizer::builder()
            .cache_bytes(1 << 20)
            .debug_dirs(["/nonexistent"])
            .build();
        let results = symbolizer
            .symbolize(&Source::elf(&exe), &[main, main, u64::MAX])
            .unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0].function(), Some("main"));
        assert!(
            matches!(results[2], Symbolized::Unknown(_)),
            "{:?}",
            results[2]
        );
        assert!(symbolizer
            .symbolize(&Source::elf(&exe), &[])
            .unwrap()
            .is_empty());
    }
}
