//! The tables of a pprof profile (strings, functions, locations, mappings), interned as
//! the stacks are walked, and their encoding.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::frame::Frame;

use super::pprof::{Mapping, PprofOptions};
use super::proto::Writer;
use super::stack::{AddressSpace, Location, SymbolizedStack};

/// One `Line` of a location: a frame of its inline chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LineRow {
    function_id: u64,
    line: i64,
    column: i64,
}

/// A `Location`; its id is its index plus one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LocationRow {
    mapping_id: u64,
    address: u64,
    lines: Vec<LineRow>,
}

/// A `Function`: string ids of its name, system name and file; id is index plus one.
type FunctionRow = (i64, i64, i64);

/// A `Mapping` with the string ids of its file name and build id.
#[derive(Debug)]
struct MappingRow<'a> {
    mapping: &'a Mapping,
    filename: i64,
    build_id: i64,
}

/// A `Sample`, with ids into the tables.
#[derive(Debug)]
pub(super) struct SampleRow {
    location_ids: Vec<u64>,
    values: Vec<i64>,
    /// (key, str, num) string ids and numbers.
    labels: Vec<(i64, i64, i64)>,
}

impl SampleRow {
    /// Encodes the sample's fields.
    pub(super) fn encode(&self, m: &mut Writer) {
        m.packed(1, self.location_ids.iter().copied());
        m.packed(2, self.values.iter().map(|&v| v as u64));
        for &(key, str, num) in &self.labels {
            m.message(3, |l| {
                l.int64(1, key);
                l.int64(2, str);
                l.int64(3, num);
            });
        }
    }
}

/// Everything a profile's samples refer to, interned.
#[derive(Debug)]
pub(super) struct Tables<'a> {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<FunctionRow>,
    function_ids: HashMap<FunctionRow, u64>,
    locations: Vec<LocationRow>,
    location_ids: HashMap<LocationRow, u64>,
    /// Locations already interned, by address space and `Arc` identity.
    seen: HashMap<(AddressSpace, *const Location), u64>,
    mappings: Vec<MappingRow<'a>>,
    /// Per address space: (start, limit, mapping id), by start.
    ranges: BTreeMap<AddressSpace, Vec<(u64, u64, u64)>>,
}

impl<'a> Tables<'a> {
    /// Tables with the given mappings, and `""` as string 0.
    pub(super) fn new(mappings: &'a [(AddressSpace, Mapping)]) -> Self {
        let mut tables = Self {
            strings: Vec::new(),
            string_ids: HashMap::new(),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
            seen: HashMap::new(),
            mappings: Vec::new(),
            ranges: BTreeMap::new(),
        };
        tables.string("");
        for (i, (space, mapping)) in mappings.iter().enumerate() {
            let filename = tables.string(&mapping.filename);
            let build_id = tables.string(mapping.build_id.as_deref().unwrap_or(""));
            tables.mappings.push(MappingRow {
                mapping,
                filename,
                build_id,
            });
            let range = (mapping.memory_start, mapping.memory_limit, i as u64 + 1);
            tables.ranges.entry(*space).or_default().push(range);
        }
        for ranges in tables.ranges.values_mut() {
            ranges.sort_unstable();
        }
        tables
    }

    /// The id of `s` in the string table.
    pub(super) fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn function(&mut self, frame: &Frame) -> u64 {
        let key = (
            self.string(&frame.function),
            self.string(&frame.raw_name),
            self.string(frame.file.as_deref().unwrap_or("")),
        );
        let next = self.functions.len() as u64 + 1;
        let id = *self.function_ids.entry(key).or_insert(next);
        if id == next {
            self.functions.push(key);
        }
        id
    }

    fn mapping_id(&self, space: AddressSpace, address: u64) -> u64 {
        let Some(ranges) = self.ranges.get(&space) else {
            return 0;
        };
        let after = ranges.partition_point(|&(start, _, _)| start <= address);
        match after.checked_sub(1).map(|i| ranges[i]) {
            Some((_, limit, id)) if address < limit => id,
            _ => 0,
        }
    }

    fn location(&mut self, space: AddressSpace, location: &Arc<Location>) -> u64 {
        if let Some(&id) = self.seen.get(&(space, Arc::as_ptr(location))) {
            return id;
        }
        let mapping_id = self.mapping_id(space, location.address);
        let lines: Vec<LineRow> = if location.is_unknown() {
            Vec::new()
        } else {
            let frames = location.frames.iter();
            frames
                .map(|f| LineRow {
                    function_id: self.function(f),
                    line: f.line.map_or(0, i64::from),
                    column: f.column.map_or(0, i64::from),
                })
                .collect()
        };
        let row = LocationRow {
            mapping_id,
            address: location.address,
            lines,
        };
        let next = self.locations.len() as u64 + 1;
        let id = *self.location_ids.entry(row.clone()).or_insert(next);
        if id == next {
            self.locations.push(row);
        }
        self.seen.insert((space, Arc::as_ptr(location)), id);
        id
    }

    /// Interns what `stacks` refer to and returns their samples.
    pub(super) fn samples(
        &mut self,
        stacks: &[SymbolizedStack],
        options: &PprofOptions,
    ) -> Vec<SampleRow> {
        let (pid, tid, comm) = (self.string("pid"), self.string("tid"), self.string("comm"));
        let mut rows = Vec::with_capacity(stacks.len());
        for stack in stacks {
            let kernel = stack.kernel.iter().map(|loc| (AddressSpace::Kernel, loc));
            let user = stack
                .user
                .iter()
                .map(|loc| (AddressSpace::Process(stack.pid), loc));
            let location_ids = kernel
                .chain(user)
                .map(|(s, loc)| self.location(s, loc))
                .collect();
            let weight = i64::try_from(stack.weight).unwrap_or(i64::MAX);
            let mut values = vec![weight];
            values.extend(
                options
                    .period
                    .as_ref()
                    .map(|p| weight.saturating_mul(p.value)),
            );
            let labels = vec![
                (pid, 0, i64::from(stack.pid)),
                (tid, 0, i64::from(stack.tid)),
                (comm, self.string(&stack.comm), 0),
            ];
            rows.push(SampleRow {
                location_ids,
                values,
                labels,
            });
        }
        rows
    }

    /// Encodes the mapping, location, function and string tables into `out`.
    pub(super) fn encode(&self, out: &mut Writer) {
        // What each mapping's locations turned out to have: functions, file names, line
        // numbers, inline frames.
        let mut has = vec![(false, false, false, false); self.mappings.len()];
        for location in &self.locations {
            let index = location.mapping_id.checked_sub(1).map(|i| i as usize);
            let Some(has) = index.and_then(|i| has.get_mut(i)) else {
                continue;
            };
            let file = |l: &LineRow| {
                let function = l.function_id.checked_sub(1).map(|f| f as usize);
                function
                    .and_then(|f| self.functions.get(f))
                    .is_some_and(|f| f.2 != 0)
            };
            has.0 |= !location.lines.is_empty();
            has.1 |= location.lines.iter().any(file);
            has.2 |= location.lines.iter().any(|l| l.line != 0);
            has.3 |= location.lines.len() > 1;
        }
        for (i, (row, has)) in self.mappings.iter().zip(has).enumerate() {
            out.message(3, |m| {
                m.uint64(1, i as u64 + 1);
                m.uint64(2, row.mapping.memory_start);
                m.uint64(3, row.mapping.memory_limit);
                m.uint64(4, row.mapping.file_offset);
                m.int64(5, row.filename);
                m.int64(6, row.build_id);
                m.bool(7, has.0);
                m.bool(8, has.1);
                m.bool(9, has.2);
                m.bool(10, has.3);
            });
        }
        for (i, row) in self.locations.iter().enumerate() {
            out.message(4, |m| {
                m.uint64(1, i as u64 + 1);
                m.uint64(2, row.mapping_id);
                m.uint64(3, row.address);
                for line in &row.lines {
                    m.message(4, |l| {
                        l.uint64(1, line.function_id);
                        l.int64(2, line.line);
                        l.int64(3, line.column);
                    });
                }
            });
        }
        for (i, &(name, system_name, filename)) in self.functions.iter().enumerate() {
            out.message(5, |m| {
                m.uint64(1, i as u64 + 1);
                m.int64(2, name);
                m.int64(3, system_name);
                m.int64(4, filename);
            });
        }
        for s in &self.strings {
            out.bytes(6, s.as_bytes());
        }
    }
}
