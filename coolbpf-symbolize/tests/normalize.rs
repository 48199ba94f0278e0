//! Normalization: this process's addresses become (path, build id, file offset), checked
//! against a plain reading of our own maps and ELF notes, and symbolizing those, by path
//! and by build id, gives exactly what symbolizing the process directly gives.

use std::path::{Path, PathBuf};
use std::process::Command;

use coolbpf_symbolize::{
    normalize, Error, FileOffset, FileRef, Normalized, Source, Symbolized, Symbolizer, Unknown,
    DEFAULT_DEBUG_DIR,
};
use object::Object;

/// A function with a name the linker keeps and an address of its own.
#[no_mangle]
#[inline(never)]
pub extern "C" fn coolbpf_normalize_test_marker(x: u64) -> u64 {
    std::hint::black_box(x).rotate_left(17)
}

fn marker_addr() -> u64 {
    coolbpf_normalize_test_marker as *const () as u64
}

/// (path, file offset) of `addr` by a plain scan of our own maps.
fn expected_location(addr: u64) -> (String, u64) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (start, end) = fields[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        if (start..u64::from_str_radix(end, 16).unwrap()).contains(&addr) {
            let offset = u64::from_str_radix(fields[2], 16).unwrap();
            return (fields[5..].join(" "), addr - start + offset);
        }
    }
    panic!("{addr:#x} is not mapped");
}

/// A file's build id, read with `object` directly.
fn build_id_of(path: &str) -> Option<String> {
    let data = std::fs::read(path).ok()?;
    let id = object::File::parse(&*data).ok()?.build_id().ok()??;
    Some(
        id.iter()
            .fold(String::new(), |hex, b| hex + &format!("{b:02x}")),
    )
}

fn file(n: &Normalized) -> &FileOffset {
    match n {
        Normalized::File(f) => f,
        Normalized::Unknown(why) => panic!("not normalized: {why}"),
    }
}

#[test]
fn normalized_offsets_and_build_ids_match_maps_and_notes() {
    let addrs = [
        marker_addr(),
        libc::getpid as *const () as u64,
        marker_addr() + 3,
    ];
    let normalized = normalize(std::process::id(), &addrs).unwrap();
    assert_eq!(normalized.len(), 3);
    for (addr, n) in addrs.iter().zip(&normalized) {
        let (path, offset) = expected_location(*addr);
        let f = file(n);
        assert_eq!((f.path.as_str(), f.file_offset), (path.as_str(), offset));
        assert_eq!(f.build_id, build_id_of(&path), "{path}");
    }
    assert_eq!(
        file(&normalized[2]).file_offset,
        file(&normalized[0]).file_offset + 3
    );
}

#[test]
fn memory_without_a_file_is_unknown_and_missing_processes_fail() {
    let heap = Box::new([0_u8; 64]);
    let addrs = [0x10, std::ptr::from_ref(&*heap) as u64];
    let normalized = normalize(std::process::id(), &addrs).unwrap();
    assert_eq!(normalized[0], Normalized::Unknown(Unknown::Unmapped));
    assert_eq!(
        normalized[1],
        Normalized::Unknown(Unknown::Anonymous),
        "heap memory"
    );
    let err = normalize(999_999_999, &[1]).unwrap_err();
    assert!(
        matches!(err, Error::NoSuchProcess { pid: 999_999_999 }),
        "{err}"
    );
}

/// A debug directory holding `.build-id/xx/rest{suffix}` pointing at `target`.
fn debug_dir(name: &str, build_id: &str, suffix: &str, target: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coolbpf-debug-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let link_dir = dir.join(".build-id").join(&build_id[..2]);
    std::fs::create_dir_all(&link_dir).unwrap();
    std::os::unix::fs::symlink(target, link_dir.join(format!("{}{suffix}", &build_id[2..])))
        .unwrap();
    dir
}

#[test]
fn symbolizing_normalized_addresses_equals_symbolizing_the_process() {
    let addrs = [
        marker_addr(),
        marker_addr() + 3,
        libc::getpid as *const () as u64,
    ];
    let symbolizer = Symbolizer::new();
    let direct = symbolizer
        .symbolize(&Source::process(std::process::id()), &addrs)
        .unwrap();
    assert_eq!(
        direct[0].function(),
        Some("coolbpf_normalize_test_marker"),
        "{direct:?}"
    );
    let normalized = normalize(std::process::id(), &addrs).unwrap();
    for (n, expected) in normalized.iter().zip(&direct) {
        let f = file(n);
        let by_path = symbolizer
            .symbolize_file_offsets(&FileRef::Path(f.path.clone().into()), &[f.file_offset])
            .unwrap();
        assert_eq!(&by_path[0], expected, "by path {}", f.path);
        let id = f
            .build_id
            .clone()
            .expect("test binaries and libc have build ids");
        let dir = debug_dir("roundtrip", &id, "", Path::new(&f.path));
        // The default directory stays second, so separate debug files are found as
        // they were for the direct answer.
        let by_id = Symbolizer::builder()
            .debug_dirs([dir.clone(), PathBuf::from(DEFAULT_DEBUG_DIR)])
            .build()
            .symbolize_file_offsets(
                &FileRef::BuildId(id.to_uppercase()),
                &[f.file_offset, f.file_offset],
            );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            by_id.unwrap(),
            [expected.clone(), expected.clone()],
            "by build id {id}"
        );
    }
}

#[test]
fn a_separate_debug_file_alone_cannot_place_file_offsets() {
    let exe = std::env::current_exe().unwrap();
    let Some(id) = build_id_of(exe.to_str().unwrap()) else {
        eprintln!("skipped: this test binary has no build id");
        return;
    };
    let debug = std::env::temp_dir().join(format!("coolbpf-only-debug-{}", std::process::id()));
    let made = Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&exe)
        .arg(&debug)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: objcopy --only-keep-debug is not available");
        return;
    }
    let dir = debug_dir("only", &id, ".debug", &debug);
    let (_, offset) = expected_location(marker_addr());
    let result = Symbolizer::builder()
        .debug_dirs([&dir])
        .build()
        .symbolize_file_offsets(&FileRef::BuildId(id), &[offset]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&debug);
    match &result.unwrap()[0] {
        Symbolized::Unknown(Unknown::Unreadable(why)) => {
            assert!(why.contains("separate debug file"), "{why}");
        }
        other => panic!("expected a reason, got {other:?}"),
    }
}

#[test]
fn bad_and_unknown_build_ids_are_errors() {
    let symbolizer = Symbolizer::new();
    let bad = symbolizer.symbolize_file_offsets(&FileRef::BuildId("../../etc".into()), &[0]);
    assert!(matches!(bad, Err(Error::InvalidArgument(_))), "{bad:?}");
    let missing = Symbolizer::builder()
        .debug_dirs(["/nonexistent-coolbpf-debug"])
        .build()
        .symbolize_file_offsets(&FileRef::BuildId("deadbeef".into()), &[0]);
    let err = missing.unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(err.to_string().contains("deadbeef"), "{err}");
    let no_file =
        symbolizer.symbolize_file_offsets(&FileRef::Path("/nonexistent/x.so".into()), &[0]);
    assert!(matches!(no_file, Err(Error::Io { .. })), "{no_file:?}");
}
