//! Histograms: the shape BPF programs fill (`struct coolbpf_log2_hist` and
//! `struct coolbpf_linear_hist` in `coolbpf.bpf.h`) and the snapshot users read.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of slots in `struct coolbpf_log2_hist` (bit lengths 0..=64).
pub const LOG2_SLOTS: usize = 65;
/// Number of slots in `struct coolbpf_linear_hist` (its C default).
pub const LINEAR_SLOTS: usize = 100;

/// How raw slots map to value ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Slot 0 holds 0; slot `i >= 1` holds `[2^(i-1), 2^i - 1]`.
    Log2,
    /// Slot `i` holds `[min + i*step, min + (i+1)*step)`; the last slot is open-ended.
    Linear {
        /// Lower bound of slot 0.
        min: u64,
        /// Width of each slot.
        step: u64,
    },
}

/// One histogram bucket: how many values were `<= le` and above the previous bucket's `le`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Inclusive upper bound (`u64::MAX` for an open-ended last bucket).
    pub le: u64,
    /// Values that fell in this bucket.
    pub count: u64,
}

/// A histogram read out of the kernel: non-empty buckets, total count and sum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// The unit of the values ("us", "ns", "bytes"...).
    pub unit: String,
    /// Non-empty buckets in increasing order of `le`.
    pub buckets: Vec<Bucket>,
    /// Number of values recorded.
    pub count: u64,
    /// Sum of the values recorded.
    pub sum: u64,
}

impl Histogram {
    /// Builds a histogram from raw slot counts.
    pub fn from_slots(layout: Layout, slots: &[u64], sum: u64, unit: impl Into<String>) -> Self {
        let last = slots.len().saturating_sub(1);
        let buckets: Vec<Bucket> = slots
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(index, &count)| Bucket {
                le: upper_bound(layout, index, index == last),
                count,
            })
            .collect();
        Self {
            unit: unit.into(),
            count: buckets.iter().map(|b| b.count).sum(),
            buckets,
            sum,
        }
    }

    /// Decodes a `struct coolbpf_log2_hist` / `coolbpf_linear_hist` value
    /// (`slots` little-endian u64s followed by the u64 sum).
    pub fn from_raw(layout: Layout, raw: &[u8], unit: impl Into<String>) -> Result<Self> {
        let slots = raw_slots(layout, raw)?;
        let (sum, slots) = slots
            .split_last()
            .expect("raw_slots returns at least the sum");
        Ok(Self::from_slots(layout, slots, *sum, unit))
    }

    /// Adds another histogram of the same layout into this one.
    pub fn merge(&mut self, other: &Histogram) {
        let mut merged: Vec<Bucket> = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut left, mut right) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            let next = match (left.peek(), right.peek()) {
                (Some(a), Some(b)) if a.le == b.le => {
                    let bucket = Bucket {
                        le: a.le,
                        count: a.count + b.count,
                    };
                    left.next();
                    right.next();
                    bucket
                }
                (Some(a), Some(b)) if a.le < b.le => *left.next().expect("peeked"),
                (Some(_) | None, Some(_)) => *right.next().expect("peeked"),
                (Some(_), None) => *left.next().expect("peeked"),
                (None, None) => break,
            };
            merged.push(next);
        }
        self.buckets = merged;
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The mean value, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The `q`-quantile (`0.0..=1.0`), estimated as the upper bound of the bucket that
    /// holds it: an upper bound on the true value, exact to the bucket's width.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for bucket in &self.buckets {
            seen += bucket.count;
            if seen >= rank {
                return Some(bucket.le);
            }
        }
        self.buckets.last().map(|b| b.le)
    }
}

/// Number of u64 words (slots plus sum) in a raw histogram of `layout`.
pub fn raw_words(layout: Layout) -> usize {
    match layout {
        Layout::Log2 => LOG2_SLOTS + 1,
        Layout::Linear { .. } => LINEAR_SLOTS + 1,
    }
}

fn raw_slots(layout: Layout, raw: &[u8]) -> Result<Vec<u64>> {
    let words = raw_words(layout);
    if raw.len() < words * 8 {
        return Err(Error::Decode(format!(
            "histogram value has {} bytes, expected at least {} for {layout:?}",
            raw.len(),
            words * 8
        )));
    }
    Ok(raw[..words * 8]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

fn upper_bound(layout: Layout, index: usize, is_last: bool) -> u64 {
    match layout {
        Layout::Log2 if index >= 64 => u64::MAX,
        Layout::Log2 => (1u64 << index) - 1,
        Layout::Linear { .. } if is_last => u64::MAX,
        Layout::Linear { min, step } => min
            .saturating_add(step.saturating_mul(index as u64 + 1))
            .saturating_sub(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn log2_bounds_follow_bit_length() {
        let mut slots = vec![0u64; LOG2_SLOTS];
        slots[0] = 1; // value 0
        slots[1] = 2; // value 1
        slots[3] = 4; // values 4..=7
        let h = Histogram::from_slots(Layout::Log2, &slots, 30, "us");
        let les: Vec<u64> = h.buckets.iter().map(|b| b.le).collect();
        assert_eq!(les, vec![0, 1, 7]);
        assert_eq!(h.count, 7);
        assert_eq!(h.percentile(0.5), Some(7));
        assert_eq!(h.percentile(0.1), Some(0));
    }

    #[test]
    fn from_raw_rejects_short_values() {
        assert!(Histogram::from_raw(Layout::Log2, &[0u8; 16], "us").is_err());
        let mut words = vec![0u64; LOG2_SLOTS + 1];
        words[2] = 5;
        words[LOG2_SLOTS] = 12;
        let h = Histogram::from_raw(Layout::Log2, &raw(&words), "ns").unwrap();
        assert_eq!(h.buckets, vec![Bucket { le: 3, count: 5 }]);
        assert_eq!(h.sum, 12);
    }

    #[test]
    fn linear_last_bucket_is_open() {
        let mut slots = vec![0u64; 4];
        slots[1] = 1;
        slots[3] = 2;
        let h = Histogram::from_slots(Layout::Linear { min: 10, step: 5 }, &slots, 0, "ms");
        assert_eq!(h.buckets[0].le, 19);
        assert_eq!(h.buckets[1].le, u64::MAX);
    }

    #[test]
    fn merge_adds_matching_buckets() {
        let mut a = Histogram::from_slots(Layout::Log2, &[0, 1, 2], 5, "us");
        let b = Histogram::from_slots(Layout::Log2, &[3, 0, 1, 4], 20, "us");
        a.merge(&b);
        let pairs: Vec<(u64, u64)> = a.buckets.iter().map(|b| (b.le, b.count)).collect();
        assert_eq!(pairs, vec![(0, 3), (1, 1), (3, 3), (7, 4)]);
        assert_eq!((a.count, a.sum), (11, 25));
    }
}
