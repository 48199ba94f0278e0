//! The profiler's side of CFI unwinding: its process registered before sampling (pid
//! mode), or each new pid seen in a sample registered by a background thread (every
//! CPU), so that the ring's reader never waits on a table being compiled.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use coolbpf_core::{BpfObject, Result};

use crate::stacks::{NativeUnwinder, UnwindStats};

/// New pids waiting for the registering thread, at most; more wait for a later sample.
const QUEUE: usize = 1024;
/// How often the thread forgets processes that exited.
const FORGET_EVERY: Duration = Duration::from_secs(5);

/// The unwinder and, on every CPU, the thread registering new pids.
#[derive(Debug)]
pub(crate) struct Unwinding {
    unwinder: Arc<Mutex<NativeUnwinder>>,
    sender: Option<Sender<u32>>,
    thread: Option<JoinHandle<()>>,
}

impl Unwinding {
    /// For one process: registered now, before any sample.
    pub(crate) fn for_process(object: &BpfObject, pid: u32) -> Result<Self> {
        let mut unwinder = NativeUnwinder::new(object)?;
        unwinder.register(pid)?;
        Ok(Self {
            unwinder: Arc::new(Mutex::new(unwinder)),
            sender: None,
            thread: None,
        })
    }

    /// For every process: [`Self::notifier`] hands new pids to a thread that registers
    /// them.
    pub(crate) fn for_all(object: &BpfObject) -> Result<Self> {
        let unwinder = Arc::new(Mutex::new(NativeUnwinder::new(object)?));
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE);
        let shared = Arc::clone(&unwinder);
        let thread = std::thread::Builder::new()
            .name("coolbpf-unwind".into())
            .spawn(move || register_loop(&shared, &receiver))
            .map_err(|e| {
                coolbpf_core::Error::io("cannot start the unwind registration thread", e)
            })?;
        Ok(Self {
            unwinder,
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// What the sample reader calls with each sample's pid: the first time a pid is
    /// seen it is queued for registration (when the queue is full, it is queued again
    /// on a later sample).
    pub(crate) fn notifier(&self) -> impl FnMut(u32) + Send + 'static {
        let sender = self.sender.clone();
        let mut seen = HashSet::new();
        move |pid| {
            let Some(sender) = &sender else {
                return;
            };
            if pid != 0 && seen.insert(pid) {
                if let Err(TrySendError::Full(_)) = sender.try_send(pid) {
                    seen.remove(&pid);
                }
            }
        }
    }

    /// Registers `pid` again (its mappings may have changed) in pid mode.
    pub(crate) fn refresh(&self, pid: u32) -> Result<()> {
        lock(&self.unwinder).register(pid).map(drop)
    }

    pub(crate) fn stats(&self) -> UnwindStats {
        lock(&self.unwinder).stats()
    }
}

impl Drop for Unwinding {
    fn drop(&mut self) {
        // Closing the channel ends the thread.
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(unwinder: &Mutex<NativeUnwinder>) -> MutexGuard<'_, NativeUnwinder> {
    // A registration is a map update and a cache insert: a panic cannot leave it half
    // done in a way a later registration would trip on.
    unwinder.lock().unwrap_or_else(PoisonError::into_inner)
}

fn register_loop(unwinder: &Mutex<NativeUnwinder>, pids: &Receiver<u32>) {
    let mut last_forget = Instant::now();
    loop {
        match pids.recv_timeout(FORGET_EVERY) {
            // A process that exited before its turn fails alone (and is counted).
            Ok(pid) => drop(lock(unwinder).register(pid)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if last_forget.elapsed() >= FORGET_EVERY {
            lock(unwinder).forget_exited();
            last_forget = Instant::now();
        }
    }
}
