//! The mount table (`/proc/self/mounts`) and `mount(2)` for pseudo filesystems.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// What is mounted (a device, or a free-form name such as `nodev` for pseudo filesystems).
    pub source: String,
    /// Where it is mounted.
    pub target: PathBuf,
    /// The filesystem type, e.g. `tracefs` or `bpf`.
    pub fstype: String,
}

/// Parses the text of `/proc/self/mounts`, skipping malformed lines.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let source = unescape(fields.next()?);
            let target = PathBuf::from(unescape(fields.next()?));
            let fstype = unescape(fields.next()?);
            Some(MountEntry {
                source,
                target,
                fstype,
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\134` for a backslash...),
/// which keep the whitespace-separated format unambiguous.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(byte) = octal_escape(&bytes[i..]) {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a `\NNN` escape at the start of `bytes`.
fn octal_escape(bytes: &[u8]) -> Option<u8> {
    let [b'\\', digits @ ..] = bytes.get(..4)? else {
        return None;
    };
    let value = digits.iter().try_fold(0u32, |value, &digit| {
        (b'0'..=b'7')
            .contains(&digit)
            .then(|| value * 8 + u32::from(digit - b'0'))
    })?;
    u8::try_from(value).ok()
}

/// The calling process's mount table.
pub fn mounts() -> io::Result<Vec<MountEntry>> {
    Ok(parse_mounts(&std::fs::read_to_string("/proc/self/mounts")?))
}

/// Mounts a pseudo filesystem (no backing device, no flags, no options):
/// `mount -t FSTYPE SOURCE TARGET`.
pub fn mount_pseudo(source: &str, target: &Path, fstype: &str) -> io::Result<()> {
    let invalid = |_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in mount argument");
    let source = CString::new(source).map_err(invalid)?;
    let target = CString::new(target.as_os_str().as_bytes()).map_err(invalid)?;
    let fstype = CString::new(fstype).map_err(invalid)?;
    // SAFETY: the three pointers are NUL-terminated strings that outlive the call, and a
    // null `data` is allowed (no options); the kernel copies everything it needs.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_escapes() {
        let text = "sysfs /sys sysfs rw,nosuid 0 0\n\
                    nodev /sys/kernel/tracing tracefs rw,relatime 0 0\n\
                    /dev/vdb /mnt/my\\040disk ext4 rw 0 0\n\
                    garbage\n";
        let entries = parse_mounts(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1],
            MountEntry {
                source: "nodev".into(),
                target: "/sys/kernel/tracing".into(),
                fstype: "tracefs".into(),
            }
        );
        assert_eq!(entries[2].target, Path::new("/mnt/my disk"));
    }

    #[test]
    fn unescape_leaves_non_octal_backslashes() {
        assert_eq!(unescape(r"a\134b"), r"a\b");
        assert_eq!(unescape(r"a\9b\0"), r"a\9b\0");
        assert_eq!(unescape(r"tab\011end"), "tab\tend");
    }
}
