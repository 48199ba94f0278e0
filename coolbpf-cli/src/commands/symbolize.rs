//! `coolbpf symbolize (--pid P | --elf PATH | --kernel) [--json] ADDR...`

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use coolbpf_core::{Error, Result};
use coolbpf_symbolize::{Frame, Source, Symbolized, Symbolizer};
use serde::Serialize;

/// Arguments of `coolbpf symbolize`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["pid", "elf", "kernel"])))]
pub struct SymbolizeArgs {
    /// Addresses in this running process.
    #[arg(long, value_name = "P")]
    pid: Option<u32>,
    /// Link-time addresses of this ELF file (as `nm` shows them).
    #[arg(long, value_name = "PATH")]
    elf: Option<PathBuf>,
    /// Addresses in the running kernel (from /proc/kallsyms).
    #[arg(long)]
    kernel: bool,
    /// JSON lines, one address per line.
    #[arg(long)]
    json: bool,
    /// Addresses: hex with 0x, or decimal.
    #[arg(value_name = "ADDR", required = true, value_parser = parse_addr)]
    addrs: Vec<u64>,
}

/// `0x`-prefixed hex, or decimal: what people paste from a stack dump or `nm`.
fn parse_addr(text: &str) -> std::result::Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| "expected an address: hex with 0x, or decimal".to_owned())
}

/// The library's errors in the command's terms, so `main` maps them to exit codes:
/// a missing process is "not found" (1), like `coolbpf run --pid`.
fn convert(err: coolbpf_symbolize::Error) -> Error {
    match err {
        coolbpf_symbolize::Error::NoSuchProcess { pid } => Error::NotFound {
            what: "process",
            name: pid.to_string(),
            known: Vec::new(),
        },
        coolbpf_symbolize::Error::Io { path, source } => Error::Io {
            context: path.display().to_string(),
            source,
        },
        coolbpf_symbolize::Error::Malformed { path, reason } => Error::Io {
            context: path.display().to_string(),
            source: io::Error::new(io::ErrorKind::InvalidData, reason),
        },
        coolbpf_symbolize::Error::InvalidArgument(why) => Error::InvalidArgument(why),
        other => Error::Decode(other.to_string()),
    }
}

/// Symbolizes the addresses and prints one record per address.
pub fn run(args: &SymbolizeArgs) -> Result<()> {
    let source = match (args.pid, &args.elf) {
        (Some(pid), _) => Source::process(pid),
        (None, Some(path)) => Source::elf(path),
        (None, None) => Source::kernel(),
    };
    let results = Symbolizer::new()
        .symbolize(&source, &args.addrs)
        .map_err(convert)?;
    let mut out = io::stdout().lock();
    for (&addr, result) in args.addrs.iter().zip(&results) {
        if args.json {
            writeln!(out, "{}", json_line(addr, result))
        } else {
            write_text(&mut out, addr, result)
        }
        .map_err(|source| Error::Io {
            context: "writing to stdout".into(),
            source,
        })?;
    }
    out.flush().map_err(|source| Error::Io {
        context: "writing to stdout".into(),
        source,
    })
}

/// One line of `--json`, its fields in the order the contract shows them.
#[derive(Serialize)]
struct JsonLine<'a> {
    addr: String,
    frames: Vec<JsonFrame<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A frame as `--json` shows it.
#[derive(Serialize)]
struct JsonFrame<'a> {
    function: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    column: Option<u32>,
    inlined: bool,
}

/// `{"addr":"0x...","frames":[...]}`, frames innermost first; `"reason"` when unknown.
fn json_line(addr: u64, result: &Symbolized) -> String {
    let frames = result
        .frames()
        .iter()
        .map(|f| JsonFrame {
            function: &f.function,
            file: f.file.as_deref(),
            line: f.line,
            column: f.column,
            inlined: f.inlined,
        })
        .collect();
    let reason = match result {
        Symbolized::Unknown(why) => Some(why.to_string()),
        Symbolized::Frames(_) => None,
    };
    let line = JsonLine {
        addr: format!("{addr:#x}"),
        frames,
        reason,
    };
    // Strings, integers and booleans only: serializing cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// `function+0xoff at file:line:col`, the location parts only as far as known.
fn describe(frame: &Frame) -> String {
    let mut text = format!("{}+{:#x}", frame.function, frame.offset);
    if let Some(file) = &frame.file {
        // A column without a line means nothing, so the parts stop at the first unknown.
        let numbers = [frame.line, frame.column].into_iter().map_while(|n| n);
        let parts: Vec<String> = std::iter::once(file.clone())
            .chain(numbers.map(|n| n.to_string()))
            .collect();
        text.push_str(" at ");
        text.push_str(&parts.join(":"));
    }
    text
}

/// The address with its real (non-inlined) function on one line, then the functions
/// inlined into it, indented, outermost first: the order in which they call each other.
fn write_text(out: &mut impl Write, addr: u64, result: &Symbolized) -> io::Result<()> {
    match result {
        Symbolized::Unknown(why) => writeln!(out, "{addr:#x} ?? ({why})"),
        Symbolized::Frames(frames) => match frames.split_last() {
            None => writeln!(out, "{addr:#x} ??"),
            Some((outer, inlined)) => {
                writeln!(out, "{addr:#x} {}", describe(outer))?;
                for frame in inlined.iter().rev() {
                    writeln!(out, "  inlined {}", describe(frame))?;
                }
                Ok(())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>, line: Option<u32>, inlined: bool) -> Frame {
        Frame {
            function: function.into(),
            raw_name: function.into(),
            offset: 0x10,
            file: file.map(Into::into),
            line,
            column: line.map(|_| 5),
            inlined,
        }
    }

    #[test]
    fn addresses_are_hex_or_decimal() {
        assert_eq!(parse_addr("0x1f"), Ok(31));
        assert_eq!(parse_addr("0XFF"), Ok(255));
        assert_eq!(parse_addr("31"), Ok(31));
        for bad in ["", "0x", "1f", "0xzz", "-1", "0x1ffffffffffffffff"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_puts_the_real_function_first_and_inlines_under_it() {
        let result = Symbolized::Frames(vec![
            frame("inner", Some("a.h"), Some(3), true),
            frame("middle", Some("a.h"), Some(9), true),
            frame("outer", Some("a.c"), Some(20), false),
        ]);
        let mut out = Vec::new();
        write_text(&mut out, 0x1234, &result).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0x1234 outer+0x10 at a.c:20:5\n  inlined middle+0x10 at a.h:9:5\n  \
             inlined inner+0x10 at a.h:3:5\n"
        );
        let mut out = Vec::new();
        write_text(
            &mut out,
            1,
            &Symbolized::Frames(vec![frame("f", None, None, false)]),
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "0x1 f+0x10\n");
    }

    #[test]
    fn json_keeps_innermost_first_and_gives_a_reason() {
        let result = Symbolized::Frames(vec![
            frame("inner", Some("a.h"), Some(3), true),
            frame("outer", Some("a.c"), None, false),
        ]);
        assert_eq!(
            json_line(0xff, &result),
            r#"{"addr":"0xff","frames":[{"function":"inner","file":"a.h","line":3,"column":5,"#
                .to_owned()
                + r#""inlined":true},{"function":"outer","file":"a.c","line":null,"column":null,"#
                + r#""inlined":false}]}"#
        );
        let unknown = json_line(
            1,
            &Symbolized::Unknown(coolbpf_symbolize::Unknown::Unmapped),
        );
        assert_eq!(
            unknown,
            r#"{"addr":"0x1","frames":[],"reason":"address is not mapped"}"#
        );
    }
}
