//! Which CPython minor version a process runs: each has its own structure layout.

use std::fmt;

/// A CPython minor version whose interpreter state coolbpf can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 3.10: frames are `PyFrameObject`s linked by `f_back`, one C evaluation call each.
    V3_10,
    /// 3.11: `_PyInterpreterFrame`s reached through `tstate->cframe`, `is_entry` marks
    /// the frames entered from C.
    V3_11,
    /// 3.12: like 3.11, but entry frames sit above a shim frame owned by the C stack.
    V3_12,
    /// 3.13: `tstate->current_frame`, `f_executable`, `instr_ptr`; `_Py_DebugOffsets` at
    /// the start of `_PyRuntime`.
    V3_13,
}

impl Version {
    /// All supported versions, oldest first.
    pub const ALL: [Version; 4] = [Self::V3_10, Self::V3_11, Self::V3_12, Self::V3_13];

    /// The version of CPython 3.`minor`, if supported.
    pub fn from_minor(minor: u32) -> Option<Self> {
        match minor {
            10 => Some(Self::V3_10),
            11 => Some(Self::V3_11),
            12 => Some(Self::V3_12),
            13 => Some(Self::V3_13),
            _ => None,
        }
    }

    /// The minor version number (10 for 3.10).
    pub fn minor(self) -> u32 {
        match self {
            Self::V3_10 => 10,
            Self::V3_11 => 11,
            Self::V3_12 => 12,
            Self::V3_13 => 13,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "3.{}", self.minor())
    }
}

/// The (major, minor) of a file name such as `libpython3.11.so.1.0`, `python3.12` or
/// `libpython3.13t.so`: the digits after the last `python` in the name.
pub(crate) fn from_file_name(name: &str) -> Option<(u32, u32)> {
    let rest = &name[name.rfind("python")? + "python".len()..];
    let mut parts = rest.splitn(2, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The (major, minor) of a `PY_VERSION_HEX` value (`Py_Version`, 3.11 and later).
pub(crate) fn from_hex(hex: u64) -> (u32, u32) {
    (((hex >> 24) & 0xff) as u32, ((hex >> 16) & 0xff) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(from_file_name("libpython3.11.so.1.0"), Some((3, 11)));
        assert_eq!(from_file_name("python3.10"), Some((3, 10)));
        assert_eq!(from_file_name("libpython3.13t.so"), Some((3, 13)));
        assert_eq!(from_file_name("python3"), None);
        assert_eq!(from_file_name("bash"), None);
    }

    #[test]
    fn hex_and_minor() {
        assert_eq!(from_hex(0x030b_07f0), (3, 11));
        assert_eq!(Version::from_minor(12), Some(Version::V3_12));
        assert_eq!(Version::from_minor(14), None);
        assert_eq!(Version::V3_13.to_string(), "3.13");
    }
}
