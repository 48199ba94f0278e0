//! The fd watch: which (process, fd) pairs are open on a device file, found by scanning
//! `/proc/PID/fd`, and kept in the kernel's `watched_fds` table so that the BPF side
//! looks at their ioctls only.
//!
//! The scan runs at start and once per interval, so a process that opens a device later
//! is watched from the next interval on; an fd closed and reused for another file stays
//! watched until then, which is why a report checks the fd's target again before it goes
//! out.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use coolbpf_core::{MapView, Result};
use libbpf_rs::MapCore;

/// One open fd on a watched device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceFd {
    /// Process id (tgid).
    pub pid: u32,
    /// The fd.
    pub fd: u32,
    /// The file it points at (`/dev/nvidia0`).
    pub path: String,
}

/// Whether `target` (an fd's link) is one of the watched devices.
pub fn is_device(target: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| target.starts_with(p.as_str()))
}

/// The device fds of one process.
pub fn scan_process(proc_root: &Path, pid: u32, prefixes: &[String], out: &mut Vec<DeviceFd>) {
    // A process that exits, or whose fds root may not read, simply has none.
    let Ok(dir) = std::fs::read_dir(proc_root.join(format!("{pid}/fd"))) else {
        return;
    };
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(path) = target.to_str() else {
            continue;
        };
        if is_device(path, prefixes) {
            out.push(DeviceFd {
                pid,
                fd,
                path: path.to_owned(),
            });
        }
    }
}

/// The device fds of `pid`, or of every process.
pub fn scan(proc_root: &Path, pid: Option<u32>, prefixes: &[String]) -> Vec<DeviceFd> {
    let mut found = Vec::new();
    if let Some(pid) = pid {
        scan_process(proc_root, pid, prefixes, &mut found);
    } else if let Ok(dir) = std::fs::read_dir(proc_root) {
        for entry in dir.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                scan_process(proc_root, pid, prefixes, &mut found);
            }
        }
    }
    found.sort();
    found
}

/// The fd path of `pid`'s `fd` now, when it is still a watched device.
pub fn current_device(proc_root: &Path, pid: u32, fd: u32, prefixes: &[String]) -> Option<String> {
    let target = std::fs::read_link(proc_root.join(format!("{pid}/fd/{fd}"))).ok()?;
    let path = target.to_str()?;
    is_device(path, prefixes).then(|| path.to_owned())
}

/// What one sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Pairs added to the kernel's table.
    pub added: usize,
    /// Pairs removed (closed, or their process gone).
    pub removed: usize,
    /// Pairs that did not fit in the table: their ioctls are not seen.
    pub not_watched: usize,
}

/// The kernel's `watched_fds` table and the device ids its values name.
pub struct Watch {
    map: MapView,
    /// Device paths by id (the id is the index).
    devices: Vec<String>,
    ids: HashMap<String, u32>,
    /// What the kernel table holds now: (pid, fd) -> device id.
    watched: HashMap<(u32, u32), u32>,
}

fn fd_key(pid: u32, fd: u32) -> [u8; 8] {
    let mut key = [0u8; 8];
    key[..4].copy_from_slice(&pid.to_ne_bytes());
    key[4..].copy_from_slice(&fd.to_ne_bytes());
    key
}

impl Watch {
    /// A watch over the (empty) table `map`.
    pub fn new(map: MapView) -> Self {
        Self {
            map,
            devices: Vec::new(),
            ids: HashMap::new(),
            watched: HashMap::new(),
        }
    }

    /// The path of device id `id`.
    pub fn device(&self, id: u32) -> &str {
        self.devices.get(id as usize).map_or("?", String::as_str)
    }

    /// Every device path seen so far, by id.
    pub fn devices(&self) -> &[String] {
        &self.devices
    }

    /// How many (process, fd) pairs are watched.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Whether process `pid` has a device open.
    pub fn watches(&self, pid: u32) -> bool {
        self.watched.keys().any(|(p, _)| *p == pid)
    }

    /// The processes with a device open.
    pub fn processes(&self) -> BTreeSet<u32> {
        self.watched.keys().map(|(pid, _)| *pid).collect()
    }

    fn intern(&mut self, path: &str) -> u32 {
        if let Some(id) = self.ids.get(path) {
            return *id;
        }
        let id = self.devices.len() as u32;
        self.devices.push(path.to_owned());
        self.ids.insert(path.to_owned(), id);
        id
    }

    /// Makes the kernel's table hold exactly `found`.
    pub fn sync(&mut self, found: &[DeviceFd]) -> Result<SyncStats> {
        let mut stats = SyncStats::default();
        let mut wanted: HashMap<(u32, u32), u32> = HashMap::with_capacity(found.len());
        for device in found {
            let id = self.intern(&device.path);
            wanted.insert((device.pid, device.fd), id);
        }
        let gone: Vec<(u32, u32)> = self
            .watched
            .iter()
            .filter(|(key, id)| wanted.get(key) != Some(id))
            .map(|(key, _)| *key)
            .collect();
        for (pid, fd) in gone {
            // Already absent is as good as deleted.
            let _ = self.map.handle().delete(&fd_key(pid, fd));
            self.watched.remove(&(pid, fd));
            stats.removed += 1;
        }
        for ((pid, fd), id) in wanted {
            if self.watched.contains_key(&(pid, fd)) {
                continue;
            }
            let mut value = [0u8; 8];
            value[..4].copy_from_slice(&id.to_ne_bytes());
            // A full table refuses the update (E2BIG): counted, tried again next time.
            if self.map.update(&fd_key(pid, fd), &value).is_ok() {
                self.watched.insert((pid, fd), id);
                stats.added += 1;
            } else {
                stats.not_watched += 1;
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn scans_a_fake_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for (pid, fd, target) in [
            (10, "3", "/dev/nvidia0"),
            (10, "4", "/dev/nvidiactl"),
            (10, "5", "/tmp/x"),
            (10, "junk", "/dev/nvidia1"),
            (11, "7", "/dev/pts/2"),
            (12, "1", "socket:[123]"),
        ] {
            let dir = p.join(format!("{pid}/fd"));
            std::fs::create_dir_all(&dir).unwrap();
            symlink(target, dir.join(fd)).unwrap();
        }
        std::fs::create_dir_all(p.join("self_is_not_a_pid")).unwrap();
        std::fs::write(p.join("13"), "a file, not a process").unwrap();
        let nvidia = ["/dev/nvidia".to_owned()];
        let found = scan(p, None, &nvidia);
        let pairs: Vec<(u32, u32, &str)> = found
            .iter()
            .map(|d| (d.pid, d.fd, d.path.as_str()))
            .collect();
        assert_eq!(pairs, [(10, 3, "/dev/nvidia0"), (10, 4, "/dev/nvidiactl")]);
        let both = ["/dev/pts/".to_owned(), "/dev/nvidia0".to_owned()];
        assert_eq!(scan(p, None, &both).len(), 2);
        assert_eq!(scan(p, Some(11), &both)[0].path, "/dev/pts/2");
        assert!(scan(p, Some(99), &both).is_empty());
        assert!(scan(&p.join("nowhere"), None, &both).is_empty());
        assert_eq!(
            current_device(p, 10, 3, &nvidia).as_deref(),
            Some("/dev/nvidia0")
        );
        assert_eq!(current_device(p, 10, 5, &nvidia), None);
        assert_eq!(current_device(p, 10, 9, &nvidia), None);
    }
}
