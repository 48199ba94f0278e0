//! What "agree with llvm-symbolizer" means, address by address.
//!
//! An address agrees when both give the same number of frames (the inline chain has the
//! same length) and, frame by frame, innermost first:
//! - the same raw function name: ours is `Frame::raw_name`, llvm-symbolizer's is asked
//!   for with `--no-demangle`. Raw names, because demanglers format differently (LLVM
//!   writes a C++ lambda as `'lambda'(int)`, the GNU style cpp_demangle follows writes
//!   `{lambda(int)#1}`; LLVM keeps Rust's hash and `$LT$` escapes); demangling has unit
//!   tests of its own. Both name the outermost frame by the symbol table when a symbol
//!   covers the address, and DWARF otherwise; `??` (ours) and an empty name (LLVM's)
//!   both mean unknown;
//! - the same file, as the full path (compilation directory and include directory
//!   joined), compared as strings; unknown on both sides is equal;
//! - the same line, exactly (LLVM's 0 is our `None`);
//! - the same column (LLVM's 0 is our `None`).
//!
//! An address neither side knows anything about (ours `Unknown`, LLVM's a single frame
//! with no name, file or line) agrees too.

use coolbpf_symbolize::{Frame, Symbolized};

use super::RefFrame;

/// Agreement on one binary.
pub struct Report {
    pub name: String,
    pub total: usize,
    pub agree: usize,
    /// Addresses where llvm-symbolizer reports inlined frames, and the deepest chain.
    pub inlined: usize,
    pub max_depth: usize,
    pub disagreements: Vec<String>,
}

impl Report {
    /// Agreement in percent.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        self.agree as f64 * 100.0 / self.total as f64
    }

    /// Prints the percentage and up to 20 disagreements.
    pub fn print(&self) {
        eprintln!(
            "{}: {}/{} addresses agree with llvm-symbolizer ({:.2}%); {} in inlined code, \
             chains up to {} deep",
            self.name,
            self.agree,
            self.total,
            self.percent(),
            self.inlined,
            self.max_depth
        );
        for d in self.disagreements.iter().take(20) {
            eprintln!("  {d}");
        }
    }
}

/// Compares our results with llvm-symbolizer's for `addrs`.
pub fn compare(name: &str, addrs: &[u64], ours: &[Symbolized], llvm: &[Vec<RefFrame>]) -> Report {
    assert_eq!(ours.len(), addrs.len());
    let mut report = Report {
        name: name.to_owned(),
        total: addrs.len(),
        agree: 0,
        inlined: 0,
        max_depth: 0,
        disagreements: Vec::new(),
    };
    for ((addr, ours), llvm) in addrs.iter().zip(ours).zip(llvm) {
        let llvm: &[RefFrame] = if llvm.iter().all(is_nothing) {
            &[]
        } else {
            llvm
        };
        report.inlined += usize::from(llvm.len() > 1);
        report.max_depth = report.max_depth.max(llvm.len());
        let ours = ours.frames();
        let same = ours.len() == llvm.len() && ours.iter().zip(llvm).all(|(o, l)| same_frame(o, l));
        if same {
            report.agree += 1;
        } else {
            report.disagreements.push(format!(
                "{addr:#x}: ours [{}] llvm [{}]",
                ours.iter()
                    .map(describe_ours)
                    .collect::<Vec<_>>()
                    .join(" <- "),
                llvm.iter()
                    .map(describe_llvm)
                    .collect::<Vec<_>>()
                    .join(" <- ")
            ));
        }
    }
    report
}

fn is_nothing(f: &RefFrame) -> bool {
    f.function.is_empty() && f.file.is_empty() && f.line == 0
}

fn same_frame(ours: &Frame, llvm: &RefFrame) -> bool {
    let name = if ours.raw_name == "??" {
        ""
    } else {
        ours.raw_name.as_str()
    };
    name == llvm.function
        && ours.file.as_deref().unwrap_or("") == llvm.file
        && u64::from(ours.line.unwrap_or(0)) == llvm.line
        && u64::from(ours.column.unwrap_or(0)) == llvm.column
}

fn describe_ours(f: &Frame) -> String {
    format!(
        "{} {}:{}:{}",
        f.raw_name,
        f.file.as_deref().unwrap_or("?"),
        f.line.unwrap_or(0),
        f.column.unwrap_or(0)
    )
}

fn describe_llvm(f: &RefFrame) -> String {
    let file = if f.file.is_empty() { "?" } else { &f.file };
    format!("{} {}:{}:{}", f.function, file, f.line, f.column)
}
