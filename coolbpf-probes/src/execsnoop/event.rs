//! The `struct exec_event` payload of execsnoop.bpf.c, decoded.

use coolbpf_core::decode::{split_nul_separated, Reader};
use coolbpf_core::{Event, FieldValue, Result};

// Offsets of struct exec_event (execsnoop.bpf.c); the size check below guards them.
const TS: usize = 0;
const PID: usize = 8;
const TID: usize = 12;
const PPID: usize = 16;
const UID: usize = 20;
const COMM: usize = 24;
const COMM_LEN: usize = 16;
const ARGS_SIZE: usize = 40;
const ARGS_TRUNCATED: usize = 44;
const FILENAME: usize = 48;
const FILENAME_LEN: usize = 256;
const ARGS: usize = FILENAME + FILENAME_LEN;
const ARGS_LEN: usize = 2048;
const SIZE: usize = ARGS + ARGS_LEN;

/// One successful exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// Kernel monotonic time of the exec, ns.
    pub ts_ns: u64,
    /// Process id (tgid) after the exec.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// The new program's task name.
    pub comm: String,
    /// The path passed to exec.
    pub filename: String,
    /// argv, as the new program sees it.
    pub args: Vec<String>,
    /// Whether argv was longer than the probe copies (2 KiB).
    pub args_truncated: bool,
}

impl ExecEvent {
    /// Decodes one ring buffer payload.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, SIZE, "execsnoop event")?;
        let args_size = (r.u32(ARGS_SIZE)? as usize).min(ARGS_LEN);
        Ok(Self {
            ts_ns: r.u64(TS)?,
            pid: r.u32(PID)?,
            tid: r.u32(TID)?,
            ppid: r.u32(PPID)?,
            uid: r.u32(UID)?,
            comm: r.c_str(COMM, COMM_LEN)?,
            filename: r.c_str(FILENAME, FILENAME_LEN)?,
            args: split_nul_separated(r.bytes(ARGS, args_size)?),
            args_truncated: r.u32(ARGS_TRUNCATED)? != 0,
        })
    }

    /// This exec in the common data model.
    pub fn to_event(&self) -> Event {
        Event::new(super::NAME, self.ts_ns)
            .with("pid", FieldValue::UInt(self.pid.into()))
            .with("ppid", FieldValue::UInt(self.ppid.into()))
            .with("uid", FieldValue::UInt(self.uid.into()))
            .with("comm", FieldValue::Str(self.comm.clone()))
            .with("filename", FieldValue::Str(self.filename.clone()))
            .with("args", FieldValue::StrList(self.args.clone()))
            .with(
                "args_truncated",
                FieldValue::UInt(self.args_truncated.into()),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_synthetic_payload() {
        let mut payload = vec![0u8; SIZE];
        payload[TS..TS + 8].copy_from_slice(&7u64.to_ne_bytes());
        payload[PID..PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        payload[PPID..PPID + 4].copy_from_slice(&1u32.to_ne_bytes());
        payload[COMM..COMM + 4].copy_from_slice(b"true");
        payload[FILENAME..FILENAME + 9].copy_from_slice(b"/bin/true");
        let args = b"/bin/true\0x\0";
        payload[ARGS..ARGS + args.len()].copy_from_slice(args);
        payload[ARGS_SIZE..ARGS_SIZE + 4].copy_from_slice(&(args.len() as u32).to_ne_bytes());
        let event = ExecEvent::decode(&payload).unwrap();
        assert_eq!(
            (event.pid, event.ppid, event.comm.as_str()),
            (42, 1, "true")
        );
        assert_eq!(event.filename, "/bin/true");
        assert_eq!(event.args, vec!["/bin/true", "x"]);
        assert!(ExecEvent::decode(&payload[..100]).is_err());
    }
}
