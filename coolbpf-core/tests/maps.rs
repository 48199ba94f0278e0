//! Map helpers against real kernel maps: per-CPU values are summed, histograms decode,
//! and draining empties a map whether or not batch operations are used.

use coolbpf_core::histogram::{Layout, LOG2_SLOTS};
use coolbpf_core::sys::perf_event::online_cpus;
use coolbpf_core::testing::bpf_available;
use coolbpf_core::MapView;
use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

fn create(map_type: MapType, name: &str, key_size: u32, value_size: u32, entries: u32) -> MapView {
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let handle = MapHandle::create(map_type, Some(name), key_size, value_size, entries, &opts)
        .expect("create map");
    MapView::from_handle(handle)
}

fn possible_cpus() -> usize {
    libbpf_rs::num_possible_cpus().expect("possible cpus")
}

#[test]
fn hash_map_drains_completely_with_batch_ops() {
    if !bpf_available("hash_map_drains_completely_with_batch_ops") {
        return;
    }
    let map = create(MapType::Hash, "drain_test", 4, 8, 4096);
    for key in 0..1000u32 {
        map.update(&key.to_ne_bytes(), &(u64::from(key) * 3).to_ne_bytes())
            .expect("update");
    }
    let mut drained = map.drain().expect("drain");
    drained.sort();
    assert_eq!(drained.len(), 1000);
    for (key, value) in &drained {
        let key = u32::from_ne_bytes(key.as_slice().try_into().expect("u32 key"));
        assert_eq!(
            u64::from_ne_bytes(value.as_slice().try_into().expect("u64")),
            u64::from(key) * 3
        );
    }
    assert!(
        map.entries().expect("entries").is_empty(),
        "nothing left behind"
    );
    assert!(
        map.uses_batch_ops(),
        "this kernel has batch ops, so the batch path stays on"
    );
}

#[test]
fn per_cpu_hash_sums_cpus_and_drains_key_by_key() {
    if !bpf_available("per_cpu_hash_sums_cpus_and_drains_key_by_key") {
        return;
    }
    let cpus = possible_cpus();
    let map = create(MapType::PercpuHash, "percpu_test", 4, 8, 64);
    for key in 0..10u32 {
        // CPU i holds key + i: the sum over CPUs is cpus*key + cpus*(cpus-1)/2.
        let values: Vec<Vec<u8>> = (0..cpus)
            .map(|cpu| (u64::from(key) + cpu as u64).to_ne_bytes().to_vec())
            .collect();
        map.handle()
            .update_percpu(&key.to_ne_bytes(), &values, MapFlags::ANY)
            .expect("update_percpu");
    }
    let n = cpus as u64;
    assert_eq!(
        map.counter(&7u32.to_ne_bytes()).expect("counter"),
        7 * n + n * (n - 1) / 2
    );
    let drained = map.drain().expect("drain");
    assert_eq!(drained.len(), 10);
    assert!(map.entries().expect("entries").is_empty());
    assert!(
        !map.uses_batch_ops(),
        "per-CPU maps take the key-by-key path"
    );
}

#[test]
fn per_cpu_log2_histogram_is_summed_over_cpus() {
    if !bpf_available("per_cpu_log2_histogram_is_summed_over_cpus") {
        return;
    }
    let cpus = possible_cpus();
    let value_size = ((LOG2_SLOTS + 1) * 8) as u32;
    let map = create(MapType::PercpuArray, "hist_test", 4, value_size, 1);
    // Every CPU recorded one value of 5 (slot 3: 4..=7) and CPU 0 also one 0 (slot 0).
    let values: Vec<Vec<u8>> = (0..cpus)
        .map(|cpu| {
            let mut words = vec![0u64; LOG2_SLOTS + 1];
            words[3] = 1;
            words[LOG2_SLOTS] = 5;
            if cpu == 0 {
                words[0] = 1;
            }
            words.iter().flat_map(|w| w.to_ne_bytes()).collect()
        })
        .collect();
    map.handle()
        .update_percpu(&0u32.to_ne_bytes(), &values, MapFlags::ANY)
        .expect("update");
    let histogram = map
        .histogram(&0u32.to_ne_bytes(), Layout::Log2, "us")
        .expect("histogram");
    let buckets: Vec<(u64, u64)> = histogram.buckets.iter().map(|b| (b.le, b.count)).collect();
    assert_eq!(buckets, vec![(0, 1), (7, cpus as u64)]);
    assert_eq!(histogram.count, cpus as u64 + 1);
    assert_eq!(histogram.sum, 5 * cpus as u64);
    assert_eq!(histogram.percentile(1.0), Some(7));
    assert!(online_cpus().expect("online").len() <= cpus);
}

#[test]
fn wrong_key_size_is_an_error() {
    if !bpf_available("wrong_key_size_is_an_error") {
        return;
    }
    let map = create(MapType::Hash, "keysize_test", 4, 8, 4);
    let err = map
        .lookup(&[0u8; 8])
        .expect_err("8-byte key into a 4-byte-key map");
    assert!(err.to_string().contains("key has 8 bytes"), "{err}");
}
