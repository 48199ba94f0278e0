//! One compilation unit, parsed on first use: its line table, file names and functions.

use gimli::LineProgramHeader;

use crate::dwarf::functions::{Context, Func, Functions, NameNode};
use crate::dwarf::lines::{LineTable, Row};
use crate::dwarf::sections::{Slice, StrRef};

/// A file of a line table: where its name and directory are, and the compilation
/// directory when a relative directory is relative to it. Turned into a path only when
/// a frame needs it (see [`PathKey::render`]): most files of a unit never are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PathKey {
    base: Option<StrRef>,
    dir: Option<StrRef>,
    name: StrRef,
}

impl PathKey {
    /// The full path, `string` reading the parts: an absolute name as it is; else the
    /// name joined to its directory, itself joined to the compilation directory when
    /// relative (as llvm-symbolizer builds paths).
    pub(crate) fn render<'a>(&self, string: impl Fn(StrRef) -> &'a [u8]) -> String {
        let text = |s| String::from_utf8_lossy(string(s)).into_owned();
        let name = text(self.name);
        if name.starts_with('/') {
            return name;
        }
        let dir = self.dir.map(text).unwrap_or_default();
        let dir = match self.base {
            Some(base) if !dir.starts_with('/') => join(&text(base), &dir),
            _ => dir,
        };
        join(&dir, &name)
    }
}

/// What a lookup in one unit found.
#[derive(Debug, Default)]
pub(crate) struct UnitHit {
    /// The line row at the address.
    pub(crate) row: Option<Row>,
    /// The inline chain, outermost first, as `(function, start of its range)`.
    pub(crate) chain: Vec<(Func, u64)>,
}

/// A parsed unit, shared through the symbolizer's cache.
#[derive(Debug, Default)]
pub(crate) struct UnitData {
    lines: LineTable,
    /// Files by the line program's file index.
    files: Vec<Option<PathKey>>,
    functions: Functions,
}

impl UnitData {
    /// Parses a unit: its line table from `lines`, its functions from `functions` (the
    /// same unit, or the split unit of a skeleton: split DWARF leaves the line table in
    /// the skeleton, and the split unit's call files index it). Its functions failing to
    /// parse leaves the line table usable, and the other way round; only both failing is
    /// an error.
    pub(crate) fn parse(
        lines: &Context<'_, '_>,
        functions: &Context<'_, '_>,
        foreign: &mut dyn FnMut(u64) -> Option<NameNode>,
    ) -> Result<Self, gimli::Error> {
        let cx = lines;
        let functions = Functions::parse(functions, foreign);
        let lines = match cx.unit.line_program.clone() {
            Some(program) => LineTable::parse(program, cx.skip_zero)
                .map(|(table, header)| (table, file_table(cx, &header))),
            None => Ok((LineTable::default(), Vec::new())),
        };
        match (functions, lines) {
            (Err(e), Err(_)) => Err(e),
            (functions, lines) => {
                let (lines, files) = lines.unwrap_or_default();
                Ok(Self {
                    lines,
                    files,
                    functions: functions.unwrap_or_default(),
                })
            }
        }
    }

    /// The line row and inline chain at `addr`.
    pub(crate) fn lookup(&self, addr: u64, hit: &mut UnitHit) {
        hit.row = self.lines.find(addr);
        self.functions.chain(addr, &mut hit.chain);
    }

    /// File `index` of the line table.
    pub(crate) fn file(&self, index: u16) -> Option<PathKey> {
        *self.files.get(usize::from(index))?
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        size_of::<Self>()
            + self.lines.heap_bytes()
            + self.functions.heap_bytes()
            + self.files.capacity() * size_of::<Option<PathKey>>()
    }
}

/// Every file of the line program, by the index rows use (from 0 in DWARF 5, from 1
/// before).
fn file_table(cx: &Context<'_, '_>, header: &LineProgramHeader<Slice<'_>>) -> Vec<Option<PathKey>> {
    let string = |value| cx.string(value);
    let comp_dir = cx.unit.comp_dir.and_then(|d| cx.slice(d));
    let count = header.file_names().len() + usize::from(header.version() < 5);
    (0..count as u64)
        .map(|index| {
            let file = header.file(index)?;
            // DWARF 5 directory 0 is the compilation directory itself; other relative
            // directories are relative to it.
            let relative_to_comp_dir = header.version() < 5 || file.directory_index() != 0;
            Some(PathKey {
                base: comp_dir.filter(|_| relative_to_comp_dir),
                dir: file.directory(header).and_then(string),
                name: string(file.path_name())?,
            })
        })
        .collect()
}

/// `a/b`, without doubling or adding a separator where one side is empty.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ if a.ends_with('/') => format!("{a}{b}"),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn joins_paths_like_llvm() {
        assert_eq!(join("/src", "a.c"), "/src/a.c");
        assert_eq!(join("/src/", "a.c"), "/src/a.c");
        assert_eq!(join("", "a.c"), "a.c");
        assert_eq!(join("/src", ""), "/src");
    }
}
