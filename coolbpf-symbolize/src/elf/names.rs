//! Names and paths decoded once: raw bytes to UTF-8, demangled or joined, remembered by
//! where the raw bytes are, because a profile names the same few functions and files
//! over and over and demangling costs microseconds.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use crate::demangle::demangle;
use crate::dwarf::StrRef;

/// Bytes kept by one [`Memo`] before it starts over: enough for the functions of a
/// large profile, little next to the parsed DWARF.
const MAX_BYTES: usize = 8 << 20;

/// What a cached value costs, for the byte bound.
pub(crate) trait HeapBytes {
    /// Heap bytes held, with bookkeeping.
    fn heap_bytes(&self) -> usize;
}

/// Where a raw name is: unique within one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NameKey {
    /// The symbol starting at this address.
    Symbol(u64),
    /// A DWARF string.
    Dwarf(StrRef),
}

/// A name as stored and as shown.
#[derive(Debug)]
pub(crate) struct Names {
    raw: Box<str>,
    /// `None` when demangling leaves the name as it is (C names).
    demangled: Option<Box<str>>,
}

impl Names {
    /// Decodes and demangles `raw`.
    pub(crate) fn new(raw: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(raw);
        let demangled = match demangle(&raw) {
            Cow::Borrowed(_) => None,
            Cow::Owned(d) => Some(d.into_boxed_str()),
        };
        Self {
            raw: raw.into(),
            demangled,
        }
    }

    /// The name as stored (mangled, if it was).
    pub(crate) fn raw(&self) -> &str {
        &self.raw
    }

    /// The name for people.
    pub(crate) fn function(&self) -> &str {
        self.demangled.as_deref().unwrap_or(&self.raw)
    }
}

impl HeapBytes for Arc<Names> {
    fn heap_bytes(&self) -> usize {
        self.raw.len() + self.demangled.as_ref().map_or(0, |d| d.len()) + 64
    }
}

impl HeapBytes for Arc<str> {
    fn heap_bytes(&self) -> usize {
        self.len() + 48
    }
}

/// A bounded map from where raw bytes are to what they decode to.
#[derive(Debug)]
pub(crate) struct Memo<K, V> {
    inner: Mutex<(HashMap<K, V>, usize)>,
}

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }
}

impl<K: Hash + Eq, V: Clone + HeapBytes> Memo<K, V> {
    /// The value for `key`, made by `make` the first time.
    pub(crate) fn get(&self, key: K, make: impl FnOnce() -> V) -> V {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, bytes) = &mut *inner;
        if let Some(value) = map.get(&key) {
            return value.clone();
        }
        let value = make();
        *bytes += value.heap_bytes();
        if *bytes > MAX_BYTES {
            map.clear();
            *bytes = value.heap_bytes();
        }
        map.insert(key, value.clone());
        value
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}
