//! Helpers for tests that load programs into the kernel.
//!
//! Such a test starts with `if !bpf_available("name") { return; }`. Without root or BPF
//! it is skipped with a message on stderr; with `COOLBPF_REQUIRE_BPF=1` in the
//! environment (CI sets it) a skip is a failure instead, so CI cannot pass by skipping.

use crate::environment::Environment;

/// The environment variable that turns skips into failures.
pub const REQUIRE_BPF_ENV: &str = "COOLBPF_REQUIRE_BPF";

/// Whether BPF tests can run here. Prepares the environment (tracefs, memlock) on the
/// way. Panics instead of returning `false` when `COOLBPF_REQUIRE_BPF=1`.
pub fn bpf_available(test: &str) -> bool {
    match Environment::prepare() {
        Ok(_) => true,
        Err(err) => {
            let required = std::env::var(REQUIRE_BPF_ENV).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: BPF is required ({REQUIRE_BPF_ENV}=1) but unavailable: {err}"
            );
            eprintln!("skipping {test}: BPF unavailable: {err}");
            false
        }
    }
}
