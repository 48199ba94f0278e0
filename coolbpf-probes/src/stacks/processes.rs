//! [`ProcessStacks`]: the per-process state of the stack walkers of one BPF object (CFI
//! tables for `coolbpf/unwind.bpf.h`, interpreter offsets for `coolbpf/python.bpf.h`),
//! registered before a process's samples: at start for one process, or for every
//! process by a background thread, which registers the new pids each probe's reader
//! hands it and those the BPF unwinder met without tables (`coolbpf_unwind_wanted`,
//! polled every 100 ms), so that no reader ever waits on a table being compiled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use coolbpf_core::{BpfObject, Error, MapView, ObjectBuilder, Result};

use super::python::PythonStacks;
use super::{NativeUnwinder, UnwindStats, PROCESSES_MAP, ROWS_MAP, WANTED_MAP};

/// New pids waiting for the registering thread, at most; more wait for a later sample.
const QUEUE: usize = 1024;
/// How often the thread registers the processes the BPF side asked for
/// (`coolbpf_unwind_wanted`).
const POLL_WANTED: Duration = Duration::from_millis(100);
/// How often the thread forgets processes that exited.
const FORGET_EVERY: Duration = Duration::from_secs(5);

/// Which walkers an object has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walkers {
    /// CFI unwinding (`coolbpf/unwind.bpf.h`, switched on in the program).
    pub cfi: bool,
    /// CPython frames (`coolbpf/python.bpf.h`, switched on in the program).
    pub python: bool,
}

impl Walkers {
    /// `builder` with the CFI maps shrunk to one entry when CFI is off: its tables stay
    /// empty, and megabytes of preallocated maps would be wasted.
    pub fn size_maps(self, builder: ObjectBuilder) -> ObjectBuilder {
        if self.cfi {
            builder
        } else {
            builder
                .max_entries(ROWS_MAP, 1)
                .max_entries(PROCESSES_MAP, 1)
        }
    }
}

/// The walkers' registries, behind one lock (a registration is a few map updates).
#[derive(Debug)]
struct Registries {
    native: Option<NativeUnwinder>,
    python: Option<PythonStacks>,
    /// The processes the BPF side unwound before they were registered.
    wanted: Option<MapView>,
}

impl Registries {
    /// Registers `pid` with every walker; a failure (the process exited, an unsupported
    /// interpreter) concerns that process only and is kept by the registry.
    fn register(&mut self, pid: u32) {
        if let Some(native) = &mut self.native {
            let _ = native.register(pid);
        }
        if let Some(python) = &mut self.python {
            let _ = python.register_once(pid);
        }
    }

    /// Registers every process the BPF side asked for, and takes it off the list; stops
    /// between processes once `stop` is set.
    fn register_wanted(&mut self, stop: &AtomicBool) {
        let Some(wanted) = &self.wanted else {
            return;
        };
        let Ok(entries) = wanted.drain() else {
            return;
        };
        for (key, _) in entries {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Ok(pid) = <[u8; 4]>::try_from(key.as_slice()).map(u32::from_ne_bytes) {
                self.register(pid);
            }
        }
    }
}

/// Hands the pids a probe sees to the registering thread, each once.
#[derive(Debug)]
pub struct Notifier {
    sender: Option<Sender<u32>>,
    seen: HashSet<u32>,
}

impl Notifier {
    /// The first time `pid` is seen it is queued for registration (when the queue is
    /// full, it is queued again the next time). Does nothing for a single process.
    pub fn saw(&mut self, pid: u32) {
        let Some(sender) = &self.sender else {
            return;
        };
        if pid != 0 && self.seen.insert(pid) {
            if let Err(TrySendError::Full(_)) = sender.try_send(pid) {
                self.seen.remove(&pid);
            }
        }
    }
}

/// The stack walkers' processes for one BPF object.
#[derive(Debug)]
pub struct ProcessStacks {
    registries: Arc<Mutex<Registries>>,
    sender: Option<Sender<u32>>,
    /// Tells the thread to end: notifiers handed out keep the channel open, so its
    /// closing cannot be the signal.
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProcessStacks {
    /// The walkers' processes of a probe watching process `pid` ([`for_process`](Self::for_process))
    /// or every process ([`for_all`](Self::for_all)); `None` when neither walker is on.
    pub fn start(object: &BpfObject, walkers: Walkers, pid: Option<u32>) -> Result<Option<Self>> {
        if !walkers.cfi && !walkers.python {
            return Ok(None);
        }
        match pid {
            Some(pid) => Self::for_process(object, walkers, pid).map(Some),
            None => Self::for_all(object, walkers).map(Some),
        }
    }

    /// For process `pid` only, registered now. Its CFI registration must succeed (the
    /// process exists); a process without CPython is fine.
    pub fn for_process(object: &BpfObject, walkers: Walkers, pid: u32) -> Result<Self> {
        let mut registries = Self::registries(object, walkers)?;
        if let Some(native) = &mut registries.native {
            native.register(pid)?;
        }
        if let Some(python) = &mut registries.python {
            // Kept in the registry's failures: the stacks go on without Python frames.
            let _ = python.register(pid);
        }
        Ok(Self {
            registries: Arc::new(Mutex::new(registries)),
            sender: None,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        })
    }

    /// For every process: [`Self::notifier`] hands new pids to a thread that registers
    /// them (their first samples are walked by frame pointers, and counted so).
    pub fn for_all(object: &BpfObject, walkers: Walkers) -> Result<Self> {
        let registries = Arc::new(Mutex::new(Self::registries(object, walkers)?));
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE);
        let shared = Arc::clone(&registries);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("coolbpf-stacks".into())
            .spawn(move || register_loop(&shared, &receiver, &stopped))
            .map_err(|e| Error::io("cannot start the stack registration thread", e))?;
        Ok(Self {
            registries,
            sender: Some(sender),
            stop,
            thread: Some(thread),
        })
    }

    fn registries(object: &BpfObject, walkers: Walkers) -> Result<Registries> {
        Ok(Registries {
            wanted: walkers.cfi.then(|| object.map(WANTED_MAP)).transpose()?,
            native: walkers
                .cfi
                .then(|| NativeUnwinder::new(object))
                .transpose()?,
            python: walkers
                .python
                .then(|| PythonStacks::new(object))
                .transpose()?,
        })
    }

    /// A [`Notifier`] for a probe's reader, which hands it the pid of each sample or
    /// entry it reads.
    pub fn notifier(&self) -> Notifier {
        Notifier {
            sender: self.sender.clone(),
            seen: HashSet::new(),
        }
    }

    /// Registers `pid`'s CFI tables again (libraries it loaded since), for a single
    /// process; the probes call this every interval.
    pub fn refresh(&self, pid: u32) -> Result<()> {
        match &mut lock(&self.registries).native {
            Some(native) => native.register(pid).map(drop),
            None => Ok(()),
        }
    }

    /// What CFI unwinding registered and compiled; `None` without CFI.
    pub fn unwind_stats(&self) -> Option<UnwindStats> {
        lock(&self.registries)
            .native
            .as_ref()
            .map(NativeUnwinder::stats)
    }

    /// The processes whose Python frames cannot be walked, with why.
    pub fn python_failures(&self) -> Vec<(u32, String)> {
        lock(&self.registries)
            .python
            .as_ref()
            .map_or_else(Vec::new, |python| python.failures().to_vec())
    }
}

impl Drop for ProcessStacks {
    fn drop(&mut self) {
        // The thread sees the flag within a poll (or after the registration it is in).
        self.stop.store(true, Ordering::Relaxed);
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(registries: &Mutex<Registries>) -> MutexGuard<'_, Registries> {
    // A registration is map updates and cache inserts: a panic cannot leave it half
    // done in a way a later registration would trip on.
    registries.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register_loop(registries: &Mutex<Registries>, pids: &Receiver<u32>, stop: &AtomicBool) {
    let mut last_forget = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match pids.recv_timeout(POLL_WANTED) {
            Ok(pid) => lock(registries).register(pid),
            Err(RecvTimeoutError::Timeout) => lock(registries).register_wanted(stop),
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_forget.elapsed() >= FORGET_EVERY {
            if let Some(native) = &mut lock(registries).native {
                native.forget_exited();
            }
            last_forget = Instant::now();
        }
    }
}
