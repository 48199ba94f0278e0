//! What driver.bpf.c hands over: its ring buffer events and its in-flight table, decoded.

use coolbpf_core::decode::Reader;
use coolbpf_core::{Error, Result};

// Offsets of struct driver_event (driver.bpf.c); the size check in `decode` guards them.
const TYPE: usize = 0;
const TID: usize = 4;
const TGID: usize = 8;
const FD: usize = 12;
const DEVICE: usize = 16;
const CMD: usize = 24;
const ENTER: usize = 32;
const TS: usize = 40;
const RET: usize = 48;
const COMM: usize = 56;
const COMM_LEN: usize = 16;
const EVENT_SIZE: usize = COMM + COMM_LEN;

const IOCTL_RETURNED: u32 = 1;
const HUNG_TASK: u32 = 2;

/// An ioctl on a watched fd, as the kernel recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlCall {
    /// Thread id.
    pub tid: u32,
    /// Process id (tgid).
    pub pid: u32,
    /// The file descriptor.
    pub fd: u32,
    /// Userspace's id for the device path (see `fds::Watch`).
    pub device: u32,
    /// The ioctl request.
    pub cmd: u64,
    /// When it entered, kernel monotonic ns.
    pub enter_ns: u64,
}

/// One ring buffer event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    /// A watched ioctl that took at least the threshold came back.
    Returned {
        /// The call.
        call: IoctlCall,
        /// When it returned, kernel monotonic ns.
        exit_ns: u64,
        /// What it returned (a negative errno on failure).
        ret: i64,
        /// The thread's name.
        comm: String,
    },
    /// The kernel's hung-task detector reported a task (`sched_process_hang`).
    HungTask {
        /// Thread id.
        tid: u32,
        /// Process id; 0 when the classic tracepoint gave none.
        pid: u32,
        /// The task's name.
        comm: String,
        /// When it was reported, kernel monotonic ns.
        ts_ns: u64,
    },
}

impl DriverEvent {
    /// Decodes one ring buffer payload.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let r = Reader::new(payload, EVENT_SIZE, "gpudriver event")?;
        let comm = r.c_str(COMM, COMM_LEN)?;
        match r.u32(TYPE)? {
            IOCTL_RETURNED => Ok(Self::Returned {
                call: IoctlCall {
                    tid: r.u32(TID)?,
                    pid: r.u32(TGID)?,
                    fd: r.u32(FD)?,
                    device: r.u32(DEVICE)?,
                    cmd: r.u64(CMD)?,
                    enter_ns: r.u64(ENTER)?,
                },
                exit_ns: r.u64(TS)?,
                ret: r.u64(RET)? as i64,
                comm,
            }),
            HUNG_TASK => Ok(Self::HungTask {
                tid: r.u32(TID)?,
                pid: r.u32(TGID)?,
                comm,
                ts_ns: r.u64(TS)?,
            }),
            other => Err(Error::Decode(format!("gpudriver event of type {other}"))),
        }
    }
}

// Offsets of struct ioctl_call, the in_flight map's value.
const CALL_TS: usize = 0;
const CALL_CMD: usize = 8;
const CALL_TGID: usize = 16;
const CALL_FD: usize = 20;
const CALL_DEVICE: usize = 24;
const CALL_SIZE: usize = 32;

/// Decodes one in_flight entry (key: the thread id).
pub fn decode_in_flight(key: &[u8], value: &[u8]) -> Result<IoctlCall> {
    let k = Reader::new(key, 4, "in_flight key")?;
    let v = Reader::new(value, CALL_SIZE, "in_flight value")?;
    Ok(IoctlCall {
        tid: k.u32(0)?,
        pid: v.u32(CALL_TGID)?,
        fd: v.u32(CALL_FD)?,
        device: v.u32(CALL_DEVICE)?,
        cmd: v.u64(CALL_CMD)?,
        enter_ns: v.u64(CALL_TS)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn decodes_both_event_types() {
        let mut raw = vec![0u8; EVENT_SIZE];
        put(&mut raw, TYPE, &IOCTL_RETURNED.to_ne_bytes());
        put(&mut raw, TID, &11u32.to_ne_bytes());
        put(&mut raw, TGID, &10u32.to_ne_bytes());
        put(&mut raw, FD, &3u32.to_ne_bytes());
        put(&mut raw, DEVICE, &2u32.to_ne_bytes());
        put(&mut raw, CMD, &0x5401u64.to_ne_bytes());
        put(&mut raw, ENTER, &100u64.to_ne_bytes());
        put(&mut raw, TS, &900u64.to_ne_bytes());
        put(&mut raw, RET, &(-4i64).to_ne_bytes());
        put(&mut raw, COMM, b"python3\0");
        let DriverEvent::Returned {
            call,
            exit_ns,
            ret,
            comm,
        } = DriverEvent::decode(&raw).unwrap()
        else {
            panic!("not a return");
        };
        assert_eq!((call.tid, call.pid, call.fd, call.device), (11, 10, 3, 2));
        assert_eq!(
            (call.cmd, call.enter_ns, exit_ns, ret),
            (0x5401, 100, 900, -4)
        );
        assert_eq!(comm, "python3");
        put(&mut raw, TYPE, &HUNG_TASK.to_ne_bytes());
        assert_eq!(
            DriverEvent::decode(&raw).unwrap(),
            DriverEvent::HungTask {
                tid: 11,
                pid: 10,
                comm: "python3".into(),
                ts_ns: 900
            }
        );
        put(&mut raw, TYPE, &9u32.to_ne_bytes());
        assert!(DriverEvent::decode(&raw).is_err());
        assert!(DriverEvent::decode(&raw[..EVENT_SIZE - 1]).is_err());
    }

    #[test]
    fn decodes_an_in_flight_entry() {
        let mut value = vec![0u8; CALL_SIZE];
        put(&mut value, CALL_TS, &5u64.to_ne_bytes());
        put(&mut value, CALL_CMD, &0x541bu64.to_ne_bytes());
        put(&mut value, CALL_TGID, &7u32.to_ne_bytes());
        put(&mut value, CALL_FD, &4u32.to_ne_bytes());
        put(&mut value, CALL_DEVICE, &1u32.to_ne_bytes());
        let call = decode_in_flight(&8u32.to_ne_bytes(), &value).unwrap();
        assert_eq!(
            call,
            IoctlCall {
                tid: 8,
                pid: 7,
                fd: 4,
                device: 1,
                cmd: 0x541b,
                enter_ns: 5
            }
        );
        assert!(decode_in_flight(&[0; 2], &value).is_err());
        assert!(decode_in_flight(&8u32.to_ne_bytes(), &value[..8]).is_err());
    }
}
