//! The interval's work: refresh the fd watch, then look for ioctls in flight past the
//! threshold and for threads in D state past it.

use std::collections::HashSet;

use coolbpf_core::Result;
use coolbpf_probes::sched::monotonic_ns;
use libbpf_rs::MapCore;

use super::dstate::Sample;
use super::event::{decode_in_flight, IoctlCall};
use super::probe::GpuDriver;
use super::report::{self, Thread};
use super::{fds, proc};
use crate::sync::lock;

impl GpuDriver {
    /// Scans `/proc` for the device fds and makes the kernel's table hold them.
    pub(super) fn sync_watch(&self) -> Result<()> {
        let found = fds::scan(&self.proc_root, self.config.pid, &self.config.devices);
        let mut state = lock(&self.state);
        state.not_watched = state.watch.sync(&found)?.not_watched;
        Ok(())
    }

    /// One round of checks (what every interval runs): refreshes the fd watch and the
    /// Xid window, then reports the ioctls and D states past the threshold that were
    /// not reported yet.
    pub fn check(&self) -> Result<()> {
        self.sync_watch()?;
        lock(&self.state).xids.refresh(monotonic_ns() / 1000);
        let calls: Vec<IoctlCall> = self
            .in_flight
            .entries()?
            .iter()
            .filter_map(|(key, value)| decode_in_flight(key, value).ok())
            .collect();
        for call in &calls {
            self.check_call(call);
        }
        let busy: HashSet<u32> = calls.iter().map(|c| c.tid).collect();
        self.check_d_states(&busy);
        Ok(())
    }

    fn check_call(&self, call: &IoctlCall) {
        let root = &self.proc_root;
        if !proc::thread_alive(root, call.pid, call.tid) {
            // Killed inside the call (no sys_exit ran): nothing will remove it but us.
            let _ = self.in_flight.handle().delete(&call.tid.to_ne_bytes());
            lock(&self.state)
                .reported
                .remove(&(call.tid, call.enter_ns));
            return;
        }
        let now = monotonic_ns();
        let blocked = now.saturating_sub(call.enter_ns);
        let key = (call.tid, call.enter_ns);
        if blocked < self.config.threshold_ns || lock(&self.state).reported.contains(&key) {
            return;
        }
        // The fd may have been closed and reused for another file since the last scan.
        let Some(device) = fds::current_device(root, call.pid, call.fd, &self.config.devices)
        else {
            return;
        };
        let stat = proc::task_stat(root, call.pid, call.tid);
        let stack = proc::kernel_stack(root, call.pid, call.tid);
        let thread = Thread {
            pid: call.pid,
            tid: call.tid,
            comm: stat.as_ref().map(|s| s.comm.clone()).unwrap_or_default(),
        };
        let mut state = lock(&self.state);
        // Still the same call? If it returned meanwhile, its return (sent after the
        // kernel removed it from the table) is reported instead, as unseen.
        let same = self
            .in_flight
            .lookup(&call.tid.to_ne_bytes())
            .ok()
            .flatten()
            .and_then(|value| decode_in_flight(&call.tid.to_ne_bytes(), &value).ok())
            .is_some_and(|now| now.enter_ns == call.enter_ns);
        if !same || !state.reported.insert(key) {
            return;
        }
        state.hangs[0] += 1;
        let joined = state.xids.join(now / 1000);
        let report = report::ioctl_blocked(
            &thread,
            call,
            &device,
            blocked,
            stat.map(|s| s.state),
            stack,
            joined.as_ref(),
        );
        (state.sink)(report);
    }

    /// Samples the threads of every watched process; `busy` threads are inside a watched
    /// ioctl and left to the ioctl detector.
    fn check_d_states(&self, busy: &HashSet<u32>) {
        let root = &self.proc_root;
        let processes = lock(&self.state).watch.processes();
        let mut samples = Vec::new();
        for pid in processes {
            for tid in proc::threads(root, pid) {
                let in_d = proc::task_stat(root, pid, tid).is_some_and(|s| s.state == 'D');
                samples.push(Sample {
                    pid,
                    tid,
                    in_d: in_d && !busy.contains(&tid),
                });
            }
        }
        let now = monotonic_ns();
        let due = lock(&self.dstates).round(&samples, now, self.config.threshold_ns);
        for due in due {
            let stack = proc::kernel_stack(root, due.pid, due.tid);
            let comm = proc::task_stat(root, due.pid, due.tid)
                .map(|s| s.comm)
                .unwrap_or_default();
            let thread = Thread {
                pid: due.pid,
                tid: due.tid,
                comm,
            };
            let mut state = lock(&self.state);
            state.hangs[1] += 1;
            let joined = state.xids.join(now / 1000);
            let report = report::d_state(&thread, due.since_ns, now, stack, joined.as_ref());
            (state.sink)(report);
        }
    }
}
