//! The three symbolizers behind one interface: coolbpf-symbolize, blazesym and
//! addr2line, each asked for what the others give (function names demangled, file, line
//! and column, inlined frames) and used as its documentation suggests.

use std::borrow::Cow;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use blazesym::symbolize as bz;

use super::{Timer, Times};

/// Which symbolizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// coolbpf-symbolize.
    Coolbpf,
    /// blazesym's `symbolize::Symbolizer` over `Source::Elf`.
    Blazesym,
    /// addr2line's `Loader`.
    Addr2line,
}

impl Peer {
    /// All of them, in the order tables list them.
    pub const ALL: [Peer; 3] = [Peer::Coolbpf, Peer::Blazesym, Peer::Addr2line];

    /// The name used on command lines and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Coolbpf => "coolbpf",
            Peer::Blazesym => "blazesym",
            Peer::Addr2line => "addr2line",
        }
    }

    /// The peer with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Peer> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Function names, source locations and inlined frames (from DWARF).
    Full,
    /// Function names only, from the symbol table (the binary has no DWARF).
    Symtab,
}

impl Mode {
    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Symtab => "symtab",
        }
    }

    /// The mode with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Mode> {
        [Mode::Full, Mode::Symtab]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// What an address resolved to, reduced to what all three report alike: the number of
/// frames (inlined ones included), and the line of the innermost and of the outermost
/// frame. Used to check that the peers did the same work, never timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest {
    /// Frames, innermost to outermost; 0 when nothing was found.
    pub depth: usize,
    /// The innermost frame's line.
    pub inner_line: Option<u32>,
    /// The outermost (non-inlined) frame's line.
    pub outer_line: Option<u32>,
}

/// A symbolizer, created (nothing opened yet) and ready to be reused.
// Few of these live at a time: their size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Instance {
    /// coolbpf-symbolize.
    Coolbpf(coolbpf_symbolize::Symbolizer),
    /// blazesym.
    Blazesym(bz::Symbolizer),
    /// addr2line: the loader opens the file when created, so it is created on first use.
    Addr2line(Option<addr2line::Loader>),
}

impl Instance {
    /// A new symbolizer for `mode`, with its defaults otherwise.
    pub fn new(peer: Peer, mode: Mode) -> Instance {
        let full = mode == Mode::Full;
        match peer {
            Peer::Coolbpf => Instance::Coolbpf(coolbpf_symbolize::Symbolizer::new()),
            Peer::Blazesym => Instance::Blazesym(
                bz::Symbolizer::builder()
                    .enable_code_info(full)
                    .enable_inlined_fns(full)
                    .enable_demangling(true)
                    .build(),
            ),
            Peer::Addr2line => Instance::Addr2line(None),
        }
    }
}

/// One pass over `addrs` in the file at `path`: the time from the call to the results
/// being in hand and dropped (what a caller pays), and the number of frames returned.
pub fn pass(instance: &mut Instance, path: &Path, mode: Mode, addrs: &[u64]) -> (Times, usize) {
    let timer = Timer::start();
    let frames = match instance {
        Instance::Coolbpf(symbolizer) => {
            let source = coolbpf_symbolize::Source::elf(path);
            let results = symbolizer
                .symbolize(&source, addrs)
                .expect("coolbpf symbolizes");
            let frames = results.iter().map(|r| r.frames().len()).sum();
            drop(black_box(results));
            frames
        }
        Instance::Blazesym(symbolizer) => {
            let source = blazesym_source(path, mode);
            let results = symbolizer
                .symbolize(&source, bz::Input::VirtOffset(addrs))
                .expect("blazesym symbolizes");
            let frames = results
                .iter()
                .map(|r| r.as_sym().map_or(0, |s| 1 + s.inlined.len()))
                .sum();
            drop(black_box(results));
            frames
        }
        Instance::Addr2line(loader) => {
            let loader = loader.get_or_insert_with(|| open_addr2line(path));
            let mut frames = 0;
            for &addr in addrs {
                let result = addr2line_one(loader, mode, addr);
                frames += result.len();
                drop(black_box(result));
            }
            frames
        }
    };
    (timer.stop(), frames)
}

/// What each address resolved to, from a pass that is not timed.
pub fn digests(instance: &mut Instance, path: &Path, mode: Mode, addrs: &[u64]) -> Vec<Digest> {
    match instance {
        Instance::Coolbpf(symbolizer) => {
            let source = coolbpf_symbolize::Source::elf(path);
            let results = symbolizer
                .symbolize(&source, addrs)
                .expect("coolbpf symbolizes");
            results
                .iter()
                .map(|r| {
                    let frames = r.frames();
                    Digest {
                        depth: frames.len(),
                        inner_line: frames.first().and_then(|f| f.line),
                        outer_line: frames.last().and_then(|f| f.line),
                    }
                })
                .collect()
        }
        Instance::Blazesym(symbolizer) => {
            let source = blazesym_source(path, mode);
            let results = symbolizer
                .symbolize(&source, bz::Input::VirtOffset(addrs))
                .expect("blazesym symbolizes");
            results
                .iter()
                .map(|r| {
                    r.as_sym().map_or_else(Digest::default, |s| {
                        // `code_info` is where the outer function is; each inlined
                        // function's is where in it the next one (or the address) is.
                        let outer = s.code_info.as_ref().and_then(|c| c.line);
                        let inner = s
                            .inlined
                            .last()
                            .map_or(outer, |f| f.code_info.as_ref().and_then(|c| c.line));
                        Digest {
                            depth: 1 + s.inlined.len(),
                            inner_line: inner,
                            outer_line: outer,
                        }
                    })
                })
                .collect()
        }
        Instance::Addr2line(loader) => {
            let loader = loader.get_or_insert_with(|| open_addr2line(path));
            addrs
                .iter()
                .map(|&addr| {
                    let frames = addr2line_one(loader, mode, addr);
                    Digest {
                        depth: frames.len(),
                        inner_line: frames.first().and_then(|f| f.line),
                        outer_line: frames.last().and_then(|f| f.line),
                    }
                })
                .collect()
        }
    }
}

fn blazesym_source(path: &Path, mode: Mode) -> bz::source::Source<'static> {
    let mut elf = bz::source::Elf::new(PathBuf::from(path));
    elf.debug_syms = mode == Mode::Full;
    bz::source::Source::Elf(elf)
}

fn open_addr2line(path: &Path) -> addr2line::Loader {
    addr2line::Loader::new(path).expect("addr2line opens the file")
}

/// One frame as addr2line gives it, demangled as the other two do. Only the line is read
/// back (by the digests); the rest is what a caller would be given.
#[allow(dead_code)]
pub struct A2lFrame<'a> {
    /// The function's name, demangled.
    pub function: Cow<'a, str>,
    /// The source file.
    pub file: Option<&'a str>,
    /// The line.
    pub line: Option<u32>,
    /// The column.
    pub column: Option<u32>,
}

/// addr2line's frames for one address, innermost first, falling back to the symbol
/// table where DWARF has no function (as the other two do).
fn addr2line_one(loader: &addr2line::Loader, mode: Mode, addr: u64) -> Vec<A2lFrame<'_>> {
    let mut out = Vec::new();
    if mode == Mode::Full {
        if let Ok(mut frames) = loader.find_frames(addr) {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map_or(Cow::Borrowed("??"), |name| Cow::Owned(name.into_owned()));
                let location = frame.location.as_ref();
                out.push(A2lFrame {
                    function,
                    file: location.and_then(|l| l.file),
                    line: location.and_then(|l| l.line),
                    column: location.and_then(|l| l.column),
                });
            }
        }
    }
    if out.is_empty() {
        if let Some(name) = loader.find_symbol(addr) {
            out.push(A2lFrame {
                function: addr2line::demangle_auto(Cow::Borrowed(name), None),
                file: None,
                line: None,
                column: None,
            });
        }
    }
    out
}
