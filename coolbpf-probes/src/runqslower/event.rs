//! The `struct runqslower_event` payload of runqslower.bpf.c, decoded.

use coolbpf_core::decode::Reader;
use coolbpf_core::{Event, FieldValue, Result};

// Offsets of struct runqslower_event (runqslower.bpf.c); the size check guards them.
const TS: usize = 0;
const DELAY_US: usize = 8;
const PID: usize = 16;
const TID: usize = 20;
const PREV_PID: usize = 24;
const PREV_TID: usize = 28;
const CPU: usize = 32;
const COMM: usize = 40;
const PREV_COMM: usize = 56;
const COMM_LEN: usize = 16;
const SIZE: usize = PREV_COMM + COMM_LEN;

/// One run-queue wait longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunqslowerEvent {
    /// Kernel monotonic time when the task got the CPU, ns.
    pub ts_ns: u64,
    /// How long it waited for the CPU, µs.
    pub delay_us: u64,
    /// The task that waited: process id (tgid).
    pub pid: u32,
    /// Its thread id.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// The task that had the CPU until then: process id (0 for the idle task).
    pub prev_pid: u32,
    /// Its thread id.
    pub prev_tid: u32,
    /// Its name.
    pub prev_comm: String,
    /// The CPU.
    pub cpu: u32,
}

impl RunqslowerEvent {
    /// Decodes one ring buffer payload.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, SIZE, "runqslower event")?;
        Ok(Self {
            ts_ns: r.u64(TS)?,
            delay_us: r.u64(DELAY_US)?,
            pid: r.u32(PID)?,
            tid: r.u32(TID)?,
            comm: r.c_str(COMM, COMM_LEN)?,
            prev_pid: r.u32(PREV_PID)?,
            prev_tid: r.u32(PREV_TID)?,
            prev_comm: r.c_str(PREV_COMM, COMM_LEN)?,
            cpu: r.u32(CPU)?,
        })
    }

    /// This wait in the common data model.
    pub fn to_event(&self) -> Event {
        Event::new(super::NAME, self.ts_ns)
            .with("pid", FieldValue::UInt(self.pid.into()))
            .with("tid", FieldValue::UInt(self.tid.into()))
            .with("comm", FieldValue::Str(self.comm.clone()))
            .with("delay_us", FieldValue::UInt(self.delay_us))
            .with("prev_pid", FieldValue::UInt(self.prev_pid.into()))
            .with("prev_tid", FieldValue::UInt(self.prev_tid.into()))
            .with("prev_comm", FieldValue::Str(self.prev_comm.clone()))
            .with("cpu", FieldValue::UInt(self.cpu.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_synthetic_payload() {
        let mut payload = vec![0u8; SIZE];
        payload[DELAY_US..DELAY_US + 8].copy_from_slice(&12_345u64.to_ne_bytes());
        payload[PID..PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        payload[TID..TID + 4].copy_from_slice(&43u32.to_ne_bytes());
        payload[PREV_PID..PREV_PID + 4].copy_from_slice(&7u32.to_ne_bytes());
        payload[COMM..COMM + 4].copy_from_slice(b"spin");
        payload[PREV_COMM..PREV_COMM + 16].copy_from_slice(b"0123456789abcdef");
        let event = RunqslowerEvent::decode(&payload).unwrap();
        assert_eq!((event.pid, event.tid, event.prev_pid), (42, 43, 7));
        assert_eq!((event.comm.as_str(), event.delay_us), ("spin", 12_345));
        assert_eq!(event.prev_comm, "0123456789abcdef", "no NUL: all 16 bytes");
        assert_eq!(
            event
                .to_event()
                .field("delay_us")
                .and_then(FieldValue::as_u64),
            Some(12_345)
        );
        assert!(RunqslowerEvent::decode(&payload[..SIZE - 1]).is_err());
    }
}
