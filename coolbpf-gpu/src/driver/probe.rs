//! [`GpuDriver`]: the loaded probe, its shared state, and what arrives on the ring buffer.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use coolbpf_core::stream::{Delivery, Losses};
use coolbpf_core::{
    labels, BpfObject, Event, MapView, Metric, ObjectBuilder, PluginContext, Record, Result,
};
use coolbpf_probes::event_probe::EventProbe;
use coolbpf_probes::probe_plugin::{ProbePlugin, ProbeSource};
use coolbpf_probes::sched::monotonic_ns;
use libbpf_rs::MapCore;

use super::dstate::DStates;
use super::event::DriverEvent;
use super::fds::Watch;
use super::report::{self, Thread, HANG_KINDS};
use super::xid_join::XidWindow;
use super::{proc, DriverConfig, NAME};
use crate::sync::lock;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/driver.bpf.o"));

/// Each hook's programs, most preferred first.
const ENTER: [&str; 3] = ["sys_enter_btf", "sys_enter_raw", "sys_enter_tp"];
const EXIT: [&str; 3] = ["sys_exit_btf", "sys_exit_raw", "sys_exit_tp"];
const HANG: [&str; 3] = ["process_hang_btf", "process_hang_raw", "process_hang_tp"];

/// Where reports go: the plugin's emitter, or a caller's callback.
pub(super) type Sink = Box<dyn Fn(Event) + Send + Sync>;

/// What the stream's thread and the interval's check share. Reports are handed to the
/// sink with this lock held, so that an ioctl's `ioctl` report always comes before its
/// `ioctl_returned`.
pub(super) struct State {
    pub(super) watch: Watch,
    /// Calls reported as blocked, by (tid, entry time), until they return.
    pub(super) reported: HashSet<(u32, u64)>,
    /// Hangs reported, by [`HANG_KINDS`].
    pub(super) hangs: [u64; 3],
    pub(super) xids: XidWindow,
    pub(super) not_watched: usize,
    pub(super) sink: Sink,
}

/// A running `gpudriver`.
pub struct GpuDriver {
    pub(super) probe: EventProbe<DriverEvent>,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) in_flight: MapView,
    pub(super) ioctls: MapView,
    pub(super) dstates: Mutex<DStates>,
    pub(super) config: DriverConfig,
    pub(super) proc_root: PathBuf,
}

impl GpuDriver {
    /// Loads and attaches the probe and starts watching the device fds open now; every
    /// report goes to `sink` (on the ring buffer's thread, or the caller of
    /// [`check`](Self::check)).
    pub fn start(
        config: &DriverConfig,
        sink: impl Fn(Event) + Send + Sync + 'static,
    ) -> Result<Self> {
        let object = ObjectBuilder::from_bytes(OBJECT)
            .global("ioctl_nr", &(libc::SYS_ioctl as u32))
            .global("threshold_ns", &config.threshold_ns)
            .max_entries("watched_fds", config.max_fds)
            .alternatives(&ENTER)
            .alternatives(&EXIT)
            .alternatives(&HANG)
            .load()?;
        let now_us = monotonic_ns() / 1000;
        let mut xids = XidWindow::open(config.xid_window_us);
        xids.refresh(now_us);
        let state = Arc::new(Mutex::new(State {
            watch: Watch::new(object.map("watched_fds")?),
            reported: HashSet::new(),
            hangs: [0; 3],
            xids,
            not_watched: 0,
            sink: Box::new(sink),
        }));
        let in_flight = object.map("in_flight")?;
        let ioctls = object.map("ioctls")?;
        let stream_state = Arc::clone(&state);
        let proc_root = PathBuf::from("/proc");
        let stream_root = proc_root.clone();
        let only = config.pid;
        let delivery = Delivery::callback(move |event: DriverEvent| {
            on_event(&stream_state, &stream_root, only, event);
        });
        let probe = EventProbe::start(object, DriverEvent::decode, delivery, attach)?;
        let driver = Self {
            probe,
            state,
            in_flight,
            ioctls,
            dstates: Mutex::default(),
            config: config.clone(),
            proc_root,
        };
        driver.sync_watch()?;
        Ok(driver)
    }

    /// The programs attached (one per hook).
    pub fn programs(&self) -> &[String] {
        self.probe.programs()
    }

    /// Hangs reported so far, by kind (`ioctl`, `d_state`, `hung_task`).
    pub fn hangs(&self) -> [(&'static str, u64); 3] {
        let hangs = lock(&self.state).hangs;
        [0, 1, 2].map(|i| (HANG_KINDS[i], hangs[i]))
    }

    /// The interval's metrics.
    pub fn metrics(&self) -> Result<Vec<Metric>> {
        let mut out = Vec::new();
        let state = lock(&self.state);
        for (kind, count) in HANG_KINDS.iter().zip(state.hangs) {
            out.push(Metric::counter(
                NAME,
                "gpu_driver_hangs_total",
                labels! {"hang" => *kind},
                count,
            ));
        }
        for (key, value) in self.ioctls.entries()? {
            let (Some(id), Some(count)) = (word::<4>(&key), word::<8>(&value)) else {
                continue;
            };
            let device = state.watch.device(u32::from_ne_bytes(id)).to_owned();
            out.push(Metric::counter(
                NAME,
                "gpu_driver_ioctls_total",
                labels! {"device" => device},
                u64::from_ne_bytes(count),
            ));
        }
        let gauges = [
            ("gpu_driver_watched_fds", state.watch.len()),
            ("gpu_driver_fds_not_watched", state.not_watched),
            ("gpu_driver_threads_in_d_state", lock(&self.dstates).in_d()),
        ];
        drop(state);
        let in_flight = self.in_flight.handle().keys().count();
        for (name, value) in gauges
            .into_iter()
            .chain([("gpu_driver_ioctls_in_flight", in_flight)])
        {
            out.push(Metric::gauge(NAME, name, labels! {}, value as f64));
        }
        Ok(out)
    }

    /// Delivered and lost counts of the ring buffer, with the kernel-side losses.
    pub fn losses(&self) -> Result<Losses> {
        self.probe.losses()
    }

    /// Detaches, then reports the returns still in the ring buffer.
    pub fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

fn word<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.get(..N)?.try_into().ok()
}

fn attach(object: &mut BpfObject) -> Result<Vec<String>> {
    [&ENTER, &EXIT, &HANG]
        .into_iter()
        .map(|programs| object.attach_chosen(programs))
        .collect()
}

/// One ring buffer event, on the stream's thread.
fn on_event(
    state: &Mutex<State>,
    proc_root: &std::path::Path,
    only: Option<u32>,
    event: DriverEvent,
) {
    let now_us = monotonic_ns() / 1000;
    match event {
        DriverEvent::Returned {
            call,
            exit_ns,
            ret,
            comm,
        } => {
            let mut state = lock(state);
            let seen = state.reported.remove(&(call.tid, call.enter_ns));
            if !seen {
                // Slower than T, and back before a check saw it: a hang all the same.
                state.hangs[0] += 1;
            }
            state.xids.refresh(now_us);
            let thread = Thread {
                pid: call.pid,
                tid: call.tid,
                comm,
            };
            let device = state.watch.device(call.device).to_owned();
            let took = exit_ns.saturating_sub(call.enter_ns);
            let joined = state.xids.join(now_us);
            let report =
                report::ioctl_returned(&thread, &call, &device, took, ret, seen, joined.as_ref());
            (state.sink)(report);
        }
        DriverEvent::HungTask {
            tid,
            pid,
            comm,
            ts_ns,
        } => {
            let pid = if pid == 0 {
                proc::tgid_of(proc_root, tid).unwrap_or(tid)
            } else {
                pid
            };
            if only.is_some_and(|only| only != pid) {
                return;
            }
            // Read at once: the task is stuck now, and may not be for long.
            let stack = proc::kernel_stack(proc_root, pid, tid);
            let thread = Thread { pid, tid, comm };
            let mut state = lock(state);
            state.xids.refresh(now_us);
            let watched = state.watch.watches(pid);
            let joined = state.xids.join(now_us);
            state.hangs[2] += 1;
            let report = report::hung_task(&thread, ts_ns, watched, stack, joined.as_ref());
            (state.sink)(report);
        }
    }
}

impl ProbeSource for GpuDriver {
    const NAME: &'static str = NAME;
    type Config = DriverConfig;

    fn start(config: &DriverConfig, ctx: &PluginContext) -> Result<Self> {
        let emitter = ctx.emitter();
        Self::start(config, move |event| {
            // A full runtime channel is counted by the emitter itself.
            emitter.emit(Record::Event(event));
        })
    }

    fn collect(&self, out: &mut Vec<Record>) -> Result<()> {
        self.check()?;
        out.extend(self.metrics()?.into_iter().map(Record::from));
        out.extend(self.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.probe.stop()
    }
}

/// `gpudriver` as a runtime plugin: reports are emitted as they are found; every
/// interval adds the counters, gauges and loss counters.
pub type GpuDriverPlugin = ProbePlugin<GpuDriver>;

#[cfg(test)]
mod tests {
    use super::*;

    /// This kernel takes the tp_btf forms; the raw_tp and classic tracepoint forms are
    /// what older ones get, so each is loaded here too and must see the same ioctls.
    #[test]
    fn every_form_of_every_hook_sees_the_ioctls() {
        use std::os::fd::AsRawFd;

        if !coolbpf_core::testing::bpf_available("gpudriver_program_forms") {
            return;
        }
        let file = std::fs::File::open("/dev/null").unwrap();
        for form in 0..3 {
            let chosen = [ENTER[form], EXIT[form], HANG[form]];
            let mut builder = ObjectBuilder::from_bytes(OBJECT)
                .global("ioctl_nr", &(libc::SYS_ioctl as u32))
                .global("threshold_ns", &1u64);
            for name in ENTER.iter().chain(&EXIT).chain(&HANG) {
                if !chosen.contains(name) {
                    builder = builder.disable_program(name);
                }
            }
            let mut object = builder.load().expect("load");
            for name in chosen {
                object.attach_auto(name).expect(name);
            }
            // A high fd of its own, so that no other test's ioctls land on it.
            // SAFETY: F_DUPFD on an fd this test owns; the new fd is closed below.
            let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, 900) };
            assert!(fd >= 900);
            let device = 7u32;
            let mut key = [0u8; 8];
            key[..4].copy_from_slice(&std::process::id().to_ne_bytes());
            key[4..].copy_from_slice(&fd.to_ne_bytes());
            let mut value = [0u8; 8];
            value[..4].copy_from_slice(&device.to_ne_bytes());
            object
                .map("watched_fds")
                .unwrap()
                .update(&key, &value)
                .unwrap();
            let mut n: libc::c_int = 0;
            for _ in 0..10 {
                // SAFETY: FIONREAD writes one int, to `n`; /dev/null refuses it (ENOTTY),
                // which is still an ioctl syscall.
                unsafe { libc::ioctl(fd, libc::FIONREAD, &raw mut n) };
            }
            // SAFETY: `fd` is the duplicate made above, closed once.
            unsafe { libc::close(fd) };
            let count = object
                .map("ioctls")
                .unwrap()
                .lookup(&device.to_ne_bytes())
                .unwrap()
                .expect("counted");
            assert_eq!(
                word::<8>(&count).map(u64::from_ne_bytes),
                Some(10),
                "{chosen:?}"
            );
            // Every exit removed its call.
            assert_eq!(object.map("in_flight").unwrap().handle().keys().count(), 0);
        }
    }
}
