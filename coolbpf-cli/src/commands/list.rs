//! `coolbpf list [--json]`.

use coolbpf_core::Features;
use coolbpf_gpu::CATALOGUE;
use coolbpf_probes::Availability;
use serde_json::json;

/// Prints the probe registry with each probe's availability on this kernel.
pub fn run(json: bool) {
    // Availability needs detection, which needs privileges; without them, say so per
    // probe rather than failing the whole listing.
    let features = Features::detect();
    let availability = |probe: &coolbpf_probes::ProbeInfo| match &features {
        Ok(features) => probe.availability(features),
        Err(err) => Availability {
            available: false,
            reason: Some(format!("cannot detect features: {err}")),
        },
    };
    if json {
        for probe in CATALOGUE.probes() {
            let available = availability(probe);
            let options: Vec<_> = probe
                .options
                .iter()
                .map(|o| json!({ "name": o.name, "default": o.default, "help": o.help }))
                .collect();
            let line = json!({
                "name": probe.name,
                "category": probe.category,
                "description": probe.description,
                "hooks": probe.hooks,
                "available": available.available,
                "reason": available.reason,
                "options": options,
            });
            println!("{line}");
        }
        return;
    }
    println!(
        "{:<12} {:<10} {:<10} DESCRIPTION",
        "PROBE", "CATEGORY", "AVAILABLE"
    );
    for probe in CATALOGUE.probes() {
        let available = availability(probe);
        let category = serde_json::to_value(probe.category).ok();
        let category = category.as_ref().and_then(|c| c.as_str()).unwrap_or("-");
        let yes_no = if available.available { "yes" } else { "no" };
        println!(
            "{:<12} {category:<10} {yes_no:<10} {}",
            probe.name, probe.description
        );
        if let Some(reason) = available.reason {
            println!("{:<12} {:<10} {:<10} why not: {reason}", "", "", "");
        }
        for option in probe.options {
            println!(
                "{:<12} {:<10} {:<10} --opt {}={} : {}",
                "", "", "", option.name, option.default, option.help
            );
        }
    }
}
