//! A least-recently-used cache bounded by an estimate of the heap bytes its values hold.
//!
//! Values are cheap handles (`Arc`s): evicting one drops the cache's reference only, so a
//! caller still using a value keeps it alive until it is done.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// One cached value with its cost and the tick of its last use.
#[derive(Debug)]
struct Slot<V> {
    value: V,
    bytes: usize,
    tick: u64,
}

/// An LRU map whose total cost stays within `budget` bytes.
///
/// An entry that alone exceeds the budget is still kept (the caller is about to use it);
/// it is the first to go when anything else is inserted.
#[derive(Debug)]
pub(crate) struct ByteLru<K, V> {
    budget: usize,
    used: usize,
    tick: u64,
    slots: HashMap<K, Slot<V>>,
    /// Last-use tick to key: the first entry is the least recently used one.
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    /// An empty cache that holds at most about `budget` bytes.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            used: 0,
            tick: 0,
            slots: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value for `key`, marking it as the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let tick = self.next_tick();
        let slot = self.slots.get_mut(key)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, key.clone());
        Some(slot.value.clone())
    }

    /// Stores `value` under `key` at a cost of `bytes`, replacing any previous value, and
    /// evicts least recently used entries until the budget holds again.
    pub(crate) fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.remove(&key);
        let tick = self.next_tick();
        self.used = self.used.saturating_add(bytes);
        self.order.insert(tick, key.clone());
        let keep = key.clone();
        self.slots.insert(key, Slot { value, bytes, tick });
        self.evict_except(&keep);
    }

    /// Records that the value under `key` now costs `bytes` (it grew lazily).
    pub(crate) fn resize(&mut self, key: &K, bytes: usize) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        self.used = self.used.saturating_sub(slot.bytes).saturating_add(bytes);
        slot.bytes = bytes;
        self.evict_except(key);
    }

    /// Drops the entry under `key`, if any.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.tick);
            self.used = self.used.saturating_sub(slot.bytes);
        }
    }

    /// The summed cost of all entries.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// How many entries are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// Evicts the least recently used entries, sparing `keep`, until within budget.
    fn evict_except(&mut self, keep: &K) {
        while self.used > self.budget {
            let victim = self.order.values().find(|k| *k != keep).cloned();
            match victim {
                Some(victim) => self.remove(&victim),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = ByteLru::new(100);
        lru.insert("a", 1, 40);
        lru.insert("b", 2, 40);
        assert_eq!(lru.get(&"a"), Some(1)); // "b" is now the least recently used
        lru.insert("c", 3, 40);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.used(), 80);
    }

    #[test]
    fn an_oversized_entry_stays_until_the_next_insert() {
        let mut lru = ByteLru::new(10);
        lru.insert("small", 1, 5);
        lru.insert("huge", 2, 50);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.get(&"huge"), Some(2));
        lru.insert("next", 3, 5);
        assert_eq!(lru.get(&"huge"), None);
        assert_eq!(lru.used(), 5);
    }

    #[test]
    fn resize_and_replace_keep_the_accounting_right() {
        let mut lru = ByteLru::new(100);
        lru.insert("a", 1, 10);
        lru.insert("a", 2, 20);
        assert_eq!(lru.used(), 20);
        lru.insert("b", 3, 10);
        lru.resize(&"b", 90);
        // "a" was least recently used and had to go to make room for the grown "b".
        assert_eq!(lru.get(&"a"), None);
        assert_eq!(lru.used(), 90);
        lru.remove(&"b");
        assert_eq!((lru.used(), lru.len()), (0, 0));
    }
}
