//! The `struct nosched_event` payload of nosched.bpf.c, decoded, and its symbolization.

use coolbpf_core::decode::Reader;
use coolbpf_core::{Event, FieldValue, Result};
use coolbpf_symbolize::{Source, Symbolizer};

// Offsets of struct nosched_event (nosched.bpf.c); the size check guards them.
const TS: usize = 0;
const DURATION: usize = 8;
const PID: usize = 16;
const TID: usize = 20;
const CPU: usize = 24;
const STACK_BYTES: usize = 28;
const COMM: usize = 32;
const COMM_LEN: usize = 16;
const STACK: usize = COMM + COMM_LEN;
const STACK_LEN: usize = 127 * 8;
const SIZE: usize = STACK + STACK_LEN;

/// A task found in kernel mode, without rescheduling, for longer than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoschedEvent {
    /// Kernel monotonic time of the sample that found it, ns.
    pub ts_ns: u64,
    /// How long it had been in the kernel without rescheduling by then, ns (a lower
    /// bound: it may stay longer; exact to the sampling period).
    pub duration_ns: u64,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Task name.
    pub comm: String,
    /// The CPU it ran on.
    pub cpu: u32,
    /// The kernel stack it was sampled in, innermost first.
    pub kernel_ips: Vec<u64>,
}

impl NoschedEvent {
    /// Decodes one ring buffer payload.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, SIZE, "nosched event")?;
        let stack_bytes = (r.u32(STACK_BYTES)? as usize).min(STACK_LEN);
        let kernel_ips = r
            .bytes(STACK, stack_bytes)?
            .chunks_exact(8)
            .filter_map(|word| word.try_into().ok().map(u64::from_ne_bytes))
            .take_while(|&ip| ip != 0)
            .collect();
        Ok(Self {
            ts_ns: r.u64(TS)?,
            duration_ns: r.u64(DURATION)?,
            pid: r.u32(PID)?,
            tid: r.u32(TID)?,
            comm: r.c_str(COMM, COMM_LEN)?,
            cpu: r.u32(CPU)?,
            kernel_ips,
        })
    }

    /// The kernel stack's function names, root first (`[unknown]` where there is none).
    /// Callers' return addresses are looked up one byte back, at the call.
    pub fn stack_names(&self, symbolizer: &Symbolizer) -> Vec<String> {
        let addrs: Vec<u64> = self
            .kernel_ips
            .iter()
            .enumerate()
            .map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
            .collect();
        let names = symbolizer
            .symbolize(&Source::kernel(), &addrs)
            .unwrap_or_default();
        let mut out: Vec<String> = (0..addrs.len())
            .map(|i| {
                names
                    .get(i)
                    .and_then(|s| s.function())
                    .unwrap_or("[unknown]")
                    .to_owned()
            })
            .collect();
        out.reverse();
        out
    }

    /// This finding in the common data model; `stack` is root first.
    pub fn to_event(&self, stack: Vec<String>) -> Event {
        Event::new(super::NAME, self.ts_ns)
            .with("pid", FieldValue::UInt(self.pid.into()))
            .with("tid", FieldValue::UInt(self.tid.into()))
            .with("comm", FieldValue::Str(self.comm.clone()))
            .with("cpu", FieldValue::UInt(self.cpu.into()))
            .with("duration_us", FieldValue::UInt(self.duration_ns / 1000))
            .with("stack", FieldValue::StrList(stack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_synthetic_payload() {
        let mut payload = vec![0u8; SIZE];
        payload[DURATION..DURATION + 8].copy_from_slice(&15_000_000u64.to_ne_bytes());
        payload[PID..PID + 4].copy_from_slice(&42u32.to_ne_bytes());
        payload[COMM..COMM + 2].copy_from_slice(b"dd");
        payload[STACK_BYTES..STACK_BYTES + 4].copy_from_slice(&24u32.to_ne_bytes());
        for (i, ip) in [0xffff_ffff_8100_0010u64, 0xffff_ffff_8100_0020, 0]
            .iter()
            .enumerate()
        {
            payload[STACK + 8 * i..STACK + 8 * i + 8].copy_from_slice(&ip.to_ne_bytes());
        }
        let event = NoschedEvent::decode(&payload).unwrap();
        assert_eq!((event.pid, event.comm.as_str()), (42, "dd"));
        assert_eq!(
            event.kernel_ips,
            vec![0xffff_ffff_8100_0010, 0xffff_ffff_8100_0020]
        );
        let fields = event.to_event(vec!["a".into()]);
        assert_eq!(
            fields.field("duration_us").and_then(FieldValue::as_u64),
            Some(15_000)
        );
        // A stack size beyond the array is clamped, not trusted.
        payload[STACK_BYTES..STACK_BYTES + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(NoschedEvent::decode(&payload).is_ok());
        assert!(NoschedEvent::decode(&payload[..SIZE - 8]).is_err());
    }
}
