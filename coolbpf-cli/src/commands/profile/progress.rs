//! The progress line `coolbpf profile` keeps on a terminal, and the wait it shows.

use std::io::Write;
use std::time::{Duration, Instant};

use coolbpf_core::Result;

use crate::signal;

/// How often the caller's tick runs (and the progress line is redrawn).
const TICK: Duration = Duration::from_secs(1);
/// How often the signal flag and the deadline are checked between ticks.
const POLL: Duration = Duration::from_millis(50);

/// A one-line status on stderr, redrawn in place; silent unless stderr is a terminal, so
/// logs and pipes never see it.
pub struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    /// Shown only when stderr is a terminal.
    pub fn on_stderr() -> Self {
        // SAFETY: isatty only inspects the descriptor number.
        let enabled = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
        Self {
            enabled,
            drawn: false,
        }
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, text: &str) {
        if self.enabled {
            // A failed write to the terminal is not worth failing the profile for.
            let _ = write!(std::io::stderr(), "\r\x1b[2K{text}");
            self.drawn = true;
        }
    }

    /// Erases the line.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// "7s left" with a deadline, "12s (Ctrl-C to stop)" without.
pub fn time_text(started: Instant, duration: Option<Duration>) -> String {
    let elapsed = started.elapsed();
    match duration {
        Some(total) => {
            let left = total.saturating_sub(elapsed);
            format!(
                "{}s left",
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            )
        }
        None => format!("{}s (Ctrl-C to stop)", elapsed.as_secs()),
    }
}

/// Waits until `duration` has passed (forever without one), SIGINT/SIGTERM arrives, or
/// `tick` (called about every second) returns `false`. Returns early with `tick`'s error.
pub fn wait(
    started: Instant,
    duration: Option<Duration>,
    mut tick: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = duration.map(|d| started + d);
    let mut next_tick = started + TICK;
    loop {
        let now = Instant::now();
        if signal::interrupted() || deadline.is_some_and(|d| now >= d) {
            return Ok(());
        }
        if now >= next_tick {
            if !tick()? {
                return Ok(());
            }
            next_tick += TICK;
        }
        let until = deadline.map_or(next_tick, |d| d.min(next_tick));
        std::thread::sleep(until.saturating_duration_since(Instant::now()).min(POLL));
    }
}
