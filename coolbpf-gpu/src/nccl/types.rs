//! NCCL's enums as `nccl.h` (2.x) defines them: `ncclDataType_t`, `ncclRedOp_t` and
//! `ncclResult_t`, as label text. A value the header does not define (a newer NCCL, a
//! reduction made by `ncclRedOpCreatePreMulSum`, a garbage argument) is reported as its
//! number, never refused.

/// `ncclDataType_t` values 0..=11 by name and element size in bytes.
const DATA_TYPES: [(&str, u64); 12] = [
    ("int8", 1),
    ("uint8", 1),
    ("int32", 4),
    ("uint32", 4),
    ("int64", 8),
    ("uint64", 8),
    ("float16", 2),
    ("float32", 4),
    ("float64", 8),
    ("bfloat16", 2),
    ("float8e4m3", 1),
    ("float8e5m2", 1),
];

/// The built-in `ncclRedOp_t` values 0..=4. Values from `ncclNumOps` (5) on are made at
/// run time by `ncclRedOpCreatePreMulSum` and name nothing fixed.
const RED_OPS: [&str; 5] = ["sum", "prod", "max", "min", "avg"];

/// `ncclResult_t` values 0..=8.
const RESULTS: [&str; 9] = [
    "ncclSuccess",
    "ncclUnhandledCudaError",
    "ncclSystemError",
    "ncclInternalError",
    "ncclInvalidArgument",
    "ncclInvalidUsage",
    "ncclRemoteError",
    "ncclInProgress",
    "ncclTimeout",
];

fn entry<T: Copy>(table: &[T], value: u32) -> Option<T> {
    table.get(usize::try_from(value).ok()?).copied()
}

/// The data type's name (`float32`), or its number.
pub fn dtype_name(dtype: u32) -> String {
    entry(&DATA_TYPES, dtype).map_or_else(|| dtype.to_string(), |(name, _)| name.to_owned())
}

/// The size of one element of `dtype`, bytes; `None` for a value `nccl.h` does not define.
pub fn dtype_size(dtype: u32) -> Option<u64> {
    entry(&DATA_TYPES, dtype).map(|(_, size)| size)
}

/// The reduction's name (`sum`), or its number.
pub fn redop_name(op: u32) -> String {
    entry(&RED_OPS, op).map_or_else(|| op.to_string(), str::to_owned)
}

/// The result's name (`ncclInvalidArgument`), when `nccl.h` defines it.
pub fn result_name(code: i64) -> Option<&'static str> {
    entry(&RESULTS, u32::try_from(code).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_have_names_and_sizes() {
        assert_eq!(dtype_name(7), "float32");
        assert_eq!(dtype_size(7), Some(4));
        assert_eq!(dtype_name(9), "bfloat16");
        assert_eq!(dtype_size(11), Some(1));
        assert_eq!(redop_name(0), "sum");
        assert_eq!(redop_name(4), "avg");
        assert_eq!(result_name(1), Some("ncclUnhandledCudaError"));
    }

    #[test]
    fn unknown_values_are_numbers() {
        assert_eq!(dtype_name(12), "12");
        assert_eq!(dtype_name(u32::MAX), u32::MAX.to_string());
        assert_eq!(dtype_size(99), None);
        assert_eq!(redop_name(5), "5");
        assert_eq!(result_name(-1), None);
        assert_eq!(result_name(9), None);
    }
}
