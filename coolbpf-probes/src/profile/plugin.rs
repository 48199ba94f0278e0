//! [`ProfilePlugin`]: the profiler in the plugin runtime.

use std::time::Duration;

use coolbpf_core::{labels, Metric, Plugin, PluginContext, Record, Result};

use super::records::stack_record;
use super::resolve::StackResolver;
use super::session::symbolizer;
use super::{ProfileConfig, Profiler, NAME};

/// `profile` as a runtime plugin.
///
/// Every interval it emits the stacks sampled during that interval, symbolized, as
/// [`Record::Stack`] records (`{"probe":"profile","kind":"stacks",...}`, frames root
/// first, `count` = samples in the interval, so each interval is a profile of its own,
/// which is what [`ProfileFileSink`](super::ProfileFileSink) writes one file per). It
/// also emits the cumulative counter `profile/samples_total` and the loss counters.
#[derive(Debug)]
pub struct ProfilePlugin {
    config: ProfileConfig,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    profiler: Profiler,
    resolver: StackResolver,
}

impl ProfilePlugin {
    /// A plugin that will run with `config`.
    pub fn new(config: ProfileConfig) -> Self {
        Self {
            config,
            running: None,
        }
    }
}

impl Plugin for ProfilePlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn start(&mut self, _ctx: &PluginContext) -> Result<()> {
        self.running = Some(Running {
            profiler: Profiler::start(&self.config)?,
            resolver: StackResolver::new(symbolizer(self.config.debug_info)),
        });
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        let Some(running) = &mut self.running else {
            return Ok(());
        };
        running.profiler.follow_threads()?;
        running.profiler.refresh_unwinding()?;
        let profile = running.profiler.take_profile()?;
        if !profile.is_empty() {
            running.resolver.resolve_user(&profile);
            running.resolver.resolve_kernel(&profile);
            let ts_ns = running.profiler.last_sample_ns();
            for stack in running.resolver.stacks(&profile) {
                out.push(Record::Stack(stack_record(NAME, &stack, ts_ns)));
            }
            // User locations are per interval: memory stays bounded, a reused pid
            // is never named after the process that had it before.
            running.resolver.forget_processes();
        }
        let samples = running.profiler.sample_count();
        out.push(Metric::counter(NAME, "samples_total", labels! {}, samples).into());
        out.extend(running.profiler.losses()?.to_records(NAME));
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        match &mut self.running {
            // The runtime's final collect drained the ring just before; stopping (rather
            // than dropping) reports a failure to detach or join.
            Some(running) => {
                let result = running.profiler.stop();
                self.running = None;
                result
            }
            None => Ok(()),
        }
    }

    fn interval(&self) -> Option<Duration> {
        self.config.interval
    }
}
