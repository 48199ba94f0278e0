//! The hang reports, as events. Every one has `hang` (what kind), `pid`, `tid`, `comm`,
//! the Xid join (`xid`, and `xid_error` when the kernel log was unreadable) and a
//! one-line `summary` that ends with what the Xid lines say happened to the GPU.

use coolbpf_core::{Event, FieldValue};

use super::event::IoctlCall;
use super::xid_join::Joined;
use super::NAME;

/// The kinds of hang, as the `hang` field and the `hang` label of
/// `gpu_driver_hangs_total` name them.
pub const HANG_KINDS: [&str; 3] = ["ioctl", "d_state", "hung_task"];

/// Who a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Thread name.
    pub comm: String,
}

impl Thread {
    fn describe(&self) -> String {
        format!("thread {} of pid {} ({})", self.tid, self.pid, self.comm)
    }
}

fn start(hang: &str, ts_ns: u64, thread: &Thread) -> Event {
    Event::new(NAME, ts_ns)
        .with("hang", FieldValue::Str(hang.into()))
        .with("pid", FieldValue::UInt(thread.pid.into()))
        .with("tid", FieldValue::UInt(thread.tid.into()))
        .with("comm", FieldValue::Str(thread.comm.clone()))
}

fn with_stack(event: Event, stack: Result<Vec<String>, String>) -> Event {
    match stack {
        Ok(frames) => event.with("stack", FieldValue::StrList(frames)),
        Err(why) => event
            .with("stack", FieldValue::StrList(Vec::new()))
            .with("stack_error", FieldValue::Str(why)),
    }
}

fn finish(mut event: Event, summary: String, joined: Option<&Joined>) -> Event {
    let mut summary = summary;
    if let Some(joined) = joined {
        event = event.with("xid", FieldValue::StrList(joined.lines.clone()));
        if let Some(error) = &joined.error {
            event = event.with("xid_error", FieldValue::Str(error.clone()));
        }
        if let Some(verdict) = &joined.verdict {
            summary.push_str("; and ");
            summary.push_str(verdict);
        }
    }
    event.with("summary", FieldValue::Str(summary))
}

fn call_fields(event: Event, call: &IoctlCall, device: &str) -> Event {
    event
        .with("fd", FieldValue::UInt(call.fd.into()))
        .with("device", FieldValue::Str(device.into()))
        .with("cmd", FieldValue::Str(format!("{:#x}", call.cmd)))
}

/// An ioctl in flight for `blocked_ns`: `hang: ioctl`, with the thread's state and the
/// kernel stack where it is blocked now.
pub fn ioctl_blocked(
    thread: &Thread,
    call: &IoctlCall,
    device: &str,
    blocked_ns: u64,
    state: Option<char>,
    stack: Result<Vec<String>, String>,
    joined: Option<&Joined>,
) -> Event {
    let ms = blocked_ns / 1_000_000;
    let mut event = call_fields(start("ioctl", call.enter_ns, thread), call, device)
        .with("blocked_ms", FieldValue::UInt(ms));
    if let Some(state) = state {
        event = event.with("state", FieldValue::Str(state.to_string()));
    }
    let summary = format!(
        "{} has been in ioctl {:#x} on {device} for {ms} ms",
        thread.describe(),
        call.cmd
    );
    finish(with_stack(event, stack), summary, joined)
}

/// A watched ioctl that took the threshold or more came back: `hang: ioctl_returned`,
/// `blocked_ms` its whole time, `seen_blocked` whether an `ioctl` report came first (a
/// call that returns within an interval of the threshold may beat the check).
pub fn ioctl_returned(
    thread: &Thread,
    call: &IoctlCall,
    device: &str,
    took_ns: u64,
    ret: i64,
    seen_blocked: bool,
    joined: Option<&Joined>,
) -> Event {
    let ms = took_ns / 1_000_000;
    let event = call_fields(
        start("ioctl_returned", call.enter_ns + took_ns, thread),
        call,
        device,
    )
    .with("blocked_ms", FieldValue::UInt(ms))
    .with("ret", FieldValue::Int(ret))
    .with("seen_blocked", FieldValue::UInt(seen_blocked.into()));
    let summary = format!(
        "ioctl {:#x} on {device} of {} returned {ret} after {ms} ms",
        call.cmd,
        thread.describe()
    );
    finish(event, summary, joined)
}

/// A thread of a watched process in D state since `since_ns`: `hang: d_state`.
pub fn d_state(
    thread: &Thread,
    since_ns: u64,
    now_ns: u64,
    stack: Result<Vec<String>, String>,
    joined: Option<&Joined>,
) -> Event {
    let ms = now_ns.saturating_sub(since_ns) / 1_000_000;
    let event = start("d_state", since_ns, thread).with("d_state_ms", FieldValue::UInt(ms));
    let summary = format!("{} has been in D state for {ms} ms", thread.describe());
    finish(with_stack(event, stack), summary, joined)
}

/// The kernel's hung-task detector reported a thread: `hang: hung_task`; `watched` says
/// whether its process has a watched device open.
pub fn hung_task(
    thread: &Thread,
    ts_ns: u64,
    watched: bool,
    stack: Result<Vec<String>, String>,
    joined: Option<&Joined>,
) -> Event {
    let event = start("hung_task", ts_ns, thread).with("watched", FieldValue::UInt(watched.into()));
    let summary = format!(
        "the kernel's hung-task detector reports {} (in D state past kernel.hung_task_timeout_secs)",
        thread.describe()
    );
    finish(with_stack(event, stack), summary, joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<'a>(event: &'a Event, name: &str) -> &'a str {
        event
            .field(name)
            .and_then(FieldValue::as_str)
            .unwrap_or_default()
    }

    #[test]
    fn reports_carry_the_xid_join_in_their_summary() {
        let thread = Thread {
            pid: 10,
            tid: 11,
            comm: "python3".into(),
        };
        let call = IoctlCall {
            tid: 11,
            pid: 10,
            fd: 5,
            device: 0,
            cmd: 0xc020_462a,
            enter_ns: 1_000,
        };
        let joined = Joined {
            lines: vec!["79 at 0000:3b:00: GPU has fallen off the bus.".into()],
            verdict: Some("the GPU fell off the bus (Xid 79 at 0000:3b:00)".into()),
            error: None,
        };
        let stack = Ok(vec![
            "entry_SYSCALL_64".to_owned(),
            "nv_ioctl [nvidia]".to_owned(),
        ]);
        let e = ioctl_blocked(
            &thread,
            &call,
            "/dev/nvidia0",
            6_000_000_000,
            Some('D'),
            stack,
            Some(&joined),
        );
        assert_eq!(text(&e, "hang"), "ioctl");
        assert_eq!(text(&e, "cmd"), "0xc020462a");
        assert_eq!(text(&e, "device"), "/dev/nvidia0");
        assert_eq!(text(&e, "state"), "D");
        assert_eq!(e.field("blocked_ms"), Some(&FieldValue::UInt(6000)));
        assert_eq!(
            text(&e, "summary"),
            "thread 11 of pid 10 (python3) has been in ioctl 0xc020462a on /dev/nvidia0 for \
             6000 ms; and the GPU fell off the bus (Xid 79 at 0000:3b:00)"
        );
        assert_eq!(
            e.field("xid"),
            Some(&FieldValue::StrList(joined.lines.clone()))
        );
        // No field collides with the record's own keys.
        for event in [
            e,
            ioctl_returned(&thread, &call, "/dev/nvidia0", 7_000_000_000, 0, true, None),
            d_state(
                &thread,
                0,
                2_000_000,
                Err("gone".into()),
                Some(&Joined::default()),
            ),
            hung_task(&thread, 5, false, Err("x".into()), None),
        ] {
            assert!(event
                .fields
                .iter()
                .all(|(name, _)| !["kind", "probe", "ts_ns"].contains(&name.as_str())));
            assert!(HANG_KINDS
                .iter()
                .any(|k| text(&event, "hang").starts_with(k)));
        }
        let d = d_state(
            &thread,
            0,
            2_000_000,
            Err("gone".into()),
            Some(&Joined::default()),
        );
        assert_eq!(d.field("stack"), Some(&FieldValue::StrList(Vec::new())));
        assert_eq!(text(&d, "stack_error"), "gone");
        assert_eq!(d.field("xid"), Some(&FieldValue::StrList(Vec::new())));
        assert!(!text(&d, "summary").contains("; and"));
    }
}
