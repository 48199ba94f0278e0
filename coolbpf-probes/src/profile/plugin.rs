//! [`ProfilePlugin`]: the profiler in the plugin runtime.

use std::time::Duration;

use coolbpf_core::{labels, Metric, Plugin, PluginContext, Record, Result};

use coolbpf_symbolize::profile::StackResolver;

use super::{ProfileConfig, Profiler, NAME};
use crate::stacks::{emit_interval, symbolizer};

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
        let profile = running.profiler.take_profile()?;
        let ts_ns = running.profiler.last_sample_ns();
        emit_interval(&mut running.resolver, NAME, &profile, ts_ns, out);
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
