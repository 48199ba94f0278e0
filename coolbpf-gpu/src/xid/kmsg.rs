//! The kernel log's history, read from `/dev/kmsg`.
//!
//! Opened non-blocking, `/dev/kmsg` hands out one record per `read`, oldest first, as
//! `PRIO,SEQ,TS_US,FLAGS[,...];MESSAGE\n` followed by optional ` KEY=VALUE\n` lines; the
//! message has its unprintable bytes (and `\` itself) escaped as `\xNN`. `EAGAIN` means
//! every record has been read; `EPIPE` means records were overwritten before this reader
//! got to them (the next `read` goes on with the oldest one left).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;

use coolbpf_core::{Error, Result};

use super::parse::is_xid_line;

/// The kernel log device.
pub const KMSG: &str = "/dev/kmsg";

/// Bigger than any record: the kernel refuses (`EINVAL`) reads into a buffer shorter
/// than its longest formatted record (8 KiB).
const RECORD_BUFFER: usize = 16 * 1024;

/// One record of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// The record's sequence number (consecutive unless records were lost).
    pub seq: u64,
    /// When it was logged: microseconds since boot (the kernel's `local_clock`).
    pub ts_us: u64,
    /// The message, unescaped (invalid UTF-8 replaced).
    pub message: String,
}

/// Parses one record as `read` returned it.
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord> {
    let bad = |why: &str| Error::Decode(format!("kmsg record: {why}"));
    let split = raw
        .iter()
        .position(|&b| b == b';')
        .ok_or_else(|| bad("no ';' after the header"))?;
    let header = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header is not text"))?;
    let mut fields = header.split(',');
    let mut number = |what: &str| -> Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad(&format!("bad {what} in {header:?}")))
    };
    let _prio = number("priority")?;
    let seq = number("sequence number")?;
    let ts_us = number("timestamp")?;
    let body = &raw[split + 1..];
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(KmsgRecord {
        seq,
        ts_us,
        message: String::from_utf8_lossy(&unescape(line)).into_owned(),
    })
}

/// Undoes the kernel's `\xNN` escapes; anything else stays as it is.
fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && text.get(i + 1) == Some(&b'x') {
            let digits = text
                .get(i + 2..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok());
            if let Some(byte) = digits.and_then(|d| u8::from_str_radix(d, 16).ok()) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// What one pass over the log saw besides its Xid records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KmsgStats {
    /// Records read (Xid or not).
    pub records: u64,
    /// Records overwritten before they could be read: the gaps in the sequence numbers
    /// after this reader's first record.
    pub lost: u64,
    /// Records that did not parse (none on a sane kernel).
    pub malformed: u64,
}

/// A reader of `/dev/kmsg`, positioned after the records it has read.
#[derive(Debug)]
pub struct Kmsg {
    file: File,
    buffer: Vec<u8>,
    /// The sequence number of the last record read.
    last_seq: Option<u64>,
}

impl Kmsg {
    /// Opens the log at its oldest record.
    pub fn open() -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(KMSG)
            .map_err(|source| Error::Io {
                context: format!(
                    "cannot open {KMSG} to read the kernel log's history \
                     (needs CAP_SYSLOG where kernel.dmesg_restrict=1; option history=false skips it)"
                ),
                source,
            })?;
        Ok(Self {
            file,
            buffer: vec![0; RECORD_BUFFER],
            last_seq: None,
        })
    }

    /// Reads every record logged so far that this reader has not read yet, appending the
    /// Xid lines (by [`is_xid_line`]) to `out`.
    pub fn read_xid_records(&mut self, out: &mut Vec<KmsgRecord>) -> Result<KmsgStats> {
        let mut stats = KmsgStats::default();
        loop {
            match self.file.read(&mut self.buffer) {
                Ok(0) => return Ok(stats),
                Ok(len) => {
                    stats.records += 1;
                    match parse_record(&self.buffer[..len]) {
                        Ok(record) => {
                            if let Some(last) = self.last_seq {
                                stats.lost += record.seq.saturating_sub(last + 1);
                            }
                            self.last_seq = Some(record.seq);
                            if is_xid_line(record.message.as_bytes()) {
                                out.push(record);
                            }
                        }
                        Err(_) => stats.malformed += 1,
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(stats),
                // EPIPE: records were overwritten; the next read goes on after them and
                // the gap in sequence numbers counts them.
                Err(err)
                    if err.kind() == ErrorKind::Interrupted
                        || err.raw_os_error() == Some(libc::EPIPE) => {}
                Err(source) => {
                    return Err(Error::Io {
                        context: format!("cannot read the kernel log from {KMSG}"),
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_record_with_escapes_and_a_dictionary() {
        let raw = b"4,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, back\\x5cslash\\x0a\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n";
        let record = parse_record(raw).unwrap();
        assert_eq!((record.seq, record.ts_us), (1234, 5_678_901));
        assert_eq!(
            record.message,
            "NVRM: Xid (PCI:0000:3b:00): 79, back\\slash\n"
        );
        let extra_fields = parse_record(b"6,7,8,c,caller=T1;hi\n").unwrap();
        assert_eq!((extra_fields.seq, extra_fields.message.as_str()), (7, "hi"));
    }

    #[test]
    fn malformed_records_are_errors() {
        for raw in [
            &b""[..],
            b"no header",
            b"4,x,5,-;msg",
            b"4,1;msg",
            b"\xff,1,2,-;msg",
            b";",
        ] {
            assert!(parse_record(raw).is_err(), "{raw:?}");
        }
        // Escapes cut short stay as they are.
        assert_eq!(unescape(b"a\\x4"), b"a\\x4");
        assert_eq!(unescape(b"\\xzz\\x41"), b"\\xzzA");
    }
}
