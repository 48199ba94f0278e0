//! The text of an Xid line, taken apart.
//!
//! The driver has printed several shapes over the years; all of these parse:
//!
//! ```text
//! NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus.
//! NVRM: Xid (PCI:0000:3b:00 GPU-I:05 GPU-CI:01): 48, pid=77, name=train, DBE (...)
//! NVRM: Xid (PCI:0000:00:1e): 13, pid='<unknown>', name=<unknown>, Graphics Exception ...
//! NVRM: Xid (PCI:0000:02:00): 79, GPU has fallen off the bus.
//! NVRM: Xid (0000:03:00): 13, 0001 00000000 0000a1c0 00001b0c 0000003e 00000000
//! ```
//!
//! that is: `NVRM: Xid`, an optional parenthesised device (a PCI bus id with or without
//! `PCI:`, then optional MIG `GPU-I:` and `GPU-CI:` fields), `:`, the decimal code, then
//! optional `pid=` (a number or `<unknown>`, quoted or not) and `name=` fields, then the
//! driver's free text. Anything else is an error that says what was wrong, never a panic.

use coolbpf_core::{Error, Result};

/// What every Xid line contains.
pub const MARKER: &str = "NVRM: Xid";

/// [`MARKER`] must start within this many bytes of the line's start: the same rule the
/// BPF program (`XID_SCAN` in bpf/xid.bpf.c) applies to live lines, so that history and
/// live lines are chosen alike.
pub const MARKER_WINDOW: usize = 64;

/// Whether `line` is an Xid line by the probe's filter: [`MARKER`] starts within its
/// first [`MARKER_WINDOW`] bytes.
pub fn is_xid_line(line: &[u8]) -> bool {
    let marker = MARKER.as_bytes();
    let end = line.len().min(MARKER_WINDOW - 1 + marker.len());
    line[..end].windows(marker.len()).any(|w| w == marker)
}

/// One Xid line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidLine {
    /// The GPU's PCI bus id, normalized by [`normalize_bus_id`]; absent in lines that
    /// name no device.
    pub bus_id: Option<String>,
    /// The MIG GPU instance (`GPU-I:`), when the line names one.
    pub gpu_instance: Option<u32>,
    /// The MIG compute instance (`GPU-CI:`), when the line names one.
    pub compute_instance: Option<u32>,
    /// The Xid code.
    pub code: u32,
    /// The victim process, when the driver knew it (`pid=<unknown>` gives `None`).
    pub pid: Option<u32>,
    /// The victim's name, when given and known.
    pub name: Option<String>,
    /// The driver's free text after the fields (may be empty).
    pub text: String,
}

fn bad(line: &str, why: &str) -> Error {
    let shown: String = line.chars().take(200).collect();
    Error::Decode(format!("Xid line {shown:?}: {why}"))
}

/// Parses one line (an optional prefix before [`MARKER`] is ignored).
pub fn parse(line: &str) -> Result<XidLine> {
    let start = line
        .find(MARKER)
        .ok_or_else(|| bad(line, "no \"NVRM: Xid\" in it"))?;
    let mut rest = line[start + MARKER.len()..].trim_start();
    let mut parsed = XidLine {
        bus_id: None,
        gpu_instance: None,
        compute_instance: None,
        code: 0,
        pid: None,
        name: None,
        text: String::new(),
    };
    if let Some(inside) = rest.strip_prefix('(') {
        let close = inside
            .find(')')
            .ok_or_else(|| bad(line, "the device has no closing ')'"))?;
        parse_device(&inside[..close], &mut parsed).map_err(|why| bad(line, &why))?;
        rest = inside[close + 1..].trim_start();
    }
    rest = rest
        .strip_prefix(':')
        .ok_or_else(|| bad(line, "no ':' before the code"))?
        .trim_start();
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(bad(line, "no Xid code"));
    }
    parsed.code = rest[..digits]
        .parse()
        .map_err(|_| bad(line, "the Xid code does not fit in 32 bits"))?;
    rest = &rest[digits..];
    if !rest.trim().is_empty() {
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| bad(line, "no ',' after the code"))?
            .trim_start();
    }
    if let Some(after) = rest.strip_prefix("pid=") {
        let (value, tail) = field(after);
        parsed.pid = parse_pid(value).map_err(|why| bad(line, &why))?;
        rest = tail;
    }
    if let Some(after) = rest.strip_prefix("name=") {
        let (value, tail) = field(after);
        parsed.name = known(value).map(str::to_owned);
        rest = tail;
    }
    rest.trim_end().clone_into(&mut parsed.text);
    Ok(parsed)
}

/// Splits `pid=`/`name=`'s value off at the next comma; returns (value, what follows).
fn field(text: &str) -> (&str, &str) {
    match text.split_once(',') {
        Some((value, tail)) => (value.trim(), tail.trim_start()),
        None => (text.trim(), ""),
    }
}

/// `value` without quotes, or `None` when it says the driver did not know it.
fn known(value: &str) -> Option<&str> {
    let unquoted = value.trim_matches(|c| c == '\'' || c == '"');
    (!unquoted.is_empty() && unquoted != "<unknown>").then_some(unquoted)
}

fn parse_pid(value: &str) -> std::result::Result<Option<u32>, String> {
    match known(value) {
        None => Ok(None),
        Some(pid) if pid.bytes().all(|b| b.is_ascii_digit()) => pid
            .parse()
            .map(Some)
            .map_err(|_| format!("pid {pid} does not fit in 32 bits")),
        Some(pid) => Err(format!("pid {pid:?} is not a number")),
    }
}

fn parse_device(device: &str, parsed: &mut XidLine) -> std::result::Result<(), String> {
    let mut tokens = device
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .peekable();
    if tokens.peek().is_none() {
        return Err("the device is empty".into());
    }
    for token in tokens {
        if let Some(id) = token.strip_prefix("GPU-I:") {
            parsed.gpu_instance = Some(instance(id, "GPU-I")?);
        } else if let Some(id) = token.strip_prefix("GPU-CI:") {
            parsed.compute_instance = Some(instance(id, "GPU-CI")?);
        } else if parsed.bus_id.is_none() {
            parsed.bus_id = Some(normalize_bus_id(token).map_err(|e| e.to_string())?);
        } else {
            return Err(format!("unexpected {token:?} in the device"));
        }
    }
    Ok(())
}

fn instance(id: &str, what: &str) -> std::result::Result<u32, String> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}:{id} is not a number"));
    }
    id.parse()
        .map_err(|_| format!("{what}:{id} does not fit in 32 bits"))
}

/// A PCI bus id in the one form coolbpf uses, `dddd:bb:dd` in lower-case hex: accepts the
/// driver's `PCI:0000:3B:00`, the older `0000:3b:00`, a bare `3b:00`, and NVML's
/// `00000000:3B:00.0` (the function, always 0 for a GPU, is dropped). Domains above
/// `ffff` keep all their digits.
pub fn normalize_bus_id(id: &str) -> Result<String> {
    let invalid = |why: &str| Error::InvalidArgument(format!("PCI bus id {id:?}: {why}"));
    let plain = id
        .strip_prefix("PCI:")
        .or_else(|| id.strip_prefix("pci:"))
        .unwrap_or(id);
    let plain = plain
        .split_once('.')
        .map_or(plain, |(head, _function)| head);
    let parts: Vec<&str> = plain.split(':').collect();
    let (domain, bus, device) = match parts.as_slice() {
        [domain, bus, device] => (*domain, *bus, *device),
        [bus, device] => ("0", *bus, *device),
        _ => return Err(invalid("expected [domain:]bus:device")),
    };
    let hex = |text: &str, digits: usize, what: &str| -> Result<u32> {
        if text.is_empty() || text.len() > digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(&format!("bad {what} {text:?}")));
        }
        u32::from_str_radix(text, 16).map_err(|_| invalid(&format!("bad {what} {text:?}")))
    };
    let domain = hex(domain, 8, "domain")?;
    let bus = hex(bus, 2, "bus")?;
    let device = hex(device, 2, "device")?;
    if device > 0x1f {
        return Err(invalid("the device number is above 1f"));
    }
    Ok(format!("{domain:04x}:{bus:02x}:{device:02x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> XidLine {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    #[test]
    fn parses_the_current_format() {
        let x = ok(
            "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python3, GPU has fallen off the bus.",
        );
        assert_eq!(x.bus_id.as_deref(), Some("0000:3b:00"));
        assert_eq!(x.code, 79);
        assert_eq!(x.pid, Some(1234));
        assert_eq!(x.name.as_deref(), Some("python3"));
        assert_eq!(x.text, "GPU has fallen off the bus.");
        assert_eq!((x.gpu_instance, x.compute_instance), (None, None));
    }

    #[test]
    fn parses_mig_fields() {
        let x = ok("NVRM: Xid (PCI:0000:3B:00 GPU-I:05 GPU-CI:01): 48, pid=77, name=train, DBE");
        assert_eq!(x.bus_id.as_deref(), Some("0000:3b:00"));
        assert_eq!((x.gpu_instance, x.compute_instance), (Some(5), Some(1)));
        assert_eq!((x.code, x.pid, x.text.as_str()), (48, Some(77), "DBE"));
        let only_gi = ok("NVRM: Xid (PCI:0000:07:00 GPU-I:01): 45, pid=9, name=a, cleanup");
        assert_eq!(
            (only_gi.gpu_instance, only_gi.compute_instance),
            (Some(1), None)
        );
    }

    #[test]
    fn unknown_victims_are_absent() {
        let x = ok("NVRM: Xid (PCI:0000:00:1e): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address");
        assert_eq!((x.pid, x.name), (None, None));
        assert_eq!(x.code, 13);
        assert_eq!(
            x.text,
            "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address"
        );
        assert_eq!(
            ok("NVRM: Xid (PCI:0000:00:1e): 13, pid=<unknown>, x").pid,
            None
        );
    }

    #[test]
    fn parses_older_formats() {
        let old =
            ok("NVRM: Xid (0000:03:00): 13, 0001 00000000 0000a1c0 00001b0c 0000003e 00000000");
        assert_eq!(old.bus_id.as_deref(), Some("0000:03:00"));
        assert_eq!((old.code, old.pid, old.name.clone()), (13, None, None));
        assert_eq!(
            old.text,
            "0001 00000000 0000a1c0 00001b0c 0000003e 00000000"
        );
        let no_victim = ok("NVRM: Xid (PCI:0000:02:00): 79, GPU has fallen off the bus.\n");
        assert_eq!((no_victim.code, no_victim.pid), (79, None));
        assert_eq!(no_victim.text, "GPU has fallen off the bus.");
        let bare = ok("NVRM: Xid: 62, 0cb3(2f70) 00000000");
        assert_eq!((bare.bus_id, bare.code), (None, 62));
        let code_only = ok("NVRM: Xid (PCI:0000:02:00): 79");
        assert_eq!((code_only.code, code_only.text.as_str()), (79, ""));
        let pid_only = ok("NVRM: Xid (PCI:0000:02:00): 31, pid=5");
        assert_eq!(
            (pid_only.pid, pid_only.name, pid_only.text.as_str()),
            (Some(5), None, "")
        );
    }

    #[test]
    fn a_prefix_before_the_marker_is_ignored() {
        let x = ok("nvidia-test: NVRM: Xid (PCI:0000:3b:00): 94, pid=1, name=x, contained");
        assert_eq!(x.code, 94);
        assert!(is_xid_line(b"nvidia-test: NVRM: Xid (PCI:0000:3b:00): 94"));
    }

    #[test]
    fn the_filter_window_matches_the_bpf_side() {
        assert!(is_xid_line(b"NVRM: Xid"));
        assert!(!is_xid_line(b"NVRM: Xi"));
        assert!(!is_xid_line(b""));
        let mut line = vec![b' '; MARKER_WINDOW - 1];
        line.extend_from_slice(b"NVRM: Xid (");
        assert!(is_xid_line(&line));
        line.insert(0, b' ');
        assert!(!is_xid_line(&line), "starts one byte past the window");
        assert!(!is_xid_line(b"NVRM: GPU at PCI:0000:3b:00: GPU-1234"));
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for line in [
            "",
            "NVRM: Xid",
            "NVRM: Xid (",
            "NVRM: Xid (PCI:0000:3b:00",
            "NVRM: Xid (PCI:0000:3b:00)",
            "NVRM: Xid (PCI:0000:3b:00):",
            "NVRM: Xid (PCI:0000:3b:00): ",
            "NVRM: Xid (PCI:0000:3b:00): x, pid=1",
            "NVRM: Xid (PCI:0000:3b:00): 79x, pid=1",
            "NVRM: Xid (PCI:0000:3b:00): 99999999999999999999999, pid=1",
            "NVRM: Xid (PCI:0000:3b:00): 4294967296",
            "NVRM: Xid (PCI:0000:3b:00): 13, pid=99999999999, name=x, y",
            "NVRM: Xid (PCI:0000:3b:00): 13, pid=-1, name=x, y",
            "NVRM: Xid (PCI:0000:3b:00): 13, pid=12ab, name=x",
            "NVRM: Xid (): 13, x",
            "NVRM: Xid (garbage): 13, x",
            "NVRM: Xid (PCI:0000:3b:00 PCI:0000:3c:00): 13, x",
            "NVRM: Xid (PCI:0000:3b:00 GPU-I:x): 13, x",
            "NVRM: Xid (PCI:0000:3b:00 GPU-CI:99999999999): 13, x",
            "NVRM: Xid (PCI:zzzz:3b:00): 13, x",
            "NVRM: Xid (PCI:0000:3b:ff): 13, x",
            "NVRM: Xid (PCI:+000:3b:00): 13, x",
            "NVRM: Xid (PCI:000000000:3b:00): 13, x",
            "NVRM: Xid 13",
            "Xid (PCI:0000:3b:00): 13",
        ] {
            assert!(parse(line).is_err(), "{line:?} parsed");
        }
        let err = parse("NVRM: Xid (PCI:0000:3b:00): 79x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no ',' after the code"), "{err}");
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // Every prefix of real lines, and every single-byte change of one, in UTF-8 and not.
        let lines = [
            "NVRM: Xid (PCI:0000:3b:00 GPU-I:05 GPU-CI:01): 48, pid='<unknown>', name=x, é ü",
            "NVRM: Xid (0000:03:00): 13, 0001 00000000",
        ];
        for line in lines {
            for end in 0..=line.len() {
                if let Some(prefix) = line.get(..end) {
                    let _ = parse(prefix);
                }
            }
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                for b in [0u8, b'(', b')', b':', b',', b'=', 0xff, b'9'] {
                    let mut changed = bytes.to_vec();
                    changed[i] = b;
                    let text = String::from_utf8_lossy(&changed);
                    let _ = parse(&text);
                    let _ = is_xid_line(&changed);
                }
            }
        }
        let huge = format!("NVRM: Xid (PCI:0000:3b:00): 13, {}", "x".repeat(1 << 20));
        assert_eq!(parse(&huge).map(|x| x.text.len()).ok(), Some(1 << 20));
    }

    #[test]
    fn bus_ids_normalize_to_one_form() {
        for (id, want) in [
            ("PCI:0000:3B:00", "0000:3b:00"),
            ("0000:3b:00", "0000:3b:00"),
            ("3b:00", "0000:3b:00"),
            ("00000000:3B:00.0", "0000:3b:00"),
            ("0001:03:1f", "0001:03:1f"),
            ("10000:03:00", "10000:03:00"),
        ] {
            assert_eq!(normalize_bus_id(id).unwrap(), want, "{id}");
        }
        for id in [
            "",
            ":",
            "3b",
            "0000:3b:00:00",
            "0000:3b:",
            "g:00:00",
            "0000:100:00",
        ] {
            assert!(normalize_bus_id(id).is_err(), "{id:?}");
        }
    }
}
