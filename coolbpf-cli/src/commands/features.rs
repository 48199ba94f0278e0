//! `coolbpf features [--json]`.

use coolbpf_core::{Features, Result};

/// Prints the kernel feature report.
pub fn run(json: bool) -> Result<()> {
    let features = Features::detect()?;
    if json {
        let line = serde_json::to_string(features)
            .map_err(|e| coolbpf_core::Error::Decode(e.to_string()))?;
        println!("{line}");
    } else {
        print!("{features}");
    }
    Ok(())
}
