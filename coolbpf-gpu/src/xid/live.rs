//! The `struct xid_line` payload of xid.bpf.c, decoded.

use coolbpf_core::decode::Reader;
use coolbpf_core::Result;

// Offsets of struct xid_line (xid.bpf.c); the size check in `decode` guards them.
const TS: usize = 0;
const LEN: usize = 8;
const TRUNCATED: usize = 12;
const TEXT: usize = 16;
const TEXT_MAX: usize = 1024;
const SIZE: usize = TEXT + TEXT_MAX;

/// A log line as the BPF program sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLine {
    /// When printk handled it (`bpf_ktime_get_ns`, the monotonic clock).
    pub ts_ns: u64,
    /// Its text (invalid UTF-8 replaced).
    pub text: String,
    /// Whether it was longer than the probe copies (1 KiB, printk's own limit).
    pub truncated: bool,
}

impl LiveLine {
    /// Decodes one ring buffer payload.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, SIZE, "xid line")?;
        let len = (r.u32(LEN)? as usize).min(TEXT_MAX);
        Ok(Self {
            ts_ns: r.u64(TS)?,
            text: String::from_utf8_lossy(r.bytes(TEXT, len)?).into_owned(),
            truncated: r.u32(TRUNCATED)? != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_synthetic_payload() {
        let mut payload = vec![0u8; SIZE];
        payload[TS..TS + 8].copy_from_slice(&7u64.to_ne_bytes());
        let text = b"NVRM: Xid (PCI:0000:3b:00): 79";
        payload[LEN..LEN + 4].copy_from_slice(&(text.len() as u32).to_ne_bytes());
        payload[TEXT..TEXT + text.len()].copy_from_slice(text);
        let line = LiveLine::decode(&payload).unwrap();
        assert_eq!(
            (line.ts_ns, line.text.as_bytes(), line.truncated),
            (7, &text[..], false)
        );
        // A length beyond the buffer is clamped, a short payload refused.
        payload[LEN..LEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(LiveLine::decode(&payload).unwrap().text.len(), TEXT_MAX);
        assert!(LiveLine::decode(&payload[..100]).is_err());
    }
}
