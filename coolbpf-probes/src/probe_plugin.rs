//! [`ProbePlugin`]: the runtime plugin around a probe of this crate. Every probe's plugin
//! does the same things (start the probe with its config, add its records every interval,
//! stop it), so each probe says only how it starts and what it collects
//! ([`ProbeSource`]), and its plugin type is an alias of `ProbePlugin<Probe>`.

use std::fmt;

use coolbpf_core::{Emitter, Plugin, PluginContext, Record, Result};

/// A probe [`ProbePlugin`] can run.
pub trait ProbeSource: Sized + Send + 'static {
    /// The probe's name in the registry and in its records.
    const NAME: &'static str;
    /// How it is configured.
    type Config: Send;

    /// Loads and attaches it; a probe with asynchronous events emits them through
    /// `ctx`'s emitter.
    fn start(config: &Self::Config, ctx: &PluginContext) -> Result<Self>;

    /// Appends the records of one interval (metrics, counters, losses) to `out`.
    fn collect(&self, out: &mut Vec<Record>) -> Result<()>;

    /// Stops it before it is dropped: an event probe detaches and delivers what is still
    /// in flight. Dropping detaches anyway, which is all the others need.
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether its records depend on events still in flight when it stops (a probe that
    /// aggregates what its ring buffer delivers): the runtime's last collect comes before
    /// [`stop`](Self::stop) drains the buffer, so such a probe is collected once more
    /// after it, and those records are emitted (cumulative values: the later ones win).
    const COLLECT_AFTER_STOP: bool = false;
}

/// A [`ProbeSource`] as a runtime plugin.
pub struct ProbePlugin<S: ProbeSource> {
    config: S::Config,
    running: Option<S>,
    /// Where the records collected after stop go ([`ProbeSource::COLLECT_AFTER_STOP`]).
    emitter: Option<Emitter>,
}

impl<S: ProbeSource> ProbePlugin<S> {
    /// A plugin that will run with `config`.
    pub fn new(config: S::Config) -> Self {
        Self {
            config,
            running: None,
            emitter: None,
        }
    }
}

impl<S: ProbeSource> Default for ProbePlugin<S>
where
    S::Config: Default,
{
    fn default() -> Self {
        Self::new(S::Config::default())
    }
}

impl<S: ProbeSource> fmt::Debug for ProbePlugin<S>
where
    S::Config: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbePlugin")
            .field("probe", &S::NAME)
            .field("config", &self.config)
            .field("running", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: ProbeSource> Plugin for ProbePlugin<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn start(&mut self, ctx: &PluginContext) -> Result<()> {
        self.running = Some(S::start(&self.config, ctx)?);
        self.emitter = Some(ctx.emitter());
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Record>) -> Result<()> {
        match &self.running {
            Some(running) => running.collect(out),
            None => Ok(()),
        }
    }

    fn stop(&mut self) -> Result<()> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        running.stop()?;
        if let (true, Some(emitter)) = (S::COLLECT_AFTER_STOP, &self.emitter) {
            let mut out = Vec::new();
            running.collect(&mut out)?;
            for record in out {
                emitter.emit(record);
            }
        }
        Ok(())
    }
}
