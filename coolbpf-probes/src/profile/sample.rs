//! The `struct profile_sample` record of profile.bpf.c, decoded.

use coolbpf_core::decode::Reader;
use coolbpf_core::{Error, Result};
use coolbpf_symbolize::Sample;

use crate::stacks::python::{decode_frames, FRAME_BYTES};

// Offsets of struct profile_sample (profile.bpf.c). The BPF side sends the header and only
// the frames it captured, so a record is HEADER + 8 * (kernel + user frames) bytes, then
// FRAME_BYTES per Python frame.
const TS: usize = 0;
const PID: usize = 8;
const TID: usize = 12;
const KERNEL_FRAMES: usize = 20;
const USER_FRAMES: usize = 22;
const COMM: usize = 24;
const COMM_LEN: usize = 16;
const PYTHON_FRAMES: usize = COMM + COMM_LEN;
const HEADER: usize = PYTHON_FRAMES + 8;

/// The deepest stack the BPF side captures, per half (kernel, user).
pub const MAX_DEPTH: usize = 127;
/// The most Python frames one sample carries (`COOLBPF_PYTHON_MAX_FRAMES`).
pub const MAX_PYTHON_FRAMES: usize = 128;

/// One sample as the kernel sent it: a [`Sample`] of weight 1 and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSample {
    /// Kernel monotonic time of the sample, ns.
    pub(crate) ts_ns: u64,
    /// The stack, weight 1.
    pub(crate) sample: Sample,
}

impl RawSample {
    /// Decodes one ring buffer record; a record whose frame counts disagree with its
    /// length is an error (counted by the stream as a decode error), never a panic.
    pub(crate) fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, HEADER, "profile sample")?;
        let frames = |offset| {
            r.bytes(offset, 2)
                .map(|b| usize::from(u16::from_ne_bytes([b[0], b[1]])))
        };
        let (kernel, user) = (frames(KERNEL_FRAMES)?, frames(USER_FRAMES)?);
        let python = frames(PYTHON_FRAMES)?;
        let ips_end = HEADER + 8 * (kernel + user);
        if kernel > MAX_DEPTH
            || user > MAX_DEPTH
            || python > MAX_PYTHON_FRAMES
            || payload.len() != ips_end + FRAME_BYTES * python
        {
            return Err(Error::Decode(format!(
                "profile sample: {} bytes cannot hold {kernel} kernel, {user} user and \
                 {python} Python frames",
                payload.len()
            )));
        }
        let ips = |first: usize, count: usize| -> Result<Vec<u64>> {
            (first..first + count)
                .map(|i| r.u64(HEADER + 8 * i))
                .collect()
        };
        Ok(Self {
            ts_ns: r.u64(TS)?,
            sample: Sample {
                pid: r.u32(PID)?,
                tid: r.u32(TID)?,
                comm: r.c_str(COMM, COMM_LEN)?,
                kernel_ips: ips(0, kernel)?,
                user_ips: ips(kernel, user)?,
                python: decode_frames(&payload[ips_end..]),
                weight: 1,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kernel: &[u64], user: &[u64], python: &[(u64, u32, u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend(7u64.to_ne_bytes());
        bytes.extend(42u32.to_ne_bytes());
        bytes.extend(43u32.to_ne_bytes());
        bytes.extend(1u32.to_ne_bytes());
        bytes.extend((kernel.len() as u16).to_ne_bytes());
        bytes.extend((user.len() as u16).to_ne_bytes());
        bytes.extend(b"burn\0\0\0\0\0\0\0\0\0\0\0\0");
        bytes.extend((python.len() as u16).to_ne_bytes());
        bytes.extend([0; 6]);
        for ip in kernel.iter().chain(user) {
            bytes.extend(ip.to_ne_bytes());
        }
        for &(code, offset, flags) in python {
            bytes.extend(code.to_ne_bytes());
            bytes.extend(offset.to_ne_bytes());
            bytes.extend(flags.to_ne_bytes());
        }
        bytes
    }

    #[test]
    fn decodes_both_halves() {
        let raw = RawSample::decode(&record(&[0x1_ffff, 0x2_ffff], &[0x10], &[])).unwrap();
        assert_eq!(raw.ts_ns, 7);
        assert_eq!(
            raw.sample,
            Sample {
                pid: 42,
                tid: 43,
                comm: "burn".into(),
                kernel_ips: vec![0x1_ffff, 0x2_ffff],
                python: Vec::new(),
                user_ips: vec![0x10],
                weight: 1,
            }
        );
        assert!(RawSample::decode(&record(&[], &[], &[])).is_ok());
    }

    #[test]
    fn python_frames_follow_the_ips() {
        let raw = RawSample::decode(&record(&[1], &[2], &[(0x40, 8, 1), (0x50, 2, 0)])).unwrap();
        let python: Vec<(u64, u32, bool)> = raw
            .sample
            .python
            .iter()
            .map(|f| (f.code, f.offset, f.entry))
            .collect();
        assert_eq!(python, [(0x40, 8, true), (0x50, 2, false)]);
        assert_eq!(raw.sample.user_ips, [2]);
        let bytes = record(&[1], &[2], &[(0x40, 8, 1)]);
        assert!(RawSample::decode(&bytes[..bytes.len() - 4]).is_err());
    }

    #[test]
    fn inconsistent_records_are_errors() {
        let mut long = record(&[1], &[2], &[]);
        long.extend([0; 8]);
        assert!(RawSample::decode(&long).is_err());
        let short = record(&[1], &[2], &[]);
        assert!(RawSample::decode(&short[..short.len() - 1]).is_err());
        assert!(RawSample::decode(&[0; 10]).is_err());
        let mut deep = record(&[], &[], &[]);
        deep[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert!(RawSample::decode(&deep).is_err());
    }
}
