//! Features found without attaching anything: BTF, map types, helpers, batch operations.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::libbpf_sys::{self, bpf_func_id};
use libbpf_rs::{Btf, MapCore, MapFlags, MapHandle, MapType, ProgramType};

use super::Feature;

/// Kernel BTF loads (from `/sys/kernel/btf/vmlinux`, or a vmlinux libbpf finds) and has types.
pub(super) fn btf() -> Feature {
    match Btf::from_vmlinux() {
        Ok(btf) if !btf.is_empty() => Feature::available(),
        Ok(_) => Feature::unavailable("kernel BTF has no types"),
        Err(e) => Feature::unavailable(format!("{e:#}")),
    }
}

/// The kernel creates a map of `map_type` (libbpf creates a small one and closes it).
pub(super) fn map_type(map_type: MapType, name: &str) -> Feature {
    match map_type.is_supported() {
        Ok(true) => Feature::available(),
        Ok(false) => Feature::unavailable(format!("the kernel refuses to create {name} maps")),
        Err(e) => Feature::unavailable(format!("probing {name} failed: {e:#}")),
    }
}

/// The verifier accepts a call to `helper` from a program of `program_type` (libbpf
/// loads a program that calls it and reads the verifier's verdict).
pub(super) fn helper(program_type: ProgramType, helper: bpf_func_id, name: &str) -> Feature {
    match program_type.is_helper_supported(helper) {
        Ok(true) => Feature::available(),
        Ok(false) => Feature::unavailable(format!(
            "the verifier rejects {name} in {program_type:?} programs"
        )),
        Err(e) => Feature::unavailable(format!("probing {name} failed: {e:#}")),
    }
}

/// `BPF_MAP_LOOKUP_BATCH` returns every entry of a small hash map in one call.
pub(super) fn batch_map_ops() -> Feature {
    Feature::from_outcome(batch_lookup())
}

fn batch_lookup() -> Result<(), String> {
    const ENTRIES: u32 = 4;
    let create_opts = libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    let map = MapHandle::create(
        MapType::Hash,
        Some("coolbpf_batch"),
        4,
        8,
        ENTRIES,
        &create_opts,
    )
    .map_err(|e| format!("creating a hash map failed: {e:#}"))?;
    for key in 0..ENTRIES {
        map.update(
            &key.to_ne_bytes(),
            &u64::from(key).to_ne_bytes(),
            MapFlags::ANY,
        )
        .map_err(|e| format!("filling the hash map failed: {e:#}"))?;
    }
    let mut keys = [0u32; ENTRIES as usize];
    let mut values = [0u64; ENTRIES as usize];
    // For hash maps the batch cursor is a u32 bucket index.
    let mut cursor = 0u32;
    let mut count = ENTRIES;
    let batch_opts = libbpf_sys::bpf_map_batch_opts {
        sz: size_of::<libbpf_sys::bpf_map_batch_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    // SAFETY: `keys` and `values` hold `count` keys (4 bytes) and values (8 bytes), the
    // map's sizes; `cursor` is the 4 bytes a hash map's batch cursor takes; a null
    // in_batch starts from the beginning; every pointer outlives the call.
    let ret = unsafe {
        libbpf_sys::bpf_map_lookup_batch(
            map.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            (&raw mut cursor).cast(),
            keys.as_mut_ptr().cast(),
            values.as_mut_ptr().cast(),
            &raw mut count,
            &raw const batch_opts,
        )
    };
    // ENOENT: the walk reached the end of the map, which is expected in a single batch.
    if ret < 0 && ret != -libc::ENOENT {
        return Err(format!(
            "BPF_MAP_LOOKUP_BATCH failed: {}",
            io::Error::from_raw_os_error(-ret)
        ));
    }
    if count != ENTRIES {
        return Err(format!(
            "BPF_MAP_LOOKUP_BATCH returned {count} of {ENTRIES} entries"
        ));
    }
    Ok(())
}
