//! `/proc/PID/maps`: a pure parser over its text, so every quirk of the format is testable
//! without a process that has it.

use std::fmt;

/// One line of `/proc/PID/maps`: a range of the address space and what backs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapsEntry {
    /// First address of the range.
    pub start: u64,
    /// One past the last address of the range.
    pub end: u64,
    /// Access permissions.
    pub perms: Perms,
    /// Offset into the backing file of `start` (0 for anonymous memory).
    pub offset: u64,
    /// The backing file's device, as (major, minor).
    pub dev: (u32, u32),
    /// The backing file's inode (0 for anonymous memory).
    pub inode: u64,
    /// What backs the range.
    pub pathname: Pathname,
}

impl MapsEntry {
    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The offset into the backing file of `addr` (which must lie in the range for the
    /// result to mean anything; it saturates rather than wrapping otherwise).
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr.saturating_sub(self.start).saturating_add(self.offset)
    }

    /// The name of this mapping's entry in `/proc/PID/map_files`: the kernel lists them
    /// unpadded (`%lx-%lx`), unlike the zero-padded ranges of `maps` itself.
    pub fn map_files_name(&self) -> String {
        format!("{:x}-{:x}", self.start, self.end)
    }
}

/// The permission column (`r-xp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // Four independent bits, as the kernel prints them.
pub struct Perms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
    /// Shared (`s`) rather than private copy-on-write (`p`).
    pub shared: bool,
}

/// What backs a mapping, from the last column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pathname {
    /// A file, by the path the process sees (in its own mount namespace).
    File {
        /// The path, without the kernel's ` (deleted)` suffix.
        path: String,
        /// The file was unlinked after being mapped: its path now names nothing (or
        /// something else), but the mapping still reaches its bytes.
        deleted: bool,
    },
    /// Anonymous memory, with its name when the process gave one (`[anon:NAME]`).
    Anonymous(Option<String>),
    /// The main thread's heap (`[heap]`).
    Heap,
    /// A stack (`[stack]`, or `[stack:TID]` on old kernels).
    Stack,
    /// The vdso: an ELF image the kernel maps into every process.
    Vdso,
    /// Any other kernel-provided mapping (`[vvar]`, `[vsyscall]`, `anon_inode:...`).
    Other(String),
}

impl Pathname {
    fn parse(text: &str) -> Self {
        if text.is_empty() {
            return Self::Anonymous(None);
        }
        if text.starts_with('/') {
            return match text.strip_suffix(" (deleted)") {
                Some(path) => Self::File {
                    path: path.to_owned(),
                    deleted: true,
                },
                None => Self::File {
                    path: text.to_owned(),
                    deleted: false,
                },
            };
        }
        match text {
            "[heap]" => Self::Heap,
            "[stack]" => Self::Stack,
            "[vdso]" => Self::Vdso,
            _ if text.starts_with("[stack:") => Self::Stack,
            _ => match text
                .strip_prefix("[anon:")
                .and_then(|t| t.strip_suffix(']'))
            {
                Some(name) => Self::Anonymous(Some(name.to_owned())),
                None => Self::Other(text.to_owned()),
            },
        }
    }

    /// Whether the range is plain memory with no file behind it (where JIT code lives).
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous(_) | Self::Heap | Self::Stack)
    }
}

/// A line of `maps` that does not have the kernel's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct MapsParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: &'static str,
    /// The line itself.
    pub text: String,
}

/// Parses the text of `/proc/PID/maps`. Entries come back sorted by start address.
pub fn parse_maps(text: &str) -> Result<Vec<MapsEntry>, MapsParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = parse_line(line).map_err(|reason| MapsParseError {
            line: index + 1,
            reason,
            text: line.to_owned(),
        })?;
        entries.push(entry);
    }
    // The kernel already lists them in order; sorting keeps lookups correct on any input.
    entries.sort_by_key(|e| e.start);
    Ok(entries)
}

/// Splits off the next whitespace-separated field.
fn field<'a>(rest: &mut &'a str, what: &'static str) -> Result<&'a str, &'static str> {
    let trimmed = rest.trim_start();
    let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    let (value, tail) = trimmed.split_at(end);
    *rest = tail;
    if value.is_empty() {
        Err(what)
    } else {
        Ok(value)
    }
}

fn hex(text: &str, what: &'static str) -> Result<u64, &'static str> {
    u64::from_str_radix(text, 16).map_err(|_| what)
}

fn parse_line(line: &str) -> Result<MapsEntry, &'static str> {
    let mut rest = line;
    let range = field(&mut rest, "missing address range")?;
    let (start, end) = range.split_once('-').ok_or("bad address range")?;
    let (start, end) = (
        hex(start, "bad start address")?,
        hex(end, "bad end address")?,
    );
    if end < start {
        return Err("range ends before it starts");
    }
    let perms = parse_perms(field(&mut rest, "missing permissions")?)?;
    let offset = hex(field(&mut rest, "missing offset")?, "bad offset")?;
    let dev = field(&mut rest, "missing device")?;
    let (major, minor) = dev.split_once(':').ok_or("bad device")?;
    let major = u32::from_str_radix(major, 16).map_err(|_| "bad device major")?;
    let minor = u32::from_str_radix(minor, 16).map_err(|_| "bad device minor")?;
    let inode = field(&mut rest, "missing inode")?
        .parse()
        .map_err(|_| "bad inode")?;
    // The path is everything after the padding, spaces included; only the padding the
    // kernel adds before it is dropped.
    let pathname = Pathname::parse(rest.trim_start());
    Ok(MapsEntry {
        start,
        end,
        perms,
        offset,
        dev: (major, minor),
        inode,
        pathname,
    })
}

fn parse_perms(text: &str) -> Result<Perms, &'static str> {
    let bytes = text.as_bytes();
    if bytes.len() != 4 {
        return Err("bad permissions");
    }
    let flag = |i: usize, set: u8| match bytes[i] {
        b'-' => Ok(false),
        b if b == set => Ok(true),
        _ => Err("bad permissions"),
    };
    Ok(Perms {
        read: flag(0, b'r')?,
        write: flag(1, b'w')?,
        execute: flag(2, b'x')?,
        shared: match bytes[3] {
            b's' => true,
            b'p' => false,
            _ => return Err("bad permissions"),
        },
    })
}

impl fmt::Display for Pathname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File {
                path,
                deleted: false,
            } => f.write_str(path),
            Self::File {
                path,
                deleted: true,
            } => write!(f, "{path} (deleted)"),
            Self::Anonymous(None) => f.write_str("[anonymous]"),
            Self::Anonymous(Some(name)) => write!(f, "[anon:{name}]"),
            Self::Heap => f.write_str("[heap]"),
            Self::Stack => f.write_str("[stack]"),
            Self::Vdso => f.write_str("[vdso]"),
            Self::Other(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
55c8c733d000-55c8c7342000 r-xp 00002000 fe:00 247030                     /usr/bin/cat
55c8d03f1000-55c8d0412000 rw-p 00000000 00:00 0                          [heap]
7fdb955c4000-7fdb955e6000 rw-p 00000000 00:00 0 
7fdb9566f000-7fdb957c5000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7fdb9582c000-7fdb95833000 r--s 00000000 fe:00 325745                     /opt/my app/lib x.so (deleted)
7fdb95836000-7fdb9583a000 r--p 00000000 00:00 0                          [vvar]
7fdb9583c000-7fdb9583e000 r-xp 00000000 00:00 0                          [vdso]
7fdb9583e000-7fdb9583f000 rw-p 00000000 00:00 0                          [anon:jit code]
7ffe27841000-7ffe27862000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_every_kind_of_line() {
        let entries = parse_maps(SAMPLE).unwrap();
        assert_eq!(entries.len(), 10);
        let cat = &entries[0];
        assert_eq!(
            (cat.start, cat.end, cat.offset),
            (0x55c8_c733_d000, 0x55c8_c734_2000, 0x2000)
        );
        assert_eq!(
            cat.perms,
            Perms {
                read: true,
                write: false,
                execute: true,
                shared: false
            }
        );
        assert_eq!((cat.dev, cat.inode), ((0xfe, 0), 247_030));
        assert_eq!(
            cat.pathname,
            Pathname::File {
                path: "/usr/bin/cat".into(),
                deleted: false
            }
        );
        assert_eq!(entries[1].pathname, Pathname::Heap);
        assert_eq!(entries[2].pathname, Pathname::Anonymous(None));
        assert_eq!(
            entries[4].pathname,
            Pathname::File {
                path: "/opt/my app/lib x.so".into(),
                deleted: true
            }
        );
        assert!(entries[4].perms.shared);
        assert_eq!(entries[5].pathname, Pathname::Other("[vvar]".into()));
        assert_eq!(entries[6].pathname, Pathname::Vdso);
        assert_eq!(
            entries[7].pathname,
            Pathname::Anonymous(Some("jit code".into()))
        );
        assert_eq!(entries[8].pathname, Pathname::Stack);
        assert_eq!(entries[9].pathname, Pathname::Other("[vsyscall]".into()));
        assert_eq!(entries[9].end, 0xffff_ffff_ff60_1000);
    }

    #[test]
    fn offsets_and_map_files_names() {
        let entries = parse_maps(SAMPLE).unwrap();
        let libc = &entries[3];
        assert!(libc.contains(0x7fdb_9566_f010) && !libc.contains(libc.end));
        assert_eq!(libc.file_offset(0x7fdb_9566_f010), 0x26010);
        assert_eq!(libc.map_files_name(), "7fdb9566f000-7fdb957c5000");
        let padded = parse_maps("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x").unwrap();
        assert_eq!(padded[0].map_files_name(), "400000-452000");
    }

    #[test]
    fn unsorted_input_comes_back_sorted() {
        let text = "2000-3000 r--p 0 00:00 0\n1000-2000 r--p 0 00:00 0\n";
        let starts: Vec<u64> = parse_maps(text).unwrap().iter().map(|e| e.start).collect();
        assert_eq!(starts, [0x1000, 0x2000]);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        for (text, reason) in [
            ("zzzz-1000 r--p 0 00:00 0", "bad start address"),
            ("1000 r--p 0 00:00 0", "bad address range"),
            ("2000-1000 r--p 0 00:00 0", "range ends before it starts"),
            ("1000-2000 rwxq 0 00:00 0", "bad permissions"),
            ("1000-2000 r--p 0 0000 0", "bad device"),
            ("1000-2000 r--p 0 00:00", "missing inode"),
            ("1000-2000 r--p 0 00:00 x1", "bad inode"),
            ("1000-2000", "missing permissions"),
        ] {
            let err = parse_maps(&format!("1-2 r--p 0 00:00 0\n{text}\n")).unwrap_err();
            assert_eq!((err.line, err.reason), (2, reason), "{text}");
        }
    }

    #[test]
    fn blank_and_empty_input() {
        assert!(parse_maps("").unwrap().is_empty());
        assert!(parse_maps("\n  \n").unwrap().is_empty());
    }
}
