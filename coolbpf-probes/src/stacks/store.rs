//! [`StackStore`]: reads back the stacks a BPF program kept by content
//! (`coolbpf/stackstore.bpf.h`): native user stacks and CPython frames, by the 64-bit id
//! the program put in its own aggregation key.

use coolbpf_core::{BpfObject, MapView, Result};
use coolbpf_symbolize::PythonFrame;

/// The native user stacks map.
pub const USER_STACKS: &str = "coolbpf_user_stacks";
/// The CPython stacks map.
pub const PYTHON_STACKS: &str = "coolbpf_python_stacks";
/// `struct coolbpf_stored_*`: a u32 count and 4 bytes of padding before the words.
const HEADER: usize = 8;
/// The `flags` bit of an entry frame (`COOLBPF_PYTHON_FRAME_ENTRY`).
const PYTHON_ENTRY: u32 = 1;

/// The stacks of one BPF object that includes `coolbpf/stackstore.bpf.h`.
#[derive(Debug)]
pub struct StackStore {
    user: MapView,
    python: MapView,
}

impl StackStore {
    /// The store of `object` (its maps, found by name).
    pub fn of(object: &BpfObject) -> Result<Self> {
        Ok(Self {
            user: object.map(USER_STACKS)?,
            python: object.map(PYTHON_STACKS)?,
        })
    }

    /// The native user stack `id` names, innermost first: empty for id 0 (no stack),
    /// `None` when it was evicted (the store is LRU) or never stored.
    pub fn ips(&self, id: u64) -> Result<Option<Vec<u64>>> {
        if id == 0 {
            return Ok(Some(Vec::new()));
        }
        Ok(self
            .user
            .lookup(&id.to_ne_bytes())?
            .map(|raw| words(&raw, 1)))
    }

    /// The CPython frames `id` names, innermost first; as [`ips`](Self::ips).
    pub fn python(&self, id: u64) -> Result<Option<Vec<PythonFrame>>> {
        if id == 0 {
            return Ok(Some(Vec::new()));
        }
        let Some(raw) = self.python.lookup(&id.to_ne_bytes())? else {
            return Ok(None);
        };
        Ok(Some(
            words(&raw, 2)
                .chunks_exact(2)
                .map(|pair| PythonFrame {
                    code: pair[0],
                    // The second word is the u32 offset, then the u32 flags (little end
                    // first on x86_64, the only architecture the unwinder supports).
                    offset: (pair[1] & 0xffff_ffff) as u32,
                    entry: ((pair[1] >> 32) as u32) & PYTHON_ENTRY != 0,
                })
                .collect(),
        ))
    }
}

/// The words of the `nr` frames (`per_frame` words each) after the header of a stored
/// stack; as many as the value holds for a count that claims more.
fn words(raw: &[u8], per_frame: usize) -> Vec<u64> {
    let Some(count) = raw.get(..4) else {
        return Vec::new();
    };
    let count = u32::from_ne_bytes([count[0], count[1], count[2], count[3]]) as usize;
    raw.get(HEADER..)
        .unwrap_or_default()
        .chunks_exact(8)
        .take(count.saturating_mul(per_frame))
        .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(nr: u32, words: &[u64], capacity: usize) -> Vec<u8> {
        let mut raw = nr.to_ne_bytes().to_vec();
        raw.extend([0; 4]);
        for i in 0..capacity {
            raw.extend(words.get(i).copied().unwrap_or(0).to_ne_bytes());
        }
        raw
    }

    #[test]
    fn native_stacks_end_at_their_count() {
        assert_eq!(
            words(&stored(2, &[0x10, 0x20, 0x30], 127), 1),
            vec![0x10, 0x20]
        );
        assert_eq!(
            words(&stored(500, &[1], 127), 1).len(),
            127,
            "a bad count is bounded"
        );
        assert!(words(&[1, 0], 1).is_empty());
    }

    #[test]
    fn python_stacks_hold_two_words_a_frame() {
        let raw = stored(1, &[0xc0de, (1 << 32) | 0x2a], 256);
        assert_eq!(words(&raw, 2), vec![0xc0de, (1 << 32) | 0x2a]);
    }
}
