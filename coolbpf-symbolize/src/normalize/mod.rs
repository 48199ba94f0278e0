//! Address normalization: a process's virtual address becomes (file, build id, file
//! offset), which means the same thing on any machine that has the file or its debug
//! files. Capture on a production host, symbolize elsewhere.

mod build_id;
pub(crate) mod distinct;
pub(crate) mod offsets;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::elf::{build_id_hex, ElfFile};
use crate::error::Result;
use crate::frame::{Symbolized, Unknown};
use crate::process::maps::Pathname;
use crate::process::{dump_vdso, find, open_mapped, read_maps};
use crate::symbolizer::Symbolizer;

use distinct::Distinct;
use offsets::symbolize_offsets;

/// Where distributions install debug files: the default debug directory of a
/// [`Symbolizer`], searched for separate debug files and for [`FileRef::BuildId`].
pub const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// A normalized address, or why the address has no file behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Normalized {
    /// An offset into a file.
    File(FileOffset),
    /// Unmapped, anonymous, or kernel-provided memory.
    Unknown(Unknown),
}

/// A position in a file, identified both by path and by build id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileOffset {
    /// The path as the process sees it (in its mount namespace), without ` (deleted)`;
    /// `[vdso]` for the vdso.
    pub path: String,
    /// The GNU build id, lowercase hex, when the file has one and could be read.
    pub build_id: Option<String>,
    /// Offset of the address's byte in the file.
    pub file_offset: u64,
}

/// A file to symbolize file offsets against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// The file at this path.
    Path(PathBuf),
    /// The file with this GNU build id (hex), found under debug directories.
    BuildId(String),
}

/// Normalizes virtual addresses of process `pid`: one result per address, in order.
/// Fails only when the process cannot be read ([`Error::NoSuchProcess`](crate::Error)
/// when it does not exist).
pub fn normalize(pid: u32, addrs: &[u64]) -> Result<Vec<Normalized>> {
    let entries = read_maps(pid)?;
    let distinct = Distinct::new(addrs);
    // One read per file (and one copy of the vdso), however many addresses fall in it.
    let mut build_ids: HashMap<(u32, u32, u64, &str), Option<String>> = HashMap::new();
    let mut vdso_build_id: Option<Option<String>> = None;
    let mut results = Vec::with_capacity(distinct.addrs().len());
    for &addr in distinct.addrs() {
        let Some(entry) = find(&entries, addr) else {
            results.push(Normalized::Unknown(Unknown::Unmapped));
            continue;
        };
        let (path, build_id) = match &entry.pathname {
            Pathname::File { path, .. } => {
                let key = (entry.dev.0, entry.dev.1, entry.inode, path.as_str());
                let id = build_ids.entry(key).or_insert_with(|| {
                    open_mapped(pid, entry)
                        .ok()
                        .and_then(|elf| elf.build_id().map(build_id_hex))
                });
                (path.clone(), id.clone())
            }
            Pathname::Vdso => {
                let id = vdso_build_id.get_or_insert_with(|| {
                    let temp = dump_vdso(pid, entry).ok()?;
                    let elf = ElfFile::open(temp.path()).ok()?;
                    elf.build_id().map(build_id_hex)
                });
                (entry.pathname.to_string(), id.clone())
            }
            other => {
                let why = if other.is_anonymous() {
                    Unknown::Anonymous
                } else {
                    Unknown::NoSymbol
                };
                results.push(Normalized::Unknown(why));
                continue;
            }
        };
        let file_offset = entry.file_offset(addr);
        results.push(Normalized::File(FileOffset {
            path,
            build_id,
            file_offset,
        }));
    }
    Ok(distinct.spread(addrs, &results))
}

impl Symbolizer {
    /// Symbolizes offsets into a file (as [`normalize`] produced them). A file given by
    /// build id is looked for under the symbolizer's debug directories
    /// ([`SymbolizerBuilder::debug_dirs`](crate::SymbolizerBuilder::debug_dirs), default
    /// [`DEFAULT_DEBUG_DIR`]), each holding a `.build-id` directory, in order. One result
    /// per offset, in order.
    pub fn symbolize_file_offsets(
        &self,
        file: &FileRef,
        offsets: &[u64],
    ) -> Result<Vec<Symbolized>> {
        let elf = match file {
            FileRef::Path(path) => ElfFile::open(path)?,
            FileRef::BuildId(id) => build_id::open_by_build_id(id, self.debug_dirs())?,
        };
        let distinct = Distinct::new(offsets);
        let results = symbolize_offsets(self, &elf, distinct.addrs());
        Ok(distinct.spread(offsets, &results))
    }
}
