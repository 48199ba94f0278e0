//! Process sources against addresses whose names are known without the symbolizer: this
//! test's own functions, libc's, the vdso's (from the ELF image the kernel hands us), a
//! perf map the test writes, and a copy of this test running in another mount namespace
//! or from a deleted file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coolbpf_symbolize::{Error, Process, Source, Symbolized, Symbolizer, Unknown};
use object::{Object, ObjectSegment, ObjectSymbol};

/// A function with a name the linker keeps and an address of its own.
#[no_mangle]
#[inline(never)]
pub extern "C" fn coolbpf_process_test_marker(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn marker_addr() -> u64 {
    coolbpf_process_test_marker as *const () as u64
}

fn own(addrs: &[u64]) -> Vec<Symbolized> {
    Symbolizer::new()
        .symbolize(&Source::process(std::process::id()), addrs)
        .expect("symbolize own process")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn own_function_and_libc_function() {
    let getpid = libc::getpid as *const () as u64;
    let addrs = [marker_addr(), marker_addr() + 1, getpid, marker_addr()];
    let results = own(&addrs);
    assert_eq!(
        results.len(),
        addrs.len(),
        "one result per address, repeats included"
    );
    for result in [&results[0], &results[1], &results[3]] {
        assert_eq!(
            result.function(),
            Some("coolbpf_process_test_marker"),
            "{result:?}"
        );
    }
    assert_eq!(results[0].frames().last().map(|f| f.offset), Some(0));
    assert_eq!(results[1].frames().last().map(|f| f.offset), Some(1));
    // glibc exports getpid and __getpid at one address; either name is right.
    let libc_name = results[2].function().unwrap_or_default();
    assert!(
        libc_name.trim_start_matches('_') == "getpid",
        "{:?}",
        results[2]
    );
}

#[test]
fn unmapped_addresses_and_missing_processes() {
    let results = own(&[0x10, u64::MAX]);
    assert_eq!(
        results,
        [
            Symbolized::Unknown(Unknown::Unmapped),
            Symbolized::Unknown(Unknown::Unmapped)
        ]
    );
    let err = Symbolizer::new()
        .symbolize(&Source::process(999_999_999), &[0x1000])
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSuchProcess { pid: 999_999_999 }),
        "{err}"
    );
    assert!(err.to_string().contains("999999999"), "{err}");
}

/// An anonymous mapping of this process, unmapped when dropped.
struct Anonymous {
    addr: *mut libc::c_void,
    len: usize,
}

impl Anonymous {
    fn new(len: usize, prot: libc::c_int) -> Self {
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        Self { addr, len }
    }

    fn start(&self) -> u64 {
        self.addr as u64
    }
}

impl Drop for Anonymous {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

#[test]
fn perf_map_names_jit_code_and_anonymous_memory_says_so() {
    let jit = Anonymous::new(4096, libc::PROT_READ | libc::PROT_EXEC);
    let start = jit.start();
    let map = PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()));
    std::fs::write(
        &map,
        format!(
            "{start:x} 40 jitted_add\n{:x} 20 jitted_sub [lua]\n",
            start + 0x40
        ),
    )
    .expect("write perf map");
    let addrs = [start + 4, start + 0x44, start + 0x100];
    let with_map = own(&addrs);
    let without = Symbolizer::new().symbolize(
        &Source::Process(Process {
            pid: std::process::id(),
            perf_map: false,
        }),
        &addrs,
    );
    let _ = std::fs::remove_file(&map);
    assert_eq!(with_map[0].function(), Some("jitted_add"));
    assert_eq!(with_map[0].frames()[0].offset, 4);
    assert_eq!(with_map[1].function(), Some("jitted_sub [lua]"));
    assert_eq!(
        with_map[2],
        Symbolized::Unknown(Unknown::Anonymous),
        "not in the perf map"
    );
    assert!(without
        .unwrap()
        .iter()
        .all(|r| *r == Symbolized::Unknown(Unknown::Anonymous)));
}

#[test]
fn a_mapped_file_that_is_not_elf_is_unreadable_with_a_reason() {
    let path = std::env::temp_dir().join(format!("coolbpf-not-elf-{}", std::process::id()));
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: a private read-only mapping of a file this test owns.
    let addr = unsafe {
        use std::os::fd::AsRawFd;
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let results = own(&[addr as u64 + 100]);
    // SAFETY: the mapping made above, used by nothing else.
    unsafe { libc::munmap(addr, 8192) };
    let _ = std::fs::remove_file(&path);
    match &results[0] {
        Symbolized::Unknown(Unknown::Unreadable(why)) => assert!(!why.is_empty()),
        other => panic!("expected unreadable, got {other:?}"),
    }
}

/// The vdso's `clock_gettime`, located from the image the kernel maps (AT_SYSINFO_EHDR)
/// with an ELF parser of its own, not through /proc.
fn vdso_clock_gettime() -> Option<u64> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: the vdso's ELF header is mapped readable for the life of the process.
    let header = unsafe { std::slice::from_raw_parts(base as *const u8, 64) };
    let shoff = u64::from_ne_bytes(header[0x28..0x30].try_into().ok()?) as usize;
    let shentsize = u16::from_ne_bytes(header[0x3a..0x3c].try_into().ok()?) as usize;
    let shnum = u16::from_ne_bytes(header[0x3c..0x3e].try_into().ok()?) as usize;
    // SAFETY: the section headers end the image, and the whole image is mapped.
    let image = unsafe { std::slice::from_raw_parts(base as *const u8, shoff + shentsize * shnum) };
    let elf = object::File::parse(image).ok()?;
    let first = elf.segments().find(|s| s.file_range().0 == 0)?.address();
    let symbol = elf
        .dynamic_symbols()
        .find(|s| matches!(s.name(), Ok("__vdso_clock_gettime" | "clock_gettime")))?;
    Some(base as u64 + (symbol.address() - first))
}

#[test]
fn vdso_functions_are_named() {
    let Some(addr) = vdso_clock_gettime() else {
        eprintln!("skipped: no vdso with clock_gettime in this process");
        return;
    };
    let results = own(&[addr, addr + 2]);
    for result in &results {
        let name = result.function().unwrap_or_default();
        assert!(
            name == "__vdso_clock_gettime" || name == "clock_gettime",
            "{result:?}"
        );
    }
    assert_eq!(results[1].frames().last().map(|f| f.offset), Some(2));
}

/// Where this test's marker lies in its executable: the file offset, from a plain scan
/// of our own maps.
fn marker_file_offset() -> u64 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let addr = marker_addr();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (start, end) = fields[0].split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        if (start..end).contains(&addr) {
            return addr - start + u64::from_str_radix(fields[2], 16).unwrap();
        }
    }
    panic!("marker not mapped");
}

/// In process `pid`, the address of file offset `offset` of the file mapped from `path`.
fn address_in(pid: u32, path: &Path, offset: u64) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(5).map(Path::new) != Some(path) {
            return None;
        }
        let (start, end) = fields[0].split_once('-')?;
        let (start, end) = (
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
        );
        let file_start = u64::from_str_radix(fields[2], 16).ok()?;
        (file_start..file_start + (end - start))
            .contains(&offset)
            .then(|| start + offset - file_start)
    })
}

/// Run by the tests below in a child: this test binary, copied, sleeping until killed.
#[test]
fn sleeper_for_other_tests() {
    if std::env::var_os("COOLBPF_SYMBOLIZE_SLEEPER").is_some() {
        println!("ready");
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Kills the child when dropped, so a failed assertion leaves no process behind.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sleeper(command: &mut Command) -> std::io::Result<Sleeper> {
    let child = command
        .env("COOLBPF_SYMBOLIZE_SLEEPER", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    Ok(Sleeper(child))
}

/// Waits until the child maps `path` and returns where `offset` of it lies.
fn wait_for_mapping(child: &mut Sleeper, path: &Path, offset: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(addr) = address_in(child.0.id(), path, offset) {
            return Some(addr);
        }
        if let Ok(Some(_)) = child.0.try_wait() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn process_in_another_mount_namespace() {
    if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and unshare(1) to make a mount namespace");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("coolbpf-mntns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy");
    // The child mounts a tmpfs over `dir` in its own namespace and runs a copy of this
    // test from it: from here, `copy` does not exist.
    let script = r#"mount -t tmpfs tmpfs "$1" && cp "$2" "$1/copy" && exec "$1/copy" --exact sleeper_for_other_tests --nocapture"#;
    let mut child = spawn_sleeper(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&dir)
            .arg(&exe),
    )
    .unwrap();
    let Some(addr) = wait_for_mapping(&mut child, &copy, marker_file_offset()) else {
        let _ = child.0.kill();
        let mut stderr = String::new();
        let _ = std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr);
        let _ = std::fs::remove_dir(&dir);
        eprintln!("skipped: could not start a child in a new mount namespace: {stderr}");
        return;
    };
    assert!(
        !copy.exists(),
        "the copy must be invisible from here for the test to mean anything"
    );
    let results = Symbolizer::new()
        .symbolize(&Source::process(child.0.id()), &[addr])
        .unwrap();
    drop(child);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(
        results[0].function(),
        Some("coolbpf_process_test_marker"),
        "{results:?}"
    );
}

#[test]
fn process_running_a_deleted_file() {
    if !is_root() {
        eprintln!("skipped: reading a deleted file through /proc/PID/map_files needs root");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let copy = std::env::temp_dir().join(format!("coolbpf-deleted-{}", std::process::id()));
    std::fs::copy(&exe, &copy).unwrap();
    let mut child = spawn_sleeper(Command::new(&copy).args([
        "--exact",
        "sleeper_for_other_tests",
        "--nocapture",
    ]))
    .unwrap();
    let addr = wait_for_mapping(&mut child, &copy, marker_file_offset());
    std::fs::remove_file(&copy).unwrap();
    // A new file at the old path must not be read in place of the deleted one.
    std::fs::File::create(&copy)
        .unwrap()
        .write_all(b"not the mapped file")
        .unwrap();
    let addr = addr.expect("child maps its executable");
    let results = Symbolizer::new()
        .symbolize(&Source::process(child.0.id()), &[addr])
        .unwrap();
    drop(child);
    let _ = std::fs::remove_file(&copy);
    assert_eq!(
        results[0].function(),
        Some("coolbpf_process_test_marker"),
        "{results:?}"
    );
}
