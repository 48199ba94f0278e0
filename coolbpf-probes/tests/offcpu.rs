//! offcpu against the real kernel: a child that sleeps 50 ms twenty times spends 1 s off
//! the CPU in nanosleep, and that is what the probe attributes to its sleeping stack.

mod sched_support;

use std::sync::Mutex;
use std::time::Duration;

use coolbpf_core::sink::MemorySink;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{Record, Runtime};
use coolbpf_probes::offcpu::{OffCpu, OffCpuConfig};
use coolbpf_probes::profile::{Measured, ProfileSession};
use coolbpf_probes::sched::HookKind;
use coolbpf_probes::ProbeOptions;
use coolbpf_symbolize::Symbolizer;
use sched_support::{fork, reap};

/// One probe at a time. Attaching or detaching a program on sched_switch while another is
/// attached there can make the kernel skip that other program for a switch or two (the
/// tracepoint's callers are being replaced), which would cost these tests a sleep.
static SERIAL: Mutex<()> = Mutex::new(());

const SLEEPS: u32 = 20;
const SLEEP: Duration = Duration::from_millis(50);

/// A child that waits for a byte on a pipe, sleeps `SLEEPS` times `SLEEP` with
/// nanosleep, says so with a byte on a second pipe, then waits for the first pipe to
/// close (so that its addresses can still be symbolized) and exits.
struct Sleeper {
    pid: libc::pid_t,
    control: libc::c_int,
    done: libc::c_int,
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    fds
}

impl Sleeper {
    fn spawn() -> Self {
        let control = pipe();
        let done = pipe();
        let pid = fork(|| {
            let mut byte = 0u8;
            let nap = libc::timespec {
                tv_sec: 0,
                tv_nsec: SLEEP.as_nanos() as libc::c_long,
            };
            let mut left = nap;
            // SAFETY: raw syscalls on this child's own descriptors and live locals.
            unsafe {
                libc::close(control[1]);
                libc::close(done[0]);
                libc::read(control[0], std::ptr::from_mut(&mut byte).cast(), 1);
                for _ in 0..SLEEPS {
                    let mut asked = nap;
                    // An interrupted sleep goes on for the time left: the child sleeps
                    // exactly SLEEPS * SLEEP whatever happens.
                    while libc::nanosleep(&raw const asked, &raw mut left) != 0 {
                        asked = left;
                    }
                }
                libc::write(done[1], std::ptr::from_ref(&byte).cast(), 1);
                libc::read(control[0], std::ptr::from_mut(&mut byte).cast(), 1);
            }
        });
        // SAFETY: closing the ends this process does not use.
        unsafe {
            libc::close(control[0]);
            libc::close(done[1]);
        }
        Self {
            pid,
            control: control[1],
            done: done[0],
        }
    }

    /// Lets it sleep; returns once it is done sleeping (and blocked on the pipe again).
    fn sleep(&self) {
        let mut byte = 1u8;
        // SAFETY: one byte to and from live u8s through our pipe ends.
        unsafe {
            assert_eq!(
                libc::write(self.control, std::ptr::from_ref(&byte).cast(), 1),
                1
            );
            assert_eq!(
                libc::read(self.done, std::ptr::from_mut(&mut byte).cast(), 1),
                1
            );
        }
    }

    /// Lets it exit and reaps it.
    fn finish(self) {
        // SAFETY: closing our pipe ends; the child's read then returns and it exits.
        unsafe {
            libc::close(self.control);
            libc::close(self.done);
        }
        reap(self.pid);
    }
}

/// A symbolized stack, as the assertions read it.
struct Named {
    pid: u32,
    weight: u64,
    frames: Vec<String>,
}

fn is_sleep_frame(frame: &str) -> bool {
    frame.contains("nanosleep")
}

#[test]
fn sleeping_time_is_attributed_to_the_nanosleep_stack() {
    if !bpf_available("sleeping_time_is_attributed_to_the_nanosleep_stack") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let symbolizer = Symbolizer::new();
    for hook in [HookKind::Auto, HookKind::RawTp, HookKind::Tracepoint] {
        let sleeper = Sleeper::spawn();
        let pid = sleeper.pid as u32;
        let mut offcpu = OffCpu::start(&OffCpuConfig {
            pid: Some(pid),
            hook,
            ..Default::default()
        })
        .expect("start");
        sleeper.sleep();
        offcpu.stop();
        let profile = offcpu.take().expect("take");
        assert!(
            offcpu.take().expect("take again").is_empty(),
            "what was taken is not taken again"
        );
        // Symbolized while the child is still alive, so that its user addresses resolve.
        let named = profile.symbolize(&symbolizer);
        sleeper.finish();
        let samples: Vec<Named> = named
            .stacks()
            .iter()
            .map(|s| Named {
                pid: s.pid,
                weight: s.weight,
                frames: s.frame_names(),
            })
            .collect();
        let sleeping: Vec<_> = samples
            .iter()
            .filter(|s| s.frames.iter().any(|f| is_sleep_frame(f)))
            .collect();
        let sleeping_us: u64 = sleeping.iter().map(|s| s.weight).sum();
        let expected_us = u64::from(SLEEPS) * SLEEP.as_micros() as u64;
        eprintln!(
            "{hook} ({:?}): {} stacks, {sleeping_us} us in nanosleep (expected {expected_us}), total {} us",
            offcpu.programs(),
            samples.len(),
            profile.total_weight()
        );
        for sample in &samples {
            eprintln!("  {} us: {}", sample.weight, sample.frames.join(";"));
        }
        assert!(samples.iter().all(|s| s.pid == pid), "the pid filter holds");
        assert!(
            sleeping_us.abs_diff(expected_us) <= expected_us / 10,
            "{hook}: {sleeping_us} us off-CPU in nanosleep, expected {expected_us} within 10%"
        );
        for sample in &sleeping {
            // The leaf is the scheduler, not the tracing machinery that captured it.
            let leaf = sample.frames.last().map_or("", String::as_str);
            assert!(
                leaf.starts_with("__schedule") || leaf.starts_with("schedule"),
                "{leaf}"
            );
            // The user side begins in libc's nanosleep (the rest of a libc without
            // frame pointers is beyond a frame-pointer walk).
            let user: Vec<&String> = sample
                .frames
                .iter()
                .filter(|f| !f.ends_with("_[k]"))
                .collect();
            assert!(
                user.last().is_some_and(|f| f.contains("nanosleep")),
                "innermost user frame: {user:?}"
            );
        }
        let spans: u64 = offcpu
            .stacks()
            .expect("stacks")
            .iter()
            .map(|s| s.count)
            .sum();
        let losses = offcpu.losses().expect("losses");
        eprintln!(
            "spans {spans}, counters {:?}, losses {losses:?}",
            offcpu.counters()
        );
        // One span per sleep; another process attaching to sched_switch at the wrong
        // moment can hide one switch from the kernel's callers (see SERIAL).
        assert!(
            spans + 1 >= u64::from(SLEEPS),
            "one span per sleep: {spans}"
        );
        assert_eq!(losses.map_full, 0);
    }
}

#[test]
fn the_profile_session_measures_off_cpu_time_like_the_probe() {
    if !bpf_available("the_profile_session_measures_off_cpu_time_like_the_probe") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sleeper = Sleeper::spawn();
    let pid = sleeper.pid as u32;
    let mut session = ProfileSession::start(&OffCpuConfig {
        pid: Some(pid),
        ..Default::default()
    })
    .expect("start");
    assert_eq!(session.measured(), Measured::OffCpu);
    // Half the sleeps between two ticks, so the session adds up two takes.
    sleeper.sleep();
    session.tick().expect("tick");
    let result = session.finish().expect("finish");
    sleeper.finish();
    assert_eq!(result.probe(), "offcpu");
    let expected_us = u64::from(SLEEPS) * SLEEP.as_micros() as u64;
    let sleeping_us: u64 = result
        .profile
        .stacks()
        .iter()
        .filter(|s| s.frame_names().iter().any(|f| is_sleep_frame(f)))
        .map(|s| s.weight)
        .sum();
    eprintln!(
        "session: {sleeping_us} us in nanosleep of {} us, {} spans",
        result.profile.total_weight(),
        result.samples
    );
    assert!(
        sleeping_us.abs_diff(expected_us) <= expected_us / 10,
        "{sleeping_us} us off-CPU in nanosleep, expected {expected_us} within 10%"
    );
    assert!(
        result.samples + 1 >= u64::from(SLEEPS),
        "{} spans",
        result.samples
    );
    let records = result.stack_records();
    assert!(records.iter().all(|r| r.probe == "offcpu" && r.pid == pid));
    let folded = result.profile.folded();
    assert!(folded.contains("nanosleep"), "{folded}");
}

#[test]
fn min_and_max_filters_bound_the_spans_counted() {
    if !bpf_available("min_and_max_filters_bound_the_spans_counted") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // 50 ms sleeps are above max_us = 10 ms: none of them may be counted; and with
    // min_us = 40 ms, only they are.
    for (min_us, max_us, counted) in [(1, Some(10_000), false), (40_000, None, true)] {
        let sleeper = Sleeper::spawn();
        let mut offcpu = OffCpu::start(&OffCpuConfig {
            pid: Some(sleeper.pid as u32),
            min_us,
            max_us,
            ..Default::default()
        })
        .expect("start");
        sleeper.sleep();
        offcpu.stop();
        sleeper.finish();
        let stacks = offcpu.stacks().expect("stacks");
        let spans: u64 = stacks.iter().map(|s| s.count).sum();
        let total_ms = stacks.iter().map(|s| s.total_ns).sum::<u64>() / 1_000_000;
        eprintln!("min_us {min_us}, max_us {max_us:?}: {spans} spans, {total_ms} ms");
        if counted {
            // The sleeps and nothing else (but see SERIAL on a switch hidden by others).
            assert!(
                (SLEEPS - 1..=SLEEPS).contains(&(spans as u32)),
                "{spans} spans"
            );
            assert!((950..1_100).contains(&total_ms), "{total_ms} ms");
        } else {
            assert!(total_ms < 100, "the sleeps are not counted: {total_ms} ms");
        }
    }
}

#[test]
fn plugin_emits_symbolized_stacks_for_the_watched_process() {
    if !bpf_available("plugin_emits_symbolized_stacks_for_the_watched_process") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sleeper = Sleeper::spawn();
    let plugin = coolbpf_probes::CATALOGUE
        .find("offcpu")
        .expect("registered")
        .create(
            &ProbeOptions::new()
                .with_pid(sleeper.pid as u32)
                .with("min_us", "1000"),
        )
        .expect("plugin");
    let sink = MemorySink::new();
    let mut runtime = Runtime::builder()
        .interval(Duration::from_secs(60))
        .sink(Box::new(sink.clone()))
        .build()
        .expect("runtime");
    let id = runtime.add(plugin).expect("add");
    runtime.start_plugin(id).expect("start");
    sleeper.sleep();
    runtime.shutdown().expect("shutdown");
    sleeper.finish();
    let records = sink.records();
    let stacks: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Stack(s) => Some(s),
            _ => None,
        })
        .collect();
    let sleeping: u64 = stacks
        .iter()
        .filter(|s| s.frames.iter().any(|f| is_sleep_frame(f)))
        .map(|s| s.weight)
        .sum();
    assert!(
        (900_000..=1_100_000).contains(&sleeping),
        "{sleeping} us in nanosleep stacks: {stacks:?}"
    );
    let json = Record::Stack(stacks[0].clone()).to_json();
    assert!(
        json.starts_with(r#"{"probe":"offcpu","kind":"stacks","pid":"#),
        "{json}"
    );
    assert!(json.contains(r#""frames":["#), "{json}");
}

/// `time.sleep` inside a known Python function shows that function, under its caller, in
/// the off-CPU profile of a running interpreter started without any cooperation.
#[test]
fn python_sleep_is_attributed_to_the_sleeping_python_function() {
    if !bpf_available("python_sleep_is_attributed_to_the_sleeping_python_function") {
        return;
    }
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    const SCRIPT: &str = "import time\n\
def napper():\n    time.sleep(0.02)\n\
def work():\n    while True:\n        napper()\n\
print('ready', flush=True)\nwork()\n";
    for python in [
        "/usr/bin/python3.11",
        "/root/.pyenv/versions/3.12.1/bin/python3.12",
    ] {
        if !std::path::Path::new(python).exists() {
            eprintln!("skipping {python}: not installed");
            continue;
        }
        let mut child = std::process::Command::new(python)
            .args(["-c", SCRIPT])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start python");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        std::io::BufRead::read_line(&mut out, &mut line).expect("ready");
        let pid = child.id();
        let mut session = ProfileSession::start(&OffCpuConfig {
            pid: Some(pid),
            ..Default::default()
        })
        .expect("start");
        let window = Duration::from_millis(1500);
        std::thread::sleep(window / 2);
        session.tick().expect("tick");
        std::thread::sleep(window / 2);
        let result = session.finish().expect("finish");
        let _ = child.kill();
        let _ = child.wait();
        let in_napper: u64 = result
            .profile
            .stacks()
            .iter()
            .filter(|s| {
                let names = s.frame_names();
                let work = names.iter().position(|f| f == "work");
                let napper = names.iter().position(|f| f == "napper");
                matches!((work, napper), (Some(w), Some(n)) if w < n)
            })
            .map(|s| s.weight)
            .sum();
        let window_us = window.as_micros() as u64;
        eprintln!(
            "{python}: {in_napper} us of {window_us} us off-CPU in work;napper\n{}",
            result.profile.folded()
        );
        // The main thread sleeps nearly all the time, all of it inside napper.
        assert!(
            in_napper >= window_us * 8 / 10,
            "{python}: {in_napper} us in work;napper, expected most of {window_us} us"
        );
    }
}
