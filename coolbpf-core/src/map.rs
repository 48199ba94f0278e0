//! Reading BPF maps: counters, histograms, and draining hash maps.
//!
//! A [`MapView`] owns a duplicate of the map's fd, so it is `Send`, outlives the
//! [`BpfObject`](crate::BpfObject) borrow it came from, and can be read on any thread.
//! Per-CPU maps are summed word by word, which is right for every coolbpf value type
//! (counters, `coolbpf_log2_hist`, `coolbpf_linear_hist` are all arrays of u64).

use std::sync::atomic::{AtomicBool, Ordering};

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType};

use crate::error::{Error, Result};
use crate::histogram::{Histogram, Layout};

/// How many entries one batch syscall moves.
const BATCH_SIZE: u32 = 256;

/// An owned, thread-safe view of one BPF map.
#[derive(Debug)]
pub struct MapView {
    handle: MapHandle,
    name: String,
    /// Cleared the first time the kernel refuses a batch operation on this map, so the
    /// fallback is taken without retrying the batch call every time.
    batch_ok: AtomicBool,
}

/// A key with its value (per-CPU values already summed).
pub type Entry = (Vec<u8>, Vec<u8>);

impl MapView {
    pub(crate) fn new(handle: MapHandle, name: String) -> Self {
        Self {
            handle,
            name,
            batch_ok: AtomicBool::new(true),
        }
    }

    /// A view of a map obtained elsewhere (pinned, created, found by id).
    pub fn from_handle(handle: MapHandle) -> Self {
        let name = handle.name().to_string_lossy().into_owned();
        Self::new(handle, name)
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key size in bytes.
    pub fn key_size(&self) -> u32 {
        self.handle.key_size()
    }

    /// Value size in bytes (per CPU, for per-CPU maps).
    pub fn value_size(&self) -> u32 {
        self.handle.value_size()
    }

    /// The map's type.
    pub fn map_type(&self) -> MapType {
        self.handle.map_type()
    }

    /// The underlying libbpf handle.
    pub fn handle(&self) -> &MapHandle {
        &self.handle
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() == self.key_size() as usize {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "map {}: key has {} bytes, the map's keys have {}",
                self.name,
                key.len(),
                self.key_size()
            )))
        }
    }

    /// The value at `key` (per-CPU values summed as u64 words), or `None`.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let context = || format!("lookup in map {}", self.name);
        if self.map_type().is_percpu() {
            let per_cpu = self
                .handle
                .lookup_percpu(key, MapFlags::ANY)
                .map_err(|e| Error::bpf(context(), e))?;
            Ok(per_cpu.map(|values| sum_words(&values)))
        } else {
            self.handle
                .lookup(key, MapFlags::ANY)
                .map_err(|e| Error::bpf(context(), e))
        }
    }

    /// The value at `key` of a per-CPU map, one per possible CPU (indexed by CPU id), or
    /// `None`. Fails on a map that is not per-CPU.
    pub fn lookup_per_cpu(&self, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        self.check_key(key)?;
        if !self.map_type().is_percpu() {
            return Err(Error::InvalidArgument(format!(
                "map {} is a {:?}, not a per-CPU map",
                self.name,
                self.map_type()
            )));
        }
        self.handle
            .lookup_percpu(key, MapFlags::ANY)
            .map_err(|e| Error::bpf(format!("lookup in map {}", self.name), e))
    }

    /// Writes `value` at `key`.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        self.handle
            .update(key, value, MapFlags::ANY)
            .map_err(|e| Error::bpf(format!("update of map {}", self.name), e))
    }

    /// Every entry, without removing anything (per-CPU values summed).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for key in self.handle.keys() {
            // A key deleted between listing and lookup is simply gone: skip it.
            if let Some(value) = self.lookup(&key)? {
                entries.push((key, value));
            }
        }
        Ok(entries)
    }

    /// Removes and returns every entry: with `BPF_MAP_LOOKUP_AND_DELETE_BATCH` where the
    /// kernel and map type allow it (each entry is read and removed atomically), then key
    /// by key for whatever is left. libbpf's batch iterator ends silently on an error, so
    /// the sweep is what guarantees nothing stays behind; when the batch path moved nothing
    /// while the sweep found entries, batches are not tried again on this map.
    pub fn drain(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let try_batch = self.batch_ok.load(Ordering::Relaxed) && !self.map_type().is_percpu();
        if try_batch {
            entries.extend(
                self.handle
                    .lookup_and_delete_batch(BATCH_SIZE, MapFlags::ANY, MapFlags::ANY)
                    .map_err(|e| Error::bpf(format!("batch drain of map {}", self.name), e))?,
            );
        }
        let batched = entries.len();
        entries.extend(self.drain_one_by_one()?);
        if try_batch && batched == 0 && entries.len() > batched {
            self.batch_ok.store(false, Ordering::Relaxed);
        }
        Ok(entries)
    }

    /// Whether draining still uses batch operations on this map.
    pub fn uses_batch_ops(&self) -> bool {
        self.batch_ok.load(Ordering::Relaxed) && !self.map_type().is_percpu()
    }

    fn drain_one_by_one(&self) -> Result<Vec<Entry>> {
        let keys: Vec<Vec<u8>> = self.handle.keys().collect();
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = self.lookup(&key)? {
                match self.handle.delete(&key) {
                    Ok(()) => entries.push((key, value)),
                    // Deleted concurrently by someone else: its value was theirs.
                    Err(err) if err.kind() == libbpf_rs::ErrorKind::NotFound => {}
                    Err(err) => {
                        return Err(Error::bpf(format!("delete from map {}", self.name), err))
                    }
                }
            }
        }
        Ok(entries)
    }

    /// The u64 counter at `key` (summed over CPUs); 0 when absent.
    pub fn counter(&self, key: &[u8]) -> Result<u64> {
        Ok(self.lookup(key)?.map_or(0, |v| first_word(&v)))
    }

    /// The u64 counter of every entry.
    pub fn counters(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        Ok(self
            .entries()?
            .into_iter()
            .map(|(k, v)| (k, first_word(&v)))
            .collect())
    }

    /// Each u64 slot of an array map (e.g. `coolbpf_losses`), summed over CPUs.
    pub fn array_counters(&self) -> Result<Vec<u64>> {
        let entries = self.handle.max_entries();
        (0..entries)
            .map(|index| self.counter(&index.to_ne_bytes()))
            .collect()
    }

    /// The histogram stored at `key`.
    pub fn histogram(&self, key: &[u8], layout: Layout, unit: &str) -> Result<Histogram> {
        match self.lookup(key)? {
            Some(value) => Histogram::from_raw(layout, &value, unit),
            None => Ok(Histogram {
                unit: unit.to_owned(),
                ..Histogram::default()
            }),
        }
    }

    /// Every histogram in the map, by key.
    pub fn histograms(&self, layout: Layout, unit: &str) -> Result<Vec<(Vec<u8>, Histogram)>> {
        self.entries()?
            .into_iter()
            .map(|(key, value)| Ok((key, Histogram::from_raw(layout, &value, unit)?)))
            .collect()
    }
}

fn first_word(value: &[u8]) -> u64 {
    value
        .get(..8)
        .map_or(0, |w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
}

/// Sums per-CPU values word by word (u64, native endian). A trailing partial word is
/// taken from the first CPU.
pub fn sum_words(per_cpu: &[Vec<u8>]) -> Vec<u8> {
    let Some(first) = per_cpu.first() else {
        return Vec::new();
    };
    let mut sum = first.clone();
    for value in &per_cpu[1..] {
        for (acc, word) in sum.chunks_exact_mut(8).zip(value.chunks_exact(8)) {
            let total = u64::from_ne_bytes((&*acc).try_into().expect("8 bytes"))
                .wrapping_add(u64::from_ne_bytes(word.try_into().expect("8 bytes")));
            acc.copy_from_slice(&total.to_ne_bytes());
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_values_sum_word_by_word() {
        let cpu = |a: u64, b: u64| [a.to_ne_bytes(), b.to_ne_bytes()].concat();
        let sum = sum_words(&[cpu(1, 10), cpu(2, 20), cpu(3, 30)]);
        assert_eq!(sum, cpu(6, 60));
        assert!(sum_words(&[]).is_empty());
    }
}
