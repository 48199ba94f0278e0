//! How the test programs are built: by language, plain and with split DWARF.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{program, run, split};

/// How one language's test program is built.
pub struct Language {
    /// Test name and temp dir name.
    pub name: &'static str,
    pub compiler: &'static str,
    pub source: &'static str,
    /// Arguments before `-o OUT SOURCE`.
    pub flags: &'static [&'static str],
    /// Extra arguments for compressed debug sections.
    pub gz_flags: &'static [&'static str],
    /// Which functions (by raw symbol name) are the program's own.
    pub wanted: fn(&str) -> bool,
    /// Split DWARF builds.
    pub split: &'static [Split],
}

/// A split DWARF build of a test program.
pub struct Split {
    /// Variant name.
    pub name: &'static str,
    /// Compiler flags that split the DWARF off.
    pub flags: &'static [&'static str],
    /// Whether the compiler packs a `.dwp` itself (rustc's `packed`).
    pub packed: bool,
}

/// Split DWARF as GCC and clang make it: DWARF 5, and GNU's extension to DWARF 4.
pub const SPLIT_C: &[Split] = &[
    Split {
        name: "split-dwarf5",
        flags: &["-gsplit-dwarf", "-gdwarf-5"],
        packed: false,
    },
    Split {
        name: "split-dwarf4",
        flags: &["-gsplit-dwarf", "-gdwarf-4"],
        packed: false,
    },
];

impl Language {
    /// Builds the program as `out`, with `extra` flags.
    pub fn build(&self, out: &Path, extra: &[&str]) {
        let mut args: Vec<OsString> = self.flags.iter().map(OsString::from).collect();
        args.extend(extra.iter().map(OsString::from));
        args.extend([
            OsString::from("-o"),
            out.into(),
            program(self.source).into(),
        ]);
        run(self.compiler, args);
    }

    /// The split DWARF build `split` as `dir/prog`, its split files in `dir`.
    pub fn build_split(&self, dir: &Path, split: &Split) -> PathBuf {
        let source = program(self.source);
        if self.compiler == "rustc" {
            split::build_rustc(self.flags, split.flags, &source, dir)
        } else {
            split::build_objects(self.compiler, self.flags, split.flags, &source, dir)
        }
    }
}
