//! Telling communicators apart across processes: [`CommId`], a hash of the
//! `ncclUniqueId` every rank of one communicator was given.
//!
//! An `ncclUniqueId` is 128 bytes that one rank makes (`ncclGetUniqueId`) and sends to
//! the others by the program's own means. Its first bytes are NCCL's bootstrap handle: a
//! random 64-bit magic, then the root's socket address (family, port, IP). So the first
//! 48 bytes, which `calls.bpf.c` reads off the stack (`BLOB_STACK`), differ between two
//! ids and are the same in every rank handed one id: on every host, which is what makes
//! the hash comparable between hosts' metrics. The hash is 64-bit FNV-1a, written as 16
//! hex digits, fixed here so that any version of coolbpf gives one id the same name.

use std::fmt;

/// Bytes of the `ncclUniqueId` hashed.
pub const ID_BYTES: usize = 48;

/// A communicator's identity: the hash of the start of its `ncclUniqueId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommId(pub u64);

impl CommId {
    /// The id of a communicator whose `ncclUniqueId` starts with `bytes` (only the first
    /// [`ID_BYTES`] count).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = bytes
            .iter()
            .take(ID_BYTES)
            .fold(BASIS, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME));
        Self(hash)
    }

    /// The id from the captured words (native byte order, as they sat in memory).
    pub fn from_words(words: &[u64]) -> Self {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for CommId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_bytes_count_and_words_are_memory_order() {
        let mut id = [0u8; 128];
        id[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        let a = CommId::from_bytes(&id);
        id[100] = 1;
        assert_eq!(CommId::from_bytes(&id), a, "bytes past 48 are not read");
        id[47] = 1;
        assert_ne!(CommId::from_bytes(&id), a);
        let words = [0x1122_3344_5566_7788u64, 0, 0, 0, 0, 0];
        assert_eq!(CommId::from_words(&words), a);
        assert_eq!(a.to_string().len(), 16);
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // FNV-1a 64 of the empty input is its offset basis; of "a", the published value.
        assert_eq!(CommId::from_bytes(b"").0, 0xcbf2_9ce4_8422_2325);
        assert_eq!(CommId::from_bytes(b"a").0, 0xaf63_dc4c_8601_ec8c);
    }
}
