//! `readelf --debug-dump=frames-interp`, parsed into the rules this unwinder follows:
//! the independent reference the compiled tables are checked against.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use coolbpf_symbolize::unwind::{CfaRule, RbpRule};

/// One row of readelf's table: `[start, end)` unwinds by these rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefRow {
    pub start: u64,
    pub end: u64,
    /// readelf's CFA column as printed (`rsp+8`, `exp`, ...).
    pub cfa_text: String,
    pub cfa: CfaRule,
    pub rbp: RbpRule,
}

/// The FDEs of one CFI section, in section order, each as its rows.
#[derive(Debug, Default)]
pub struct RefSection {
    pub fdes: Vec<(u64, u64, Vec<RefRow>)>,
}

/// `.eh_frame` and `.debug_frame` as readelf interprets them.
#[derive(Debug, Default)]
pub struct RefFrames {
    pub eh_frame: RefSection,
    pub debug_frame: RefSection,
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text, 16).unwrap_or_else(|_| panic!("not hex: {text}"))
}

/// The rules a row's columns say, the way the unwinder reads them: a return address
/// other than `c-8` is not followed, `u` for it ends the walk; rbp `c-N` is saved, no
/// column, `u` or `s` leaves it unchanged.
fn rules(cfa_text: &str, ra: Option<&str>, rbp: Option<&str>) -> (CfaRule, RbpRule) {
    match ra {
        Some("u") => return (CfaRule::Undefined, RbpRule::Unchanged),
        Some("c-8") => {}
        _ => return (CfaRule::Unsupported, RbpRule::Unsupported),
    }
    let offset = |prefix: &str| cfa_text.strip_prefix(prefix).and_then(|n| n.parse().ok());
    let cfa = if let Some(n) = offset("rsp+") {
        CfaRule::Rsp(n)
    } else if let Some(n) = offset("rbp+") {
        CfaRule::Rbp(n)
    } else {
        // `exp` is the PLT's expression or another one: the caller decides by section.
        CfaRule::Unsupported
    };
    let rbp = match rbp {
        None | Some("u" | "s") => RbpRule::Unchanged,
        Some(text) => match text.strip_prefix("c-").and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => RbpRule::CfaOffset(-n),
            None => RbpRule::Unsupported,
        },
    };
    (cfa, rbp)
}

/// Runs readelf on `binary` and parses its tables.
pub fn frames(binary: &Path) -> RefFrames {
    let output = Command::new("readelf")
        .arg("--debug-dump=frames-interp")
        .arg(binary)
        .output()
        .expect("run readelf");
    // readelf 2.40 exits with 1 on Debian's libc while printing every table (it looks
    // for separate debug files that are not installed): the tables are what counts.
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Contents of the "),
        "readelf printed no CFI for {} ({})",
        binary.display(),
        output.status
    );
    parse(&text)
}

/// A row as readelf prints it: start, CFA column, `ra` column, `rbp` column.
type RawRow = (u64, String, Option<String>, Option<String>);

/// The entry whose table is being read.
enum Current {
    None,
    Cie(u64),
    Fde(usize),
}

/// readelf's output, read line by line.
#[derive(Default)]
struct Parser {
    frames: RefFrames,
    in_debug_frame: bool,
    /// (section is .debug_frame, CIE offset) -> its initial rows.
    cies: HashMap<(bool, u64), Vec<RawRow>>,
    /// (section is .debug_frame, FDE index, its CIE's offset).
    fde_cie: Vec<(bool, usize, u64)>,
    current: Option<Current>,
    columns: Vec<String>,
    pending: Vec<RawRow>,
}

impl Parser {
    fn section(&mut self, debug: bool) -> &mut RefSection {
        if debug {
            &mut self.frames.debug_frame
        } else {
            &mut self.frames.eh_frame
        }
    }

    /// Files the rows read so far with the entry they belong to.
    fn flush(&mut self) {
        let raw = std::mem::take(&mut self.pending);
        match self.current.take().unwrap_or(Current::None) {
            Current::None => {}
            Current::Cie(offset) => {
                self.cies.insert((self.in_debug_frame, offset), raw);
            }
            Current::Fde(index) => {
                let (_, end, rows) = &mut self.section(self.in_debug_frame).fdes[index];
                *rows = to_rows(&raw, *end);
            }
        }
        self.columns.clear();
    }

    fn entry(&mut self, fields: &[&str]) {
        self.flush();
        let offset = hex(fields[0]);
        if fields[3] == "CIE" {
            self.current = Some(Current::Cie(offset));
            return;
        }
        let cie = hex(fields[4].trim_start_matches("cie="));
        let range = fields[5].trim_start_matches("pc=");
        let (start, end) = range.split_once("..").expect("pc=START..END");
        let debug = self.in_debug_frame;
        let section = self.section(debug);
        section.fdes.push((hex(start), hex(end), Vec::new()));
        let index = section.fdes.len() - 1;
        self.fde_cie.push((debug, index, cie));
        self.current = Some(Current::Fde(index));
    }

    fn row(&mut self, fields: &[&str]) {
        // "in another register" prints as `r10 (r10)`: one column, two words.
        let mut merged: Vec<String> = Vec::new();
        for field in fields {
            match merged.last_mut() {
                Some(last) if field.starts_with('(') => {
                    last.push(' ');
                    last.push_str(field);
                }
                _ => merged.push((*field).to_owned()),
            }
        }
        let column = |name: &str| {
            self.columns
                .iter()
                .position(|c| c == name)
                .and_then(|i| merged.get(i))
                .cloned()
        };
        let row = (
            hex(&merged[0]),
            merged[1].clone(),
            column("ra"),
            column("rbp"),
        );
        self.pending.push(row);
    }

    fn line(&mut self, line: &str) {
        if line.starts_with("Contents of the ") {
            self.flush();
            self.in_debug_frame = line.contains(".debug_frame");
            return;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 4 && (fields[3] == "CIE" || fields[3] == "FDE") {
            self.entry(&fields);
        } else if fields.first() == Some(&"LOC") {
            self.columns = fields.iter().map(|s| (*s).to_owned()).collect();
        } else if fields.len() >= 2
            && fields[0].len() == 16
            && u64::from_str_radix(fields[0], 16).is_ok()
        {
            self.row(&fields);
        }
    }

    /// FDEs without instructions print no table: their CIE's initial row holds.
    fn finish(mut self) -> RefFrames {
        self.flush();
        for (debug, index, cie) in std::mem::take(&mut self.fde_cie) {
            let initial = self
                .cies
                .get(&(debug, cie))
                .and_then(|rows| rows.first())
                .cloned();
            let (start, end, rows) = &mut self.section(debug).fdes[index];
            if let (true, true, Some((_, cfa, ra, rbp))) = (rows.is_empty(), *start < *end, initial)
            {
                *rows = to_rows(&[(*start, cfa, ra, rbp)], *end);
            }
        }
        self.frames
    }
}

pub fn parse(text: &str) -> RefFrames {
    let mut parser = Parser::default();
    for line in text.lines() {
        parser.line(line);
    }
    parser.finish()
}

fn to_rows(raw: &[RawRow], end: u64) -> Vec<RefRow> {
    raw.iter()
        .enumerate()
        .map(|(i, (start, cfa_text, ra, rbp))| {
            let (cfa, rbp) = rules(cfa_text, ra.as_deref(), rbp.as_deref());
            RefRow {
                start: *start,
                end: raw.get(i + 1).map_or(end, |next| next.0),
                cfa_text: cfa_text.clone(),
                cfa,
                rbp,
            }
        })
        .filter(|row| row.start < row.end)
        .collect()
}
