//! What each Xid code means and what to do about it, after NVIDIA's published Xid
//! catalogue (the "Xid Errors" page of NVIDIA's GPU deployment documentation), in short.
//!
//! The alert carries both so that whoever is paged knows at once whether the GPU, the
//! node or only one application needs attention. Codes not listed here are still
//! reported, with [`UNKNOWN`]'s text.

/// One entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XidCode {
    /// The Xid number.
    pub code: u32,
    /// What it means (NVIDIA's name for it, with the usual cause).
    pub meaning: &'static str,
    /// What to do.
    pub action: &'static str,
}

/// What an alert says for a code the table does not list.
pub const UNKNOWN: XidCode = XidCode {
    code: 0,
    meaning: "Xid not in coolbpf's table",
    action: "look the code up in NVIDIA's Xid catalogue; collect nvidia-bug-report.sh output",
};

const RESET: &str = "reset the GPU (nvidia-smi -r) or reboot the node; \
                     if it recurs, run field diagnostics and contact NVIDIA support";

/// The codes, in ascending order (a test checks it: lookups are binary searches).
pub const CODES: &[XidCode] = &[
    XidCode {
        code: 8,
        meaning: "GPU stopped processing: a channel timed out (driver or application)",
        action: "restart the application; if it recurs, update the driver and check the GPU",
    },
    XidCode {
        code: 13,
        meaning: "graphics engine exception: usually the application (out-of-range access, \
                  illegal instruction), seldom the driver or the hardware",
        action: "debug the application (compute-sanitizer); if several applications hit it, \
                 run GPU diagnostics",
    },
    XidCode {
        code: 31,
        meaning: "GPU memory page fault (MMU fault): usually an illegal memory access by the \
                  application",
        action: "debug the application (compute-sanitizer); if known-good code faults, \
                 suspect the driver or the hardware",
    },
    XidCode {
        code: 32,
        meaning: "invalid or corrupted push buffer stream: bad commands reached the GPU \
                  (driver, system memory or PCIe trouble)",
        action: "check the PCIe link and system memory, update the driver; reseat the GPU if \
                 it recurs",
    },
    XidCode {
        code: 38,
        meaning: "driver firmware error",
        action: "update the driver and GPU firmware; contact NVIDIA support if it recurs",
    },
    XidCode {
        code: 43,
        meaning: "GPU stopped processing: an application faulted and its work was stopped; \
                  the GPU itself is healthy",
        action: "no GPU action; look into the application that was stopped",
    },
    XidCode {
        code: 44,
        meaning: "graphics engine fault during a context switch",
        action: RESET,
    },
    XidCode {
        code: 45,
        meaning: "preemptive cleanup: channels torn down after an earlier error or because \
                  the process was killed",
        action: "none by itself; act on the Xid logged before it",
    },
    XidCode {
        code: 48,
        meaning: "double-bit (uncorrectable) ECC error in GPU memory",
        action: "reset the GPU so that the affected memory is retired or remapped; replace \
                 the GPU if it recurs",
    },
    XidCode {
        code: 56,
        meaning: "display engine error",
        action: "update the driver; check the display configuration",
    },
    XidCode {
        code: 57,
        meaning: "error programming the video memory interface",
        action: RESET,
    },
    XidCode {
        code: 58,
        meaning: "unstable video memory interface detected",
        action: RESET,
    },
    XidCode {
        code: 61,
        meaning: "internal micro-controller breakpoint or warning",
        action: "collect nvidia-bug-report.sh output; reset the GPU; contact NVIDIA support \
                 if it recurs",
    },
    XidCode {
        code: 62,
        meaning: "internal micro-controller halt",
        action: RESET,
    },
    XidCode {
        code: 63,
        meaning: "ECC page retirement or row remapping recorded: a memory error was \
                  contained and its location will be retired",
        action: "reset the GPU when convenient so that the retirement or remapping takes \
                 effect (nvidia-smi -q -d PAGE_RETIREMENT,ROW_REMAPPER)",
    },
    XidCode {
        code: 64,
        meaning: "ECC page retirement or row remapping could not be recorded",
        action: "reset the GPU; if it recurs the GPU needs replacement",
    },
    XidCode {
        code: 65,
        meaning: "video processor exception",
        action: RESET,
    },
    XidCode {
        code: 68,
        meaning: "video decoder (NVDEC0) exception",
        action: "check the application's decode workload; update the driver; reset the GPU \
                 if it recurs",
    },
    XidCode {
        code: 69,
        meaning: "graphics engine class error: an illegal method reached the engine",
        action: "usually an application or driver bug: update the driver, debug the \
                 application",
    },
    XidCode {
        code: 74,
        meaning: "NVLink error: a link reported a fault (the text names the link and the \
                  error)",
        action: "check the NVLink/NVSwitch fabric and cabling; reset the GPUs on that link; \
                 contact NVIDIA support if it recurs",
    },
    XidCode {
        code: 79,
        meaning: "GPU has fallen off the bus: it no longer answers on PCIe",
        action: "drain the node and reboot it; check power, cooling and PCIe seating; \
                 replace the GPU if it recurs",
    },
    XidCode {
        code: 80,
        meaning: "corrupted data sent to the GPU",
        action: "check the PCIe link and system memory; update the driver",
    },
    XidCode {
        code: 81,
        meaning: "VGA subsystem error",
        action: RESET,
    },
    XidCode {
        code: 92,
        meaning: "high single-bit (correctable) ECC error rate",
        action: "keep watching the ECC counters; plan a reset or replacement if the rate \
                 stays high",
    },
    XidCode {
        code: 93,
        meaning: "non-fatal violation of the provisioned InfoROM wear limit",
        action: "plan to replace the GPU",
    },
    XidCode {
        code: 94,
        meaning: "contained uncorrectable ECC error: only the application using that memory \
                  was stopped",
        action: "restart the affected application; reset the GPU when convenient so that \
                 the row is remapped",
    },
    XidCode {
        code: 95,
        meaning: "uncontained uncorrectable ECC error: every application on the GPU is \
                  affected",
        action: "stop all work on the GPU and reset it before further use; replace it if it \
                 recurs",
    },
    XidCode {
        code: 109,
        meaning: "context switch timeout",
        action: "restart the application; reset the GPU if it recurs",
    },
    XidCode {
        code: 119,
        meaning: "GSP RPC timeout: the GPU System Processor firmware did not answer the \
                  driver",
        action: "reset the GPU or reboot; update the driver; contact NVIDIA support if it \
                 recurs",
    },
    XidCode {
        code: 120,
        meaning: "GSP error: the GPU System Processor firmware reported an error",
        action: "reset the GPU; update the driver; collect nvidia-bug-report.sh output",
    },
    XidCode {
        code: 121,
        meaning: "C2C (chip-to-chip) link error",
        action: "reset the GPU; contact NVIDIA support if it recurs",
    },
    XidCode {
        code: 140,
        meaning: "unrecovered ECC error: an uncorrectable memory error that could not be \
                  contained",
        action: "reset the GPU before further use; replace it if it recurs",
    },
];

/// The table's entry for `code`, or [`UNKNOWN`] (with `code` filled in).
pub fn lookup(code: u32) -> XidCode {
    CODES
        .binary_search_by_key(&code, |entry| entry.code)
        .map_or(XidCode { code, ..UNKNOWN }, |index| CODES[index])
}

/// Whether the table lists `code`.
pub fn is_known(code: u32) -> bool {
    CODES
        .binary_search_by_key(&code, |entry| entry.code)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_has_the_codes_operators_meet() {
        assert!(CODES.windows(2).all(|pair| pair[0].code < pair[1].code));
        for code in [
            13, 31, 32, 38, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 119, 120, 140,
        ] {
            assert!(is_known(code), "Xid {code} missing");
            assert_eq!(lookup(code).code, code);
            assert!(!lookup(code).meaning.is_empty() && !lookup(code).action.is_empty());
        }
    }

    #[test]
    fn unknown_codes_keep_their_number() {
        let entry = lookup(4_000_000_000);
        assert_eq!(entry.code, 4_000_000_000);
        assert_eq!(entry.meaning, UNKNOWN.meaning);
        assert!(!is_known(0));
    }
}
