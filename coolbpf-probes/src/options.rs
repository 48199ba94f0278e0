//! Probe options: `--pid` plus `--opt KEY=VALUE` pairs, checked against what the probe
//! declares so that a misspelt option is an error, not silently ignored.

use std::collections::BTreeMap;
use std::str::FromStr;

use coolbpf_core::{Error, Result};

/// One option a probe accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The key, as given to `--opt KEY=VALUE`.
    pub name: &'static str,
    /// What it does, with its unit.
    pub help: &'static str,
    /// The value used when it is not given.
    pub default: &'static str,
}

/// Options given to a probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Trace only this process (tgid).
    pub pid: Option<u32>,
    values: BTreeMap<String, String>,
}

impl ProbeOptions {
    /// No options: trace everything with defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restricts tracing to one process.
    #[must_use]
    pub fn with_pid(mut self, pid: u32) -> Self {
        self.pid = Some(pid);
        self
    }

    /// Sets `key` to `value`.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.values.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Parses `KEY=VALUE` and sets it.
    pub fn set_pair(&mut self, pair: &str) -> Result<()> {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("option {pair:?}: expected KEY=VALUE"))
            })?;
        self.values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Fails on any key `specs` does not declare, naming the ones that exist.
    pub fn check(&self, probe: &str, specs: &[OptionSpec]) -> Result<()> {
        for key in self.values.keys() {
            if !specs.iter().any(|spec| spec.name == key) {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                return Err(Error::InvalidArgument(format!(
                    "probe {probe} has no option {key:?} (its options: {known})"
                )));
            }
        }
        Ok(())
    }

    /// The value of `spec` parsed as `T`, or its default.
    pub fn get<T: FromStr>(&self, spec: &OptionSpec) -> Result<T> {
        let text = self
            .values
            .get(spec.name)
            .map_or(spec.default, String::as_str);
        text.parse().map_err(|_| {
            Error::InvalidArgument(format!("option {}={text:?}: {}", spec.name, spec.help))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: OptionSpec = OptionSpec {
        name: "size",
        help: "entries (a number)",
        default: "16",
    };

    #[test]
    fn defaults_values_and_errors() {
        let mut options = ProbeOptions::new();
        assert_eq!(options.get::<u32>(&SIZE).unwrap(), 16);
        options.set_pair("size=32").unwrap();
        assert_eq!(options.get::<u32>(&SIZE).unwrap(), 32);
        options.set_pair("size=lots").unwrap();
        assert!(options
            .get::<u32>(&SIZE)
            .unwrap_err()
            .to_string()
            .contains("entries"));
        assert!(options.set_pair("novalue").is_err());
        assert!(options.set_pair("=x").is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let options = ProbeOptions::new().with("sise", "1");
        let err = options.check("demo", &[SIZE]).unwrap_err();
        assert!(
            err.to_string().contains("\"sise\"") && err.to_string().contains("size"),
            "{err}"
        );
        assert!(ProbeOptions::new()
            .with("size", "1")
            .check("demo", &[SIZE])
            .is_ok());
    }
}
