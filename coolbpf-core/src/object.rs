//! BPF objects: open from embedded bytes or a `.bpf.o` path, configure before load,
//! and own everything attached afterwards.
//!
//! Ownership is the point: a [`BpfObject`] holds its [`Attachment`]s and its libbpf
//! object, so dropping it detaches every program and closes every fd, on success and
//! on every error path alike.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use libbpf_rs::btf::types::DataSec;
use libbpf_rs::btf::BtfType;
use libbpf_rs::{AsRawLibbpf, Btf, MapCore, OpenObject};

use crate::attach::{AttachTarget, Attachment};
use crate::decode::int_ne_bytes;
use crate::error::{Error, Result};
use crate::map::MapView;

/// Where a BPF object's ELF bytes come from.
#[derive(Debug, Clone)]
pub enum ObjectSource {
    /// Bytes embedded in the binary (`include_bytes!`) or built at run time.
    Bytes(Cow<'static, [u8]>),
    /// A `.bpf.o` file on disk.
    Path(PathBuf),
}

/// Ordered alternatives for one role: the first program whose attach kind this kernel
/// supports is loaded, the others are not (so an unsupported kind cannot fail the load).
#[derive(Debug, Clone)]
struct Alternatives {
    programs: Vec<String>,
}

/// Configures a BPF object before it is loaded into the kernel.
///
/// ```no_run
/// # fn main() -> coolbpf_core::Result<()> {
/// let object = coolbpf_core::ObjectBuilder::from_path("probe.bpf.o")
///     .global("coolbpf_filter_tgid", &4242u32)
///     .max_entries("counts", 65536)
///     .load()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ObjectBuilder {
    source: ObjectSource,
    globals: Vec<(String, GlobalInit)>,
    max_entries: Vec<(String, u32)>,
    disabled: Vec<String>,
    alternatives: Vec<Alternatives>,
}

/// A global's value as given to the builder.
#[derive(Debug, Clone)]
enum GlobalInit {
    /// Exactly the variable's bytes.
    Bytes(Vec<u8>),
    /// An integer, encoded in whatever size the variable's BTF type has.
    Int(i128),
}

/// A value that can be written into a BPF global variable before load.
pub trait GlobalValue {
    /// The value's bytes in the kernel's (native) byte order.
    fn to_bytes(&self) -> Vec<u8>;
}

macro_rules! impl_global_value {
    ($($ty:ty),*) => {$(
        impl GlobalValue for $ty {
            fn to_bytes(&self) -> Vec<u8> {
                self.to_ne_bytes().to_vec()
            }
        }
    )*};
}
impl_global_value!(u8, u16, u32, u64, i8, i16, i32, i64);

impl GlobalValue for bool {
    fn to_bytes(&self) -> Vec<u8> {
        vec![u8::from(*self)]
    }
}

impl GlobalValue for [u8] {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
}

impl ObjectBuilder {
    /// An object from bytes embedded in the binary.
    pub fn from_bytes(bytes: &'static [u8]) -> Self {
        Self::new(ObjectSource::Bytes(Cow::Borrowed(bytes)))
    }

    /// An object from bytes produced at run time (e.g. compiled from source).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self::new(ObjectSource::Bytes(Cow::Owned(bytes)))
    }

    /// An object from a `.bpf.o` file.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self::new(ObjectSource::Path(path.into()))
    }

    fn new(source: ObjectSource) -> Self {
        Self {
            source,
            globals: Vec::new(),
            max_entries: Vec::new(),
            disabled: Vec::new(),
            alternatives: Vec::new(),
        }
    }

    /// Sets global variable `name` (in `.rodata`, `.data` or `.bss`) before load.
    /// `const volatile` globals become constants the verifier can prune on.
    #[must_use]
    pub fn global<V: GlobalValue + ?Sized>(mut self, name: &str, value: &V) -> Self {
        self.globals
            .push((name.to_owned(), GlobalInit::Bytes(value.to_bytes())));
        self
    }

    /// Sets integer global `name` before load, in the size its BTF type has (1, 2, 4 or
    /// 8 bytes): for callers that hold an integer but not the variable's C type (the
    /// bindings). A value that does not fit is refused at load.
    #[must_use]
    pub fn global_int(mut self, name: &str, value: i128) -> Self {
        self.globals.push((name.to_owned(), GlobalInit::Int(value)));
        self
    }

    /// Resizes map `name` before it is created (ring buffer size in bytes, hash entries).
    #[must_use]
    pub fn max_entries(mut self, map: &str, entries: u32) -> Self {
        self.max_entries.push((map.to_owned(), entries));
        self
    }

    /// Does not load program `name`.
    #[must_use]
    pub fn disable_program(mut self, name: &str) -> Self {
        self.disabled.push(name.to_owned());
        self
    }

    /// Declares interchangeable programs for one role, most preferred first (for example
    /// `["on_switch_btf", "on_switch_raw", "on_switch_tp"]`). At load, the first whose
    /// attach kind [`Features`](crate::Features) reports available is kept; if the kernel
    /// still rejects it, the next one is tried.
    #[must_use]
    pub fn alternatives<S: AsRef<str>>(mut self, programs: &[S]) -> Self {
        let programs = programs.iter().map(|p| p.as_ref().to_owned()).collect();
        self.alternatives.push(Alternatives { programs });
        self
    }

    /// Opens, configures and loads the object into the kernel.
    pub fn load(self) -> Result<BpfObject> {
        let bytes = self.read_source()?;
        let sections = if self.alternatives.is_empty() {
            Vec::new()
        } else {
            program_sections(&bytes)?
        };
        let mut remaining: Vec<Vec<String>> = self
            .alternatives
            .iter()
            .map(|alt| prefer_supported(&alt.programs, &sections))
            .collect();
        loop {
            let chosen: Vec<Option<&String>> = remaining.iter().map(|alt| alt.first()).collect();
            match self.load_once(&bytes, &remaining, &chosen) {
                Ok(object) => return Ok(object),
                Err(err) => {
                    // Fall back one step on the first role that still has a next choice;
                    // when none has, the kernel's refusal is the answer.
                    let Some(role) = remaining.iter_mut().find(|alt| alt.len() > 1) else {
                        return Err(err);
                    };
                    role.remove(0);
                }
            }
        }
    }

    fn read_source(&self) -> Result<Cow<'static, [u8]>> {
        match &self.source {
            ObjectSource::Bytes(bytes) => Ok(bytes.clone()),
            ObjectSource::Path(path) => {
                std::fs::read(path)
                    .map(Cow::Owned)
                    .map_err(|source| Error::ObjectFile {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    fn load_once(
        &self,
        bytes: &[u8],
        alternatives: &[Vec<String>],
        chosen: &[Option<&String>],
    ) -> Result<BpfObject> {
        let mut open = libbpf_rs::ObjectBuilder::default()
            .open_memory(bytes)
            .map_err(|e| Error::bpf(format!("cannot parse BPF object {}", self.describe()), e))?;
        let name = open
            .name()
            .map_or_else(|| "bpf".to_owned(), |n| n.to_string_lossy().into_owned());
        self.check_program_names(&open)?;
        for mut program in open.progs_mut() {
            let program_name = program.name().to_string_lossy().into_owned();
            let in_alternatives = alternatives.iter().any(|alt| alt.contains(&program_name));
            let is_chosen = chosen.contains(&Some(&program_name));
            if self.disabled.contains(&program_name) || (in_alternatives && !is_chosen) {
                program.set_autoload(false);
            }
        }
        for (map, entries) in &self.max_entries {
            let known = open_map_names(&open);
            let mut found = open
                .maps_mut()
                .find(|m| m.name() == OsStr::new(map))
                .ok_or_else(|| Error::NotFound {
                    what: "map",
                    name: map.clone(),
                    known,
                })?;
            found
                .set_max_entries(*entries)
                .map_err(|e| Error::bpf(format!("cannot resize map {map} to {entries}"), e))?;
        }
        skip_unsupported_maps(&mut open)?;
        set_globals(&mut open, &self.globals)?;
        let object = open
            .load()
            .map_err(|e| Error::bpf(format!("kernel refused to load BPF object {name}"), e))?;
        Ok(BpfObject {
            attachments: Vec::new(),
            object,
            name,
        })
    }

    fn check_program_names(&self, open: &OpenObject) -> Result<()> {
        let known: Vec<String> = open
            .progs()
            .map(|p| p.name().to_string_lossy().into_owned())
            .collect();
        let referenced = self
            .disabled
            .iter()
            .chain(self.alternatives.iter().flat_map(|a| &a.programs));
        for name in referenced {
            if !known.contains(name) {
                return Err(Error::NotFound {
                    what: "program",
                    name: name.clone(),
                    known,
                });
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.source {
            ObjectSource::Bytes(bytes) => format!("({} embedded bytes)", bytes.len()),
            ObjectSource::Path(path) => path.display().to_string(),
        }
    }
}

/// Leaves out maps of a type this kernel lacks (task storage before 5.11, say), so that
/// the object still loads: a program that uses one is then refused, which is how an
/// alternative that needs it gives way to the next (see
/// [`ObjectBuilder::alternatives`]). When none is left the kernel's refusal is reported.
fn skip_unsupported_maps(open: &mut OpenObject) -> Result<()> {
    for mut map in open.maps_mut() {
        if !map_type_supported(map.map_type()) {
            let name = map.name().to_string_lossy().into_owned();
            map.set_autocreate(false)
                .map_err(|e| Error::bpf(format!("cannot leave out map {name}"), e))?;
        }
    }
    Ok(())
}

/// Whether this kernel creates maps of type `kind`, probed once per type and process
/// (each probe creates a map). A type that cannot even be probed counts as supported:
/// the kernel judges it at load.
fn map_type_supported(kind: libbpf_rs::MapType) -> bool {
    static PROBED: Mutex<Vec<(libbpf_rs::MapType, bool)>> = Mutex::new(Vec::new());
    let mut probed = PROBED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(_, supported)) = probed.iter().find(|(k, _)| *k == kind) {
        return supported;
    }
    let supported = kind.is_supported().unwrap_or(true);
    probed.push((kind, supported));
    supported
}

/// Orders alternatives so that kinds [`Features`](crate::Features) reports available come
/// first, keeping the caller's preference among equals; unavailable kinds stay as a last
/// resort. Without feature detection (no privileges yet) the caller's order is kept.
fn prefer_supported(programs: &[String], sections: &[(String, String)]) -> Vec<String> {
    let Ok(features) = crate::Features::detect() else {
        return programs.to_vec();
    };
    let supported = |program: &String| {
        sections
            .iter()
            .find(|(name, _)| name == program)
            .and_then(|(_, section)| section_feature(section))
            .is_none_or(|feature| features.require(feature).is_ok())
    };
    let (mut ordered, unsupported): (Vec<String>, Vec<String>) =
        programs.iter().cloned().partition(|p| supported(p));
    ordered.extend(unsupported);
    ordered
}

/// The [`Features`](crate::Features) entry that decides whether a program of this
/// `SEC()` name can attach here.
fn section_feature(section: &str) -> Option<&'static str> {
    let kind = section.split('/').next().unwrap_or(section);
    Some(match kind {
        "tp_btf" => "tp_btf",
        "raw_tp" | "raw_tracepoint" => "raw_tp",
        "tp" | "tracepoint" => "tracepoint",
        "kprobe" | "kretprobe" | "ksyscall" | "kretsyscall" => "kprobe",
        "fentry" | "fexit" | "fmod_ret" => "fentry",
        "uprobe" | "uretprobe" => "uprobe",
        "usdt" => "usdt",
        "perf_event" => "perf_event_software",
        _ => return None,
    })
}

/// `(program name, SEC() name)` of every program in the object.
fn program_sections(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let open = libbpf_rs::ObjectBuilder::default()
        .open_memory(bytes)
        .map_err(|e| Error::bpf("cannot parse BPF object", e))?;
    Ok(open
        .progs()
        .map(|p| {
            (
                p.name().to_string_lossy().into_owned(),
                p.section().to_string_lossy().into_owned(),
            )
        })
        .collect())
}

fn open_map_names(open: &OpenObject) -> Vec<String> {
    open.maps()
        .map(|m| m.name().to_string_lossy().into_owned())
        .collect()
}

/// Writes each requested global into the initial value of the internal map holding it,
/// at the offset BTF gives for it.
fn set_globals(open: &mut OpenObject, globals: &[(String, GlobalInit)]) -> Result<()> {
    if globals.is_empty() {
        return Ok(());
    }
    let mut placements = Vec::with_capacity(globals.len());
    {
        // SAFETY: the pointer comes from a live OpenObject, which outlives this block; the
        // Btf view only reads the object's BTF and is dropped before the object is mutated.
        let raw = unsafe { open.as_libbpf_object().as_ref() };
        let btf = Btf::from_bpf_object(raw)
            .map_err(|e| Error::bpf("cannot read the object's BTF", e))?
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "BPF object has no BTF: cannot set globals by name (compile with -g)".into(),
                )
            })?;
        for (name, init) in globals {
            let (section, offset, size) = find_global(&btf, name)?;
            let value = match init {
                GlobalInit::Bytes(bytes) => bytes.clone(),
                GlobalInit::Int(value) => int_ne_bytes(*value, size).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "global {name} is {size} bytes: {value} does not fit"
                    ))
                })?,
            };
            if size != value.len() {
                return Err(Error::InvalidArgument(format!(
                    "global {name} is {size} bytes, the value given is {} bytes",
                    value.len()
                )));
            }
            placements.push((section, offset, value));
        }
    }
    for (section, offset, value) in placements {
        let mut map = open
            .maps_mut()
            .find(|m| m.name().to_string_lossy().ends_with(section.as_str()))
            .ok_or_else(|| Error::NotFound {
                what: "data section map",
                name: section.clone(),
                known: Vec::new(),
            })?;
        let data = map.initial_value_mut().ok_or_else(|| {
            Error::InvalidArgument(format!("section {section} has no initial value"))
        })?;
        let end = offset + value.len();
        data.get_mut(offset..end)
            .ok_or_else(|| {
                Error::Decode(format!(
                    "global at {section}+{offset} is outside the section"
                ))
            })?
            .copy_from_slice(&value);
    }
    Ok(())
}

/// Finds `(section name, offset, size)` of global `name` in the object's data sections.
fn find_global(btf: &Btf<'_>, name: &str) -> Result<(String, usize, usize)> {
    let mut known = Vec::new();
    for section in [".rodata", ".data", ".bss"] {
        let Some(datasec) = btf.type_by_name::<DataSec<'_>>(section) else {
            continue;
        };
        for var in datasec.iter() {
            let Some(ty) = btf.type_by_id::<BtfType<'_>>(var.ty) else {
                continue;
            };
            if ty.name().is_some_and(|n| n == OsStr::new(name)) {
                return Ok((section.to_owned(), var.offset as usize, var.size));
            }
            if let Some(other) = ty.name() {
                known.push(other.to_string_lossy().into_owned());
            }
        }
    }
    Err(Error::NotFound {
        what: "global variable",
        name: name.to_owned(),
        known,
    })
}

/// A BPF object loaded into the kernel, owning its attachments.
///
/// Dropping it detaches every attachment first, then unloads programs and maps.
#[derive(Debug)]
pub struct BpfObject {
    // Field order is drop order: links go before the programs they refer to.
    attachments: Vec<Attachment>,
    object: libbpf_rs::Object,
    name: String,
}

impl BpfObject {
    /// The object's name (from its ELF file).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of the programs that were loaded.
    pub fn program_names(&self) -> Vec<String> {
        self.object
            .progs()
            .filter(libbpf_rs::ProgramImpl::autoload)
            .map(|p| p.name().to_string_lossy().into_owned())
            .collect()
    }

    /// Names of all maps.
    pub fn map_names(&self) -> Vec<String> {
        self.object
            .maps()
            .map(|m| m.name().to_string_lossy().into_owned())
            .collect()
    }

    /// Duplicated fds of the loaded programs: what loss accounting keeps to ask the kernel
    /// how often each program was skipped, for as long as it needs to.
    pub(crate) fn program_fds(&self) -> Result<Vec<OwnedFd>> {
        self.object
            .progs()
            .filter(libbpf_rs::ProgramImpl::autoload)
            .map(|p| {
                p.as_fd().try_clone_to_owned().map_err(|e| {
                    Error::io(
                        format!(
                            "cannot duplicate fd of program {}",
                            p.name().to_string_lossy()
                        ),
                        e,
                    )
                })
            })
            .collect()
    }

    /// Whether program `name` was loaded (for alternatives: whether it was the one chosen).
    pub fn has_program(&self, name: &str) -> bool {
        self.object
            .progs()
            .any(|p| p.autoload() && p.name() == OsStr::new(name))
    }

    /// Attaches program `program` to `target`. A target may yield several kernel links
    /// (perf events on every CPU); all are owned by this object.
    pub fn attach(&mut self, program: &str, target: &AttachTarget) -> Result<()> {
        let prog = self.find_program(program)?;
        let attached = target.attach(&prog)?;
        self.attachments.extend(attached);
        Ok(())
    }

    /// Attaches program `program` where its `SEC()` says (tp_btf, fentry, raw_tp...).
    pub fn attach_auto(&mut self, program: &str) -> Result<()> {
        self.attach(program, &AttachTarget::FromSection)
    }

    /// Attaches the first loaded program among `alternatives` by its `SEC()`, returning
    /// its name.
    pub fn attach_chosen<S: AsRef<str>>(&mut self, alternatives: &[S]) -> Result<String> {
        let chosen = alternatives
            .iter()
            .map(AsRef::as_ref)
            .find(|name| self.has_program(name))
            .ok_or_else(|| Error::NotFound {
                what: "loaded program among alternatives",
                name: alternatives
                    .iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join("|"),
                known: self.program_names(),
            })?
            .to_owned();
        self.attach_auto(&chosen)?;
        Ok(chosen)
    }

    /// Number of live kernel attachments.
    pub fn attachment_count(&self) -> usize {
        self.attachments.len()
    }

    /// Detaches everything attached so far (the object stays loaded).
    pub fn detach_all(&mut self) {
        self.attachments.clear();
    }

    /// An owned view of map `name` (its fd is duplicated, so the view outlives `self`).
    pub fn map(&self, name: &str) -> Result<MapView> {
        let map = self
            .object
            .maps()
            .find(|m| m.name() == OsStr::new(name))
            .ok_or_else(|| Error::NotFound {
                what: "map",
                name: name.to_owned(),
                known: self.map_names(),
            })?;
        MapView::from_map(&map)
    }

    /// Whether the object has map `name`.
    pub fn has_map(&self, name: &str) -> bool {
        self.object.maps().any(|m| m.name() == OsStr::new(name))
    }

    fn find_program(&self, name: &str) -> Result<libbpf_rs::ProgramMut<'_>> {
        self.object
            .progs_mut()
            .find(|p| p.name() == OsStr::new(name))
            .filter(|p| p.autoload())
            .ok_or_else(|| Error::NotFound {
                what: "loaded program",
                name: name.to_owned(),
                known: self.program_names(),
            })
    }

    /// The current bytes of global variable `name` (`.bss`, `.data` or `.rodata`), read
    /// from the kernel: how userspace sees counters a program keeps in globals.
    pub fn global_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let btf = self
            .object
            .btf()
            .map_err(|e| Error::bpf("cannot read the object's BTF", e))?
            .ok_or_else(|| {
                Error::InvalidArgument("BPF object has no BTF: cannot find globals by name".into())
            })?;
        let (section, offset, size) = find_global(&btf, name)?;
        let map = self
            .object
            .maps()
            .find(|m| m.name().to_string_lossy().ends_with(section.as_str()))
            .ok_or_else(|| Error::NotFound {
                what: "data section map",
                name: section.clone(),
                known: self.map_names(),
            })?;
        let value = MapView::from_map(&map)?
            .lookup(&0u32.to_ne_bytes())?
            .ok_or_else(|| Error::Decode(format!("section {section} has no value")))?;
        value
            .get(offset..offset + size)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                Error::Decode(format!(
                    "global {name} at {section}+{offset} is outside the section"
                ))
            })
    }

    /// Global variable `name` read as a u64 (it must be 8 bytes).
    pub fn global_u64(&self, name: &str) -> Result<u64> {
        let bytes = self.global_bytes(name)?;
        let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
            Error::InvalidArgument(format!("global {name} is {} bytes, not 8", bytes.len()))
        })?;
        Ok(u64::from_ne_bytes(array))
    }

    /// Reads map `name`'s key and value sizes (for checks before decoding).
    pub fn map_layout(&self, name: &str) -> Result<(u32, u32)> {
        let view = self.map(name)?;
        Ok((view.key_size(), view.value_size()))
    }

    /// The raw libbpf object, for what coolbpf does not wrap.
    pub fn as_libbpf(&self) -> &libbpf_rs::Object {
        &self.object
    }
}

impl MapView {
    fn from_map(map: &libbpf_rs::Map<'_>) -> Result<Self> {
        let name = map.name().to_string_lossy().into_owned();
        let handle = libbpf_rs::MapHandle::try_from(map)
            .map_err(|e| Error::bpf(format!("cannot duplicate fd of map {name}"), e))?;
        Ok(Self::new(handle, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_object_file_names_the_path() {
        let err = ObjectBuilder::from_path("/nonexistent/x.bpf.o")
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.bpf.o"), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        let err = ObjectBuilder::from_vec(b"not an ELF file at all".to_vec())
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("cannot parse BPF object"), "{err}");
    }
}
