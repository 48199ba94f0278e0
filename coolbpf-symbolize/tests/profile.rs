//! Profiles: folded stacks, pprof (decoded here and read by `go tool pprof`), flame graph
//! SVG and top functions, on a synthetic profile with known numbers; and a profile of
//! this test process's own addresses.
//!
//! The `go tool pprof` check is skipped with a message when `go` is missing (Debian:
//! `apt-get install golang-go`), unless `COOLBPF_REQUIRE_PEERS=1`, which makes it fail.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use coolbpf_symbolize::profile::{
    AddressSpace, FlameGraphOptions, Location, Mapping, PprofOptions, SymbolizedStack,
};
use coolbpf_symbolize::{Frame, Profile, Sample, SymbolizedProfile, Symbolizer};
use quick_xml::events::Event;

fn frame(function: &str, line: Option<u32>, inlined: bool) -> Frame {
    Frame {
        function: function.into(),
        raw_name: function.into(),
        offset: 0,
        file: line.map(|_| "src/app.c".to_owned()),
        line,
        column: None,
        inlined,
    }
}

fn loc(address: u64, frames: Vec<Frame>) -> Arc<Location> {
    Arc::new(Location::new(address, frames))
}

fn stack(
    (pid, tid, comm): (u32, u32, &str),
    user: &[&Arc<Location>],
    kernel: &[&Arc<Location>],
    weight: u64,
) -> SymbolizedStack {
    SymbolizedStack {
        pid,
        tid,
        comm: comm.into(),
        user: user.iter().map(|l| Arc::clone(l)).collect(),
        kernel: kernel.iter().map(|l| Arc::clone(l)).collect(),
        weight,
    }
}

const PUSH_BACK: &str = "std::vector<int>::push_back";
const PUSH_BACK_MANGLED: &str = "_ZNSt6vectorIiSaIiEE9push_backERKi";

/// Five stacks (innermost first):
/// 1. app/100: helper (inlined into compute) <- main <- _start, 5
/// 2. app/101: clear_page_erms <- do_syscall_64 | compute <- main <- _start, 3
/// 3. app/101: like 1, 2 (folds into 1's line)
/// 4. other/200: [unknown] <- std::vector<int>::push_back <- _start, 4
/// 5. swapper/0: default_idle_call <- do_idle (kernel only), 6
fn synthetic() -> SymbolizedProfile {
    let inl = loc(
        0x1010,
        vec![
            frame("helper", Some(12), true),
            frame("compute", Some(30), false),
        ],
    );
    let main = loc(0x2000, vec![frame("main", Some(50), false)]);
    let start = loc(0x3000, vec![frame("_start", None, false)]);
    let compute = loc(0x1020, vec![frame("compute", Some(33), false)]);
    let clear = loc(
        0xffff_ffff_8100_1000,
        vec![frame("clear_page_erms", None, false)],
    );
    let syscall = loc(
        0xffff_ffff_8100_2000,
        vec![frame("do_syscall_64", None, false)],
    );
    let idle_call = loc(
        0xffff_ffff_8100_3000,
        vec![frame("default_idle_call", None, false)],
    );
    let idle = loc(0xffff_ffff_8100_4000, vec![frame("do_idle", None, false)]);
    let unknown = Arc::new(Location::unknown(
        0x7f00_0000_1234,
        "[unknown]",
        "not mapped",
    ));
    let mut push = frame(PUSH_BACK, None, false);
    push.raw_name = PUSH_BACK_MANGLED.into();
    let push = loc(0x5000, vec![push]);
    let start2 = loc(0x3000, vec![frame("_start", None, false)]);
    let app = (100, 100, "app");
    let app2 = (100, 101, "app");
    let mut profile = SymbolizedProfile::from_stacks(vec![
        stack(app, &[&inl, &main, &start], &[], 5),
        stack(app2, &[&compute, &main, &start], &[&clear, &syscall], 3),
        stack(app2, &[&inl, &main, &start], &[], 2),
        stack((200, 200, "other"), &[&unknown, &push, &start2], &[], 4),
        stack((0, 0, "swapper/0"), &[], &[&idle_call, &idle], 6),
    ]);
    profile.add_mapping(
        AddressSpace::Process(100),
        Mapping {
            memory_start: 0x1000,
            memory_limit: 0x4000,
            file_offset: 0,
            filename: "/usr/bin/app".into(),
            build_id: Some("abcdef".into()),
        },
    );
    profile
}

#[test]
fn folded_is_exact() {
    let profile = synthetic();
    let expected = "\
app;_start;main;compute;do_syscall_64_[k];clear_page_erms_[k] 3
app;_start;main;compute;helper 7
other;_start;std::vector<int>::push_back;[unknown] 4
swapper/0;do_idle_[k];default_idle_call_[k] 6
";
    assert_eq!(profile.folded(), expected);
    let mut written = Vec::new();
    profile.write_folded(&mut written).unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), expected);
    assert_eq!(profile.unknown_addresses(), 1);
    assert_eq!(profile.total_weight(), 20);
}

#[test]
fn top_is_exact() {
    let top = synthetic().top(10);
    let got: Vec<(&str, bool, u64, u64)> = top
        .entries
        .iter()
        .map(|e| (e.function.as_str(), e.kernel, e.self_weight, e.total_weight))
        .collect();
    assert_eq!(
        got,
        vec![
            ("helper", false, 7, 7),
            ("default_idle_call", true, 6, 6),
            ("[unknown]", false, 4, 4),
            ("clear_page_erms", true, 3, 3),
            ("_start", false, 0, 14),
            ("compute", false, 0, 10),
            ("main", false, 0, 10),
            ("do_idle", true, 0, 6),
            (PUSH_BACK, false, 0, 4),
            ("do_syscall_64", true, 0, 3),
        ]
    );
    assert_eq!(top.total_weight, 20);
    let table = synthetic().top(2).to_string();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["self", "self%", "total", "total%", "function"]);
    assert_eq!(rows[1], ["7", "35.00%", "7", "35.00%", "helper"]);
    assert_eq!(
        rows[2],
        ["6", "30.00%", "6", "30.00%", "default_idle_call_[k]"]
    );
    assert_eq!(rows.len(), 3);
}

#[test]
fn flamegraph_is_well_formed_svg_with_the_functions() {
    let options = FlameGraphOptions {
        title: "test <profile>".into(),
        ..Default::default()
    };
    let svg = synthetic().flamegraph(&options).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let (mut elements, mut root) = (0, None);
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                elements += 1;
                root.get_or_insert_with(|| String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Ok(_) => {}
            Err(e) => panic!(
                "SVG is not well-formed at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    assert!(elements > 20, "{elements} elements");
    assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
    // Kernel frames lose their `_[k]` for display (and are drawn orange).
    for name in [
        "helper",
        "compute",
        "main",
        "_start",
        "do_syscall_64",
        "[unknown]",
    ] {
        assert!(svg.contains(&format!("<title>{name} (")), "{name} missing");
    }
    // Escaped in the markup, intact once parsed.
    assert!(svg.contains("std::vector&lt;int&gt;::push_back"));
    assert!(svg.contains("test &lt;profile&gt;"));
    // An empty profile is an error, not a panic.
    assert!(SymbolizedProfile::from_stacks(vec![])
        .flamegraph(&options)
        .is_err());
}

/// A protobuf field: varint or length-delimited (the only wire types profile.proto uses).
#[derive(Debug, Clone)]
enum Value {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let byte = buf[*pos];
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
    }
    panic!("varint too long");
}

/// A message's fields, by number, in order.
fn decode(buf: &[u8]) -> HashMap<u64, Vec<Value>> {
    let mut fields: HashMap<u64, Vec<Value>> = HashMap::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let value = match key & 7 {
            0 => Value::Varint(read_varint(buf, &mut pos)),
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)).unwrap();
                pos += len;
                Value::Bytes(buf[pos - len..pos].to_vec())
            }
            wire => panic!("unexpected wire type {wire}"),
        };
        fields.entry(key >> 3).or_default().push(value);
    }
    fields
}

fn num(fields: &HashMap<u64, Vec<Value>>, field: u64) -> u64 {
    match fields.get(&field).and_then(|v| v.last()) {
        Some(Value::Varint(v)) => *v,
        None => 0,
        Some(other) => panic!("field {field} is {other:?}"),
    }
}

fn messages(fields: &HashMap<u64, Vec<Value>>, field: u64) -> Vec<HashMap<u64, Vec<Value>>> {
    let values = fields.get(&field).map_or(&[][..], Vec::as_slice);
    values
        .iter()
        .map(|v| match v {
            Value::Bytes(b) => decode(b),
            Value::Varint(_) => panic!("field {field} is not a message"),
        })
        .collect()
}

fn packed(fields: &HashMap<u64, Vec<Value>>, field: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for value in fields.get(&field).map_or(&[][..], Vec::as_slice) {
        match value {
            Value::Varint(v) => out.push(*v),
            Value::Bytes(b) => {
                let mut pos = 0;
                while pos < b.len() {
                    out.push(read_varint(b, &mut pos));
                }
            }
        }
    }
    out
}

/// A sample as read back: comm label, tid label, leaf-first (function, line) lists per
/// location, values.
type ReadSample = (String, u64, Vec<Vec<(String, u64)>>, Vec<u64>);

fn read_back(gzipped: &[u8]) -> (Vec<ReadSample>, HashMap<u64, Vec<Value>>, Vec<String>) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut raw)
        .unwrap();
    let profile = decode(&raw);
    let strings: Vec<String> = profile[&6]
        .iter()
        .map(|v| match v {
            Value::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
            Value::Varint(_) => panic!("string table entry is a varint"),
        })
        .collect();
    let s = |i: u64| strings[usize::try_from(i).unwrap()].clone();
    let functions: HashMap<u64, String> = messages(&profile, 5)
        .iter()
        .map(|f| (num(f, 1), s(num(f, 2))))
        .collect();
    let locations: HashMap<u64, Vec<(String, u64)>> = messages(&profile, 4)
        .iter()
        .map(|l| {
            let lines = messages(l, 4)
                .into_iter()
                .map(|ln| (functions[&num(&ln, 1)].clone(), num(&ln, 2)));
            (num(l, 1), lines.collect())
        })
        .collect();
    let samples = messages(&profile, 2)
        .iter()
        .map(|sample| {
            let labels: HashMap<String, (u64, u64)> = messages(sample, 3)
                .iter()
                .map(|l| (s(num(l, 1)), (num(l, 2), num(l, 3))))
                .collect();
            let locs = packed(sample, 1)
                .iter()
                .map(|id| locations[id].clone())
                .collect();
            (
                s(labels["comm"].0),
                labels["tid"].1,
                locs,
                packed(sample, 2),
            )
        })
        .collect();
    (samples, profile, strings)
}

#[test]
fn pprof_reads_back() {
    let options = PprofOptions {
        time_nanos: 1_700_000_000_000_000_000,
        ..PprofOptions::cpu(100)
    };
    let (samples, profile, strings) = read_back(&synthetic().to_pprof(&options));
    assert_eq!(strings[0], "");
    let types: Vec<(String, String)> = messages(&profile, 1)
        .iter()
        .map(|t| {
            (
                strings[num(t, 1) as usize].clone(),
                strings[num(t, 2) as usize].clone(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("samples".into(), "count".into()),
            ("cpu".into(), "nanoseconds".into())
        ]
    );
    assert_eq!(num(&profile, 12), 10_000_000);
    assert_eq!(num(&profile, 9), 1_700_000_000_000_000_000);
    let f = |name: &str, line: u64| (name.to_owned(), line);
    let app_inline = vec![
        vec![f("helper", 12), f("compute", 30)],
        vec![f("main", 50)],
        vec![f("_start", 0)],
    ];
    assert_eq!(samples.len(), 5);
    assert_eq!(
        samples[0],
        ("app".into(), 100, app_inline.clone(), vec![5, 50_000_000])
    );
    let mut with_kernel = vec![vec![f("clear_page_erms", 0)], vec![f("do_syscall_64", 0)]];
    with_kernel.extend([
        vec![f("compute", 33)],
        vec![f("main", 50)],
        vec![f("_start", 0)],
    ]);
    assert_eq!(
        samples[1],
        ("app".into(), 101, with_kernel, vec![3, 30_000_000])
    );
    assert_eq!(
        samples[2],
        ("app".into(), 101, app_inline, vec![2, 20_000_000])
    );
    // The unknown location has no line: pprof shows its address.
    let other = vec![vec![], vec![f(PUSH_BACK, 0)], vec![f("_start", 0)]];
    assert_eq!(
        samples[3],
        ("other".into(), 200, other, vec![4, 40_000_000])
    );
    assert_eq!(samples[4].0, "swapper/0");
    // One mapping, for pid 100's binary, used by its locations only.
    let mappings = messages(&profile, 3);
    assert_eq!(mappings.len(), 1);
    assert_eq!(strings[num(&mappings[0], 5) as usize], "/usr/bin/app");
    assert_eq!(strings[num(&mappings[0], 6) as usize], "abcdef");
    assert_eq!(num(&mappings[0], 10), 1, "has_inline_frames");
    let mapped: Vec<u64> = messages(&profile, 4)
        .iter()
        .filter(|l| num(l, 2) == 1)
        .map(|l| num(l, 3))
        .collect();
    assert_eq!(mapped, [0x1010, 0x2000, 0x3000, 0x1020]);
    let push = messages(&profile, 5)
        .into_iter()
        .find(|f| strings[num(f, 2) as usize] == PUSH_BACK)
        .unwrap();
    assert_eq!(strings[num(&push, 3) as usize], PUSH_BACK_MANGLED);
}

/// Whether `go` runs; if not, a skip message (or a failure with
/// `COOLBPF_REQUIRE_PEERS=1`).
fn have_go() -> bool {
    let ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    let message = "`go` not found (apt-get install golang-go): cannot check with go tool pprof";
    assert!(
        std::env::var("COOLBPF_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{message}"
    );
    eprintln!("SKIP: {message}");
    false
}

fn pprof(args: &[&str], file: &PathBuf) -> String {
    let home = std::env::temp_dir();
    let output = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("HOME", &home)
        .env("PPROF_TMPDIR", &home)
        .output()
        .expect("go tool pprof runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "go tool pprof {args:?} failed: {stderr}\n{stdout}"
    );
    println!("$ go tool pprof {} FILE\n{stderr}{stdout}", args.join(" "));
    stdout
}

#[test]
fn go_tool_pprof_reads_it() {
    if !have_go() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("coolbpf-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("synthetic.pb.gz");
    std::fs::write(&file, synthetic().to_pprof(&PprofOptions::default())).unwrap();

    let top = pprof(&["-top", "-nodecount=5"], &file);
    let rows: Vec<Vec<&str>> = top
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let flat = |name: &str| {
        let row = rows
            .iter()
            .find(|r| r.len() >= 6 && r[5..].join(" ").trim_end_matches(" (inline)") == name);
        let row = row.unwrap_or_else(|| panic!("{name} not in:\n{top}"));
        (row[0].to_owned(), row[3].to_owned())
    };
    assert!(top.contains("of 20 total"), "{top}");
    // pprof may mark the inlined function "helper (inline)".
    assert_eq!(flat("helper"), ("7".into(), "7".into()));
    assert_eq!(flat("default_idle_call"), ("6".into(), "6".into()));
    assert_eq!(flat("clear_page_erms"), ("3".into(), "3".into()));

    let top = pprof(&["-top", "-cum", "-nodecount=3"], &file);
    assert!(
        top.lines()
            .any(|l| l.ends_with(" _start") && l.contains(" 14 ")),
        "{top}"
    );

    let raw = pprof(&["-raw"], &file);
    for name in [
        "helper",
        "compute",
        "main",
        "_start",
        PUSH_BACK,
        "do_idle",
        "do_syscall_64",
    ] {
        assert!(raw.contains(name), "{name} missing from -raw:\n{raw}");
    }
    assert!(raw.contains("0x7f0000001234"), "{raw}");
    assert!(raw.contains("/usr/bin/app"), "{raw}");

    // A CPU profile: samples/count plus cpu/nanoseconds, which pprof shows by default.
    let cpu = PprofOptions {
        duration_nanos: 1_000_000_000,
        ..PprofOptions::cpu(100)
    };
    std::fs::write(&file, synthetic().to_pprof(&cpu)).unwrap();
    let top = pprof(&["-top", "-nodecount=2"], &file);
    assert!(top.contains("Type: cpu"), "{top}");
    assert!(
        top.contains("Duration: 1s, Total samples = 200ms (20.00%)"),
        "{top}"
    );
    assert!(
        top.lines().any(|l| l.trim_start().starts_with("70ms")
            && l.trim_end_matches(" (inline)").ends_with(" helper")),
        "{top}"
    );
    let raw = pprof(&["-raw"], &file);
    assert!(raw.contains("PeriodType: cpu nanoseconds"), "{raw}");
    assert!(raw.contains("Period: 10000000"), "{raw}");
    assert!(raw.contains("samples/count cpu/nanoseconds"), "{raw}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[inline(never)]
fn own_leaf() -> u64 {
    own_leaf as *const () as u64
}

#[inline(never)]
fn own_caller() -> u64 {
    own_caller as *const () as u64
}

/// A profile of this process's own functions. While the process source is not
/// implemented, its failure must come back as unknown frames, counted.
#[test]
fn own_process_profile() {
    let pid = std::process::id();
    let (leaf, caller) = (own_leaf(), own_caller());
    // A caller's address is a return address: one past somewhere inside the function.
    let sample = Sample {
        pid,
        tid: pid,
        comm: "profile-test".into(),
        kernel_ips: vec![],
        user_ips: vec![leaf, caller + 5],
        python: Vec::new(),
        weight: 3,
    };
    let profile: Profile = [sample.clone(), sample].into_iter().collect();
    assert_eq!(profile.len(), 1);
    let symbolized = profile.symbolize(&Symbolizer::new());
    let stack = &symbolized.stacks()[0];
    assert_eq!(stack.weight, 6);
    assert_eq!(stack.user[0].address, leaf);
    assert_eq!(stack.user[1].address, caller + 4);
    let reasons: Vec<&str> = stack
        .user
        .iter()
        .filter_map(|l| l.unknown.as_deref())
        .collect();
    assert!(reasons.is_empty(), "{reasons:?}");
    assert!(
        symbolized.failures().is_empty(),
        "{:?}",
        symbolized.failures()
    );
    assert_eq!(symbolized.unknown_addresses(), 0);
    // Root first: the caller, then the leaf it called.
    let names = stack.frame_names();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].ends_with("own_caller"), "{names:?}");
    assert!(names[1].ends_with("own_leaf"), "{names:?}");
    let top = symbolized.top(1);
    assert!(top.entries[0].function.ends_with("own_leaf"), "{top:?}");
    assert_eq!(top.entries[0].self_weight, 6);
}

/// The address of the kernel's `schedule`, from /proc/kallsyms; `None` (with a message)
/// when kallsyms is unreadable or hides addresses (not root, kptr_restrict).
fn kernel_schedule() -> Option<u64> {
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").ok()?;
    let address = kallsyms.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (address, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
        let text = kind.eq_ignore_ascii_case("t") && name == "schedule";
        text.then(|| u64::from_str_radix(address, 16).ok())?
    });
    let address = address.filter(|&a| a != 0);
    if address.is_none() {
        eprintln!("SKIP: /proc/kallsyms does not show kernel addresses here");
    }
    address
}

/// Kernel addresses go through the kernel source and come back as `_[k]` frames; a
/// caller's return address is looked up one byte back.
#[test]
fn kernel_addresses_profile() {
    let Some(schedule) = kernel_schedule() else {
        return;
    };
    let sample = Sample {
        pid: 1,
        tid: 1,
        comm: "k".into(),
        kernel_ips: vec![schedule + 4, schedule + 0x11],
        python: Vec::new(),
        user_ips: vec![],
        weight: 1,
    };
    let symbolized = Profile::from_iter([sample]).symbolize(&Symbolizer::new());
    let stack = &symbolized.stacks()[0];
    let addresses: Vec<u64> = stack.kernel.iter().map(|l| l.address).collect();
    assert_eq!(addresses, [schedule + 4, schedule + 0x10]);
    let reasons: Vec<&str> = stack
        .kernel
        .iter()
        .filter_map(|l| l.unknown.as_deref())
        .collect();
    assert!(reasons.is_empty(), "{reasons:?}");
    assert_eq!(symbolized.unknown_addresses(), 0);
    assert!(symbolized.failures().is_empty());
    assert_eq!(symbolized.folded(), "k;schedule_[k];schedule_[k] 1\n");
    let top = symbolized.top(1);
    assert_eq!(top.entries[0].function, "schedule");
    assert!(top.entries[0].kernel);
    assert_eq!(
        (top.entries[0].self_weight, top.entries[0].total_weight),
        (1, 1)
    );
}
