//! The large binary the symbolizer benchmark runs on: a generated C++ program compiled
//! with `g++ -O2 -g`, built once and cached under `target/tmp`.
//!
//! Each of [`UNITS`] translation units defines [`FUNCTIONS`] functions over standard
//! containers (`std::sort`, `std::partition`, `std::map`, `std::unordered_map`,
//! `std::shared_ptr`, lambdas) that call a five-deep chain of inline function templates,
//! instantiated with different arguments in every function: deep inline chains, many
//! template instances per unit, and each unit carrying its own copy of the library's
//! types, as in real C++ programs. With GCC 12 that is about 2.4 MB of DWARF per unit.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use object::{Object, ObjectSection};

/// Translation units in the program.
pub const UNITS: usize = 48;
/// Functions in each unit, besides its entry point.
pub const FUNCTIONS: usize = 64;

/// The corpus, built.
pub struct Corpus {
    /// The executable, with its DWARF.
    pub full: PathBuf,
    /// The same executable without DWARF (`objcopy --strip-debug`): symbol table only.
    pub symtab: PathBuf,
}

/// The compiler's flags for each unit; the link adds none but `-O2 -g`.
const FLAGS: &[&str] = &["-std=c++17", "-O2", "-g"];

/// Builds the corpus under `dir`, or finds it there from an earlier run. The directory
/// name is a hash of the generated sources, the flags and the compiler's version, so a
/// change to any of them builds a new one.
pub fn build(dir: &Path) -> Corpus {
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "g++".to_owned());
    let version = output(Command::new(&compiler).arg("--version"));
    let mut units: Vec<(String, String)> = (0..UNITS)
        .map(|unit| (format!("unit{unit:02}.cpp"), unit_source(unit)))
        .collect();
    units.push(("main.cpp".to_owned(), main_source()));
    let mut key = fnv1a(
        version.as_bytes(),
        fnv1a(FLAGS.join(" ").as_bytes(), FNV_BASIS),
    );
    for (name, source) in &units {
        key = fnv1a(source.as_bytes(), fnv1a(name.as_bytes(), key));
    }
    let root = dir.join(format!("corpus-{key:016x}"));
    let corpus = Corpus {
        full: root.join("corpus"),
        symtab: root.join("corpus.symtab"),
    };
    let stamp = root.join("built");
    if stamp.exists() {
        return corpus;
    }
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(&root);
    let src = root.join("src");
    std::fs::create_dir_all(&src).expect("create the corpus directory");
    let mut sources = Vec::new();
    for (name, source) in &units {
        let path = src.join(name);
        std::fs::write(&path, source).expect("write a corpus unit");
        sources.push(path);
    }

    let jobs = std::thread::available_parallelism().map_or(2, usize::from);
    eprintln!(
        "building the corpus: {} C++ units with {compiler} -O2 -g on {jobs} cores (once; cached in {})",
        sources.len(),
        root.display()
    );
    let next = AtomicUsize::new(0);
    let objects = Mutex::new(vec![PathBuf::new(); sources.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(source) = sources.get(i) else { break };
                let object = source.with_extension("o");
                run(Command::new(&compiler)
                    .args(FLAGS)
                    .args(["-c", "-o"])
                    .arg(&object)
                    .arg(source));
                objects
                    .lock()
                    .expect("no compile job panics holding the lock")[i] = object;
            });
        }
    });
    let objects = objects.into_inner().expect("no compile job panicked");
    run(Command::new(&compiler)
        .args(["-O2", "-g", "-o"])
        .arg(&corpus.full)
        .args(&objects));
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&corpus.full)
        .arg(&corpus.symtab));
    for object in &objects {
        let _ = std::fs::remove_file(object);
    }
    std::fs::write(&stamp, "").expect("write the corpus stamp");
    eprintln!(
        "corpus built in {:.0} s ({:.0} s of CPU in the compiler and linker)",
        started.elapsed().as_secs_f64(),
        children_cpu_seconds()
    );
    corpus
}

/// Sizes of an ELF file's parts, in bytes.
pub struct Sizes {
    /// The whole file.
    pub file: u64,
    /// `.text`.
    pub text: u64,
    /// All `.debug_*` sections.
    pub dwarf: u64,
    /// Each `.debug_*` section, largest first.
    pub sections: Vec<(String, u64)>,
}

/// The sizes of the ELF file at `path`.
pub fn sizes(path: &Path) -> Sizes {
    let data = std::fs::read(path).expect("read the binary");
    let object = object::File::parse(&*data).expect("parse the binary");
    let mut sections: Vec<(String, u64)> = object
        .sections()
        .filter_map(|s| {
            let name = s.name().ok()?;
            name.starts_with(".debug_")
                .then(|| (name.to_owned(), s.size()))
        })
        .collect();
    sections.sort_by_key(|s| std::cmp::Reverse(s.1));
    Sizes {
        file: data.len() as u64,
        text: object.section_by_name(".text").map_or(0, |s| s.size()),
        dwarf: sections.iter().map(|s| s.1).sum(),
        sections,
    }
}

/// One translation unit: its own namespace, so that every template instance and lambda
/// is distinct from those of the other units.
fn unit_source(unit: usize) -> String {
    let mut s = format!(
        r"// Generated by coolbpf-symbolize/benches/support/corpus.rs.
#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

namespace corpus{unit} {{

struct Rec {{ long key; double weight; std::string name; }};

static inline long mix(long x, long k) {{ x ^= x >> 13; x *= 0x5bd1e995 + k; return x ^ (x >> 15); }}

template <typename T, int K> struct Acc {{
  T total{{}};
  std::vector<T> seen;
  inline void add(const T& v) {{ total += v * K; if (seen.size() < 64) seen.push_back(v); }}
  inline T mean() const {{ return seen.empty() ? T{{}} : total / static_cast<T>(seen.size()); }}
}};

template <int K> inline long l1(const Rec& r, long s) {{ return mix(r.key + s, K) + static_cast<long>(r.name.size()); }}
template <int K> inline long l2(const Rec& r, long s) {{ long a = l1<K>(r, s); return a > s ? a - l1<K + 1>(r, a) : a + s; }}
template <int K> inline long l3(const Rec& r, long s) {{ return l2<K>(r, s) ^ (static_cast<long>(r.weight * K) + l2<K + 2>(r, s >> 1)); }}
template <int K> inline long l4(const Rec& r, long s) {{ long t = l3<K>(r, s); if (t & 1) t += l3<K * 3>(r, t); return t; }}
template <int K> inline long l5(const std::vector<Rec>& v, long s) {{
  long h = s;
  for (const Rec& r : v) h = l4<K>(r, h);
  return h;
}}
"
    );
    for f in 0..FUNCTIONS {
        let k = f * 7 + 1;
        let head = format!(
            "\nlong f{unit}_{f}(std::vector<Rec>& v, std::map<std::string, long>& m, int n) {{\n"
        );
        s.push_str(&head);
        let body = match f % 4 {
            0 => format!(
                r#"  std::sort(v.begin(), v.end(), [](const Rec& a, const Rec& b) {{ return a.key * {m} < b.key || (a.key == b.key && a.name < b.name); }});
  Acc<double, {acc}> acc;
  for (const Rec& r : v) acc.add(r.weight);
  m["f{f}"] += l5<{k}>(v, n) + static_cast<long>(acc.mean());
  return static_cast<long>(m.size());
"#,
                m = f + 2,
                acc = f % 7 + 1,
            ),
            1 => format!(
                r"  std::unordered_map<long, std::string> idx;
  for (int k = 0; k < n; ++k) idx.emplace(l4<{k}>(v[k % v.size()], k), v[k % v.size()].name);
  for (auto& [k, s] : idx) m[s] += k;
  return l5<{k3}>(v, static_cast<long>(idx.size()));
",
                k3 = k + 3,
            ),
            2 => format!(
                r#"  std::vector<std::shared_ptr<Rec>> owned;
  for (const Rec& r : v) if (l3<{k}>(r, n) > 0) owned.push_back(std::make_shared<Rec>(r));
  long t = std::accumulate(owned.begin(), owned.end(), 0L, [](long a, const std::shared_ptr<Rec>& r) {{ return a + l2<{k5}>(*r, a); }});
  m[owned.empty() ? std::string("none") : owned.front()->name] = t;
  return t;
"#,
                k5 = k + 5,
            ),
            _ => format!(
                r"  auto it = std::partition(v.begin(), v.end(), [n](const Rec& r) {{ return l4<{k}>(r, n) & 2; }});
  long t = 0;
  for (auto p = v.begin(); p != it; ++p) t += l5<{k11}>(v, p->key);
  for (auto& [name, val] : m) val ^= l2<{k13}>(v.front(), t + static_cast<long>(name.size()));
  return t;
",
                k11 = k + 11,
                k13 = k + 13,
            ),
        };
        s.push_str(&body);
        s.push_str("}\n");
    }
    let _ = write!(
        s,
        "\n}}  // namespace corpus{unit}\n\nlong corpus_entry{unit}(int n) {{\n  std::vector<corpus{unit}::Rec> v(n);\n  std::map<std::string, long> m;\n  long t = 0;\n"
    );
    for f in 0..FUNCTIONS {
        let _ = writeln!(s, "  t += corpus{unit}::f{unit}_{f}(v, m, n);");
    }
    s.push_str("  return t;\n}\n");
    s
}

/// The entry point, calling every unit's entry so that nothing is left out.
fn main_source() -> String {
    let mut s = String::from("// Generated by coolbpf-symbolize/benches/support/corpus.rs.\n");
    for unit in 0..UNITS {
        let _ = writeln!(s, "long corpus_entry{unit}(int n);");
    }
    s.push_str("\nint main(int argc, char**) {\n  long t = 0;\n");
    for unit in 0..UNITS {
        let _ = writeln!(s, "  t += corpus_entry{unit}(argc);");
    }
    s.push_str("  return static_cast<int>(t & 1);\n}\n");
    s
}

fn run(command: &mut Command) {
    let result = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        result.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn output(command: &mut Command) -> String {
    let result = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    String::from_utf8_lossy(&result.stdout).into_owned()
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// User and system time of this process's finished children.
fn children_cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage`; the call only fills it in.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
