//! Builds the C examples (`examples/c/`) and `tests/c/api.c` with `cc` against the library
//! as `install.sh` installs it (`-lcoolbpf` through `pkg-config`), runs them, and checks
//! both their own verdicts (exact counts) and a memory checker's.
//!
//! Memory checkers: valgrind where it can follow the program, AddressSanitizer (with
//! LeakSanitizer) where it cannot. valgrind cannot run anything that makes coolbpf detect
//! kernel features (loading a registry probe, or the profiler): detection attaches a
//! uprobe to a function of the process itself, and valgrind runs its own translation of
//! the code, in which the kernel's uprobe breakpoint (int3) becomes a fatal SIGTRAP.
//! (valgrind 3.19 also does not know several bpf() commands, so it cannot check their
//! arguments.) The user-object ring buffer and the API checks run under valgrind; the
//! syscount probe and the profiler under ASan.
//!
//! The ring buffer run turns valgrind's uninitialised-value checks off (invalid accesses
//! and leaks are still errors): valgrind does not model what the kernel writes for a
//! lookup in a per-CPU map (one value per possible CPU), so the loss counters coolbpf
//! reads from the object's `coolbpf_losses` per-CPU array look uninitialised to it,
//! although the kernel filled them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use coolbpf_core::testing::bpf_available;

const GETPPID_CALLS: u32 = 1000;
const RINGBUF_EVENTS: u32 = 20_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("coolbpf-c is in the workspace")
        .to_path_buf()
}

/// Where cargo put this test's libraries: the test binary is `<profile>/deps/NAME-HASH`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary is in <profile>/deps")
        .to_path_buf()
}

/// Installs the library with install.sh into a prefix of this test run (once).
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        // One fixed place per profile, overwritten by each run (nothing piles up).
        let prefix = profile_dir().join("coolbpf-c-prefix");
        let output = Command::new("sh")
            .arg(workspace().join("coolbpf-c/install.sh"))
            .arg("--lib-dir")
            .arg(profile_dir())
            .arg(&prefix)
            .output()
            .expect("run install.sh");
        assert_ok("install.sh", &output);
        prefix
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `pkg-config --cflags --libs coolbpf` against the test prefix.
fn pkg_config() -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(["--cflags", "--libs", "coolbpf"])
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .output()
        .expect("pkg-config must be installed (Debian: apt-get install pkg-config)");
    assert_ok("pkg-config", &output);
    let flags = text(&output.stdout);
    assert!(flags.contains("-lcoolbpf"), "{flags}");
    flags.split_whitespace().map(str::to_owned).collect()
}

/// Compiles `source` into the prefix as `name`, with ASan when `asan`.
fn compile(source: &Path, name: &str, asan: bool) -> PathBuf {
    let binary = prefix().join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"]);
    if asan {
        cc.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    cc.arg(source).arg("-o").arg(&binary).args(pkg_config());
    let output = cc.output().expect("cc must be installed");
    assert_ok(&format!("cc {}", source.display()), &output);
    binary
}

/// Runs `binary` with the installed library on the loader's path.
fn run(mut command: Command) -> Output {
    command
        .env("LD_LIBRARY_PATH", prefix().join("lib"))
        .output()
        .expect("run the example")
}

fn valgrind(binary: &Path, args: &[&str], reads_percpu_maps: bool) -> Output {
    let mut command = Command::new("valgrind");
    command.args([
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=99",
    ]);
    if reads_percpu_maps {
        command.arg("--undef-value-errors=no");
    }
    command.arg(binary).args(args);
    let output = run(command);
    let stderr = text(&output.stderr);
    assert_ok(&format!("valgrind {}", binary.display()), &output);
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "{stderr}");
    assert!(
        stderr.contains("definitely lost: 0 bytes") || stderr.contains("no leaks are possible"),
        "{stderr}"
    );
    // The summary lines, for whoever reads the test output.
    for line in stderr
        .lines()
        .filter(|l| l.contains("lost:") || l.contains("ERROR SUMMARY"))
    {
        eprintln!("{line}");
    }
    output
}

fn asan(binary: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(binary);
    command
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:exitcode=98");
    let output = run(command);
    assert_ok(&format!("{} (ASan)", binary.display()), &output);
    assert!(
        !text(&output.stderr).contains("ERROR: "),
        "{}",
        text(&output.stderr)
    );
    output
}

#[test]
fn api_checks_under_valgrind() {
    let binary = compile(&workspace().join("coolbpf-c/tests/c/api.c"), "api", false);
    let output = valgrind(&binary, &[], false);
    assert!(text(&output.stdout).contains("OK"));
}

#[test]
fn profile_and_api_checks_under_asan() {
    if !bpf_available("profile_and_api_checks_under_asan") {
        return;
    }
    let binary = compile(
        &workspace().join("coolbpf-c/tests/c/api.c"),
        "api-asan",
        true,
    );
    let output = asan(&binary, &["profile"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("OK"), "{stdout}");
    eprintln!("{}", stdout.trim());
}

#[test]
fn syscount_counts_exactly_its_own_calls_under_asan() {
    if !bpf_available("syscount_counts_exactly_its_own_calls_under_asan") {
        return;
    }
    let binary = compile(
        &workspace().join("examples/c/syscount.c"),
        "syscount-asan",
        true,
    );
    let output = asan(&binary, &[&GETPPID_CALLS.to_string()]);
    let stdout = text(&output.stdout);
    let expected = format!("getppid calls made: {GETPPID_CALLS}, counted: {GETPPID_CALLS}");
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    eprintln!("{expected}");
}

#[test]
fn ringbuf_delivers_every_event_under_valgrind() {
    if !bpf_available("ringbuf_delivers_every_event_under_valgrind") {
        return;
    }
    let object = prefix().join("ringbuf.bpf.o");
    coolbpf_build::BpfBuilder::new(workspace().join("examples/c/ringbuf.bpf.c"))
        .compile(&object)
        .unwrap_or_else(|err| panic!("compile examples/c/ringbuf.bpf.c: {err}"));
    let binary = compile(&workspace().join("examples/c/ringbuf.c"), "ringbuf", false);
    let object = object.to_str().expect("a UTF-8 path");
    let output = valgrind(&binary, &[object, &RINGBUF_EVENTS.to_string()], true);
    let stdout = text(&output.stdout);
    let expected = format!(
        "calls: {RINGBUF_EVENTS}, produced: {RINGBUF_EVENTS}, delivered: {RINGBUF_EVENTS} \
         (callback saw {RINGBUF_EVENTS}), lost: 0, out of order: 0"
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    eprintln!("{expected}");
}
