//! A function of this process to hang the uprobe probes on, and where code lies in files.

use std::path::PathBuf;

/// The uprobe probes' target. Not inlined, so that it has an address and calling it runs
/// its first instruction; `no_mangle` gives it a name that tools such as `perf probe`
/// can find too.
#[no_mangle]
#[inline(never)]
extern "C" fn coolbpf_feature_uprobe_target(value: u64) -> u64 {
    std::hint::black_box(value).wrapping_add(1)
}

/// Calls the target, firing any uprobe or uretprobe on it.
pub(super) fn call_target() {
    std::hint::black_box(coolbpf_feature_uprobe_target(std::hint::black_box(41)));
}

/// The file holding the target and the target's offset in it, as uprobes take them.
pub(super) fn target_location() -> Result<(PathBuf, usize), String> {
    locate(coolbpf_feature_uprobe_target as *const () as usize)
}

/// The file that code address `address` of this process was mapped from, and the
/// address's offset in that file.
pub(super) fn locate(address: usize) -> Result<(PathBuf, usize), String> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("reading /proc/self/maps: {e}"))?;
    file_offset(&maps, address).ok_or_else(|| {
        format!("no executable file mapping in /proc/self/maps holds address {address:#x}")
    })
}

/// Finds the executable, file-backed mapping of `maps` (the text of `/proc/PID/maps`)
/// that holds `address`: `offset = address - start + file offset of the mapping`.
fn file_offset(maps: &str, address: usize) -> Option<(PathBuf, usize)> {
    maps.lines().find_map(|line| {
        // start-end perms offset dev inode [path]; the path may contain spaces.
        let (range, rest) = split_field(line)?;
        let (perms, rest) = split_field(rest)?;
        let (offset, rest) = split_field(rest)?;
        let (_device, rest) = split_field(rest)?;
        let (_inode, path) = split_field(rest)?;
        let path = path.trim_start();
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let offset = usize::from_str_radix(offset, 16).ok()?;
        let holds = (start..end).contains(&address) && perms.contains('x') && path.starts_with('/');
        holds.then(|| (PathBuf::from(path), address - start + offset))
    })
}

/// Splits off the first space-separated field.
fn split_field(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start_matches(' ');
    let end = text.find(' ').unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c8a00000-55d0c8a40000 r--p 00000000 fd:01 1234                       /opt/my tool/bin
55d0c8a40000-55d0c8b00000 r-xp 00040000 fd:01 1234                       /opt/my tool/bin
7ffd1a5e0000-7ffd1a601000 rw-p 00000000 00:00 0                          [stack]
7ffd1a7f0000-7ffd1a7f2000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn offset_is_relative_to_the_mapping_file_offset() {
        let (path, offset) = file_offset(MAPS, 0x55d0_c8a4_1234).unwrap();
        assert_eq!(path, PathBuf::from("/opt/my tool/bin"));
        assert_eq!(offset, 0x41234);
    }

    #[test]
    fn non_executable_and_anonymous_mappings_do_not_count() {
        assert_eq!(file_offset(MAPS, 0x55d0_c8a0_0010), None);
        assert_eq!(file_offset(MAPS, 0x7ffd_1a7f_0010), None);
        assert_eq!(file_offset(MAPS, 0x10), None);
    }

    #[test]
    fn the_target_is_found_in_this_process() {
        let (path, offset) = target_location().unwrap();
        assert!(path.is_file(), "{}", path.display());
        assert!(offset > 0);
    }
}
