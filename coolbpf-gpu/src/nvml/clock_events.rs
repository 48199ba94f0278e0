//! Why the GPU's clocks are held below their maximum: NVML's clock event reasons (called
//! throttle reasons before driver 535), decoded from the bitmask into names.
//!
//! The bit values are NVML's (`nvmlClocksEventReason*` in nvml.h); they are fixed by the
//! driver's ABI, and a test checks them against `nvml-wrapper`'s own constants.

/// Each known reason: its NVML bit and the `reason` label it gets.
pub const CLOCK_EVENT_REASONS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// The names of the reasons set in `mask`, in bit order; bits this table does not know
/// (a newer driver's) come out as `bit_N`, so none is hidden.
pub fn decode_clock_event_reasons(mask: u64) -> Vec<String> {
    let known: u64 = CLOCK_EVENT_REASONS.iter().map(|(bit, _)| bit).sum();
    let mut names: Vec<String> = CLOCK_EVENT_REASONS
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let unknown = mask & !known;
    names.extend(
        (0..64)
            .filter(|bit| unknown & (1 << bit) != 0)
            .map(|bit| format!("bit_{bit}")),
    );
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvml_wrapper::bitmasks::device::ThrottleReasons;

    #[test]
    fn bits_agree_with_nvml_wrapper() {
        let theirs = [
            (ThrottleReasons::GPU_IDLE, "gpu_idle"),
            (
                ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
                "applications_clocks_setting",
            ),
            (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
            (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
            (ThrottleReasons::SYNC_BOOST, "sync_boost"),
            (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
            (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
            (
                ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
                "hw_power_brake_slowdown",
            ),
            (
                ThrottleReasons::DISPLAY_CLOCK_SETTING,
                "display_clock_setting",
            ),
        ];
        for (flag, name) in theirs {
            assert!(
                CLOCK_EVENT_REASONS.contains(&(flag.bits(), name)),
                "{name} = {:#x}",
                flag.bits()
            );
        }
        assert_eq!(theirs.len(), CLOCK_EVENT_REASONS.len());
    }

    #[test]
    fn masks_decode_to_names() {
        assert!(decode_clock_event_reasons(0).is_empty());
        assert_eq!(decode_clock_event_reasons(0x1), ["gpu_idle"]);
        assert_eq!(
            decode_clock_event_reasons(0x4 | 0x40),
            ["sw_power_cap", "hw_thermal_slowdown"]
        );
        assert_eq!(
            decode_clock_event_reasons(0x8 | (1 << 12)),
            ["hw_slowdown", "bit_12"]
        );
    }
}
