//! A sorted array of address ranges for binary search, tolerant of overlaps.

/// Address ranges `[begin, end)` with a value each, sorted by `begin`.
///
/// Well-formed DWARF gives disjoint ranges at each level (compilation units, functions,
/// inlined calls at one depth); malformed DWARF may not, so lookups also find a range
/// that starts earlier and reaches further than the one just before the address.
#[derive(Debug)]
pub(crate) struct RangeMap<T> {
    begins: Vec<u64>,
    ends: Vec<u64>,
    /// The largest `end` among this entry and all before it: how far back a lookup
    /// has to look for an overlapping range.
    reach: Vec<u64>,
    values: Vec<T>,
}

impl<T> Default for RangeMap<T> {
    fn default() -> Self {
        Self {
            begins: Vec::new(),
            ends: Vec::new(),
            reach: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T> RangeMap<T> {
    /// Builds the map from `(begin, end, value)`, dropping empty ranges.
    pub(crate) fn new(mut entries: Vec<(u64, u64, T)>) -> Self {
        entries.retain(|(begin, end, _)| begin < end);
        // Often already in order (units and functions are laid out as compiled).
        if !entries.is_sorted_by_key(|(begin, _, _)| *begin) {
            entries.sort_unstable_by_key(|(begin, end, _)| (*begin, *end));
        }
        let mut map = Self {
            begins: Vec::with_capacity(entries.len()),
            ends: Vec::with_capacity(entries.len()),
            reach: Vec::with_capacity(entries.len()),
            values: Vec::with_capacity(entries.len()),
        };
        let mut reach = 0;
        for (begin, end, value) in entries {
            reach = reach.max(end);
            map.begins.push(begin);
            map.ends.push(end);
            map.reach.push(reach);
            map.values.push(value);
        }
        map
    }

    /// The range containing `addr` that starts last (the innermost one, should ranges
    /// nest), as `(begin, value)`.
    pub(crate) fn find(&self, addr: u64) -> Option<(u64, &T)> {
        let mut i = self.begins.partition_point(|&b| b <= addr);
        while i > 0 {
            i -= 1;
            if *self.reach.get(i)? <= addr {
                return None;
            }
            if *self.ends.get(i)? > addr {
                return Some((*self.begins.get(i)?, self.values.get(i)?));
            }
        }
        None
    }

    /// Number of ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.begins.len()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.begins.capacity() * 8 * 3 + self.values.capacity() * size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_disjoint_ranges() {
        let map = RangeMap::new(vec![
            (0x20, 0x30, 'b'),
            (0x10, 0x20, 'a'),
            (0x40, 0x40, 'x'),
        ]);
        assert_eq!(map.len(), 2);
        assert_eq!(map.find(0x0f), None);
        assert_eq!(map.find(0x10), Some((0x10, &'a')));
        assert_eq!(map.find(0x20), Some((0x20, &'b')));
        assert_eq!(map.find(0x30), None);
        assert_eq!(map.find(0x40), None);
    }

    #[test]
    fn overlaps_find_the_latest_start_that_contains() {
        let map = RangeMap::new(vec![
            (0x0, 0x100, 'o'),
            (0x10, 0x20, 'i'),
            (0x30, 0x40, 'j'),
        ]);
        assert_eq!(map.find(0x15), Some((0x10, &'i')));
        assert_eq!(map.find(0x25), Some((0x0, &'o')));
        assert_eq!(map.find(0x45), Some((0x0, &'o')));
        assert_eq!(map.find(0x100), None);
    }
}
