//! What `/proc` says about a thread: its state, its name, where it sleeps in the kernel.
//!
//! Every reader returns `None` (or an error text) for a thread that is gone or a file that
//! says something unexpected: threads exit between two reads, and a report goes out with
//! what could be read.

use std::path::{Path, PathBuf};

/// A thread's `stat` fields that the probe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    /// Its name (`comm`).
    pub comm: String,
    /// Its state letter: `R`, `S`, `D` (uninterruptible), `T`, `Z`, ...
    pub state: char,
}

/// Parses `/proc/PID/task/TID/stat`: `TID (COMM) STATE ...`. The name may hold spaces
/// and parentheses, so it ends at the *last* `)`.
pub fn parse_stat(text: &str) -> Option<TaskStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let state = text[close + 1..].trim_start().chars().next()?;
    if !state.is_ascii_alphabetic() {
        return None;
    }
    Some(TaskStat {
        comm: text[open + 1..close].to_owned(),
        state,
    })
}

/// One line of `/proc/PID/stack` (`[<0>] tty_ioctl+0x12d/0xa40 [mod]`) as a frame name:
/// the function, and its module when it is not in the kernel image (`nv_ioctl [nvidia]`).
/// Offsets are left out: they say little without the same build.
pub fn parse_stack_line(line: &str) -> Option<String> {
    let rest = line.trim();
    let rest = match rest.strip_prefix("[<") {
        Some(after) => after.split_once(">]")?.1.trim_start(),
        None => rest,
    };
    let mut parts = rest.split_whitespace();
    let symbol = parts.next()?;
    let function = symbol.split_once('+').map_or(symbol, |(f, _)| f);
    if function.is_empty() {
        return None;
    }
    Some(match parts.next().filter(|m| m.starts_with('[')) {
        Some(module) => format!("{function} {module}"),
        None => function.to_owned(),
    })
}

/// A whole `/proc/PID/stack`, root first (the file lists the innermost frame first).
pub fn parse_stack(text: &str) -> Vec<String> {
    let mut frames: Vec<String> = text.lines().filter_map(parse_stack_line).collect();
    frames.reverse();
    frames
}

fn task_dir(proc_root: &Path, pid: u32, tid: u32) -> PathBuf {
    proc_root.join(format!("{pid}/task/{tid}"))
}

/// The kernel stack where thread `tid` of `pid` is now, root first, or why it could not
/// be read. Reading it needs root (CAP_SYS_ADMIN); a thread running on a CPU shows an
/// empty stack.
pub fn kernel_stack(proc_root: &Path, pid: u32, tid: u32) -> Result<Vec<String>, String> {
    let path = task_dir(proc_root, pid, tid).join("stack");
    match std::fs::read(&path) {
        Ok(bytes) => {
            let frames = parse_stack(&String::from_utf8_lossy(&bytes));
            if frames.is_empty() {
                Err(format!(
                    "{} is empty (the thread was running)",
                    path.display()
                ))
            } else {
                Ok(frames)
            }
        }
        Err(err) => Err(format!(
            "cannot read {} ({err}; it needs root)",
            path.display()
        )),
    }
}

/// Thread `tid` of `pid`'s state and name.
pub fn task_stat(proc_root: &Path, pid: u32, tid: u32) -> Option<TaskStat> {
    let bytes = std::fs::read(task_dir(proc_root, pid, tid).join("stat")).ok()?;
    parse_stat(&String::from_utf8_lossy(&bytes))
}

/// The threads of `pid` (empty when it is gone).
pub fn threads(proc_root: &Path, pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc_root.join(format!("{pid}/task"))) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether thread `tid` of `pid` still exists.
pub fn thread_alive(proc_root: &Path, pid: u32, tid: u32) -> bool {
    task_dir(proc_root, pid, tid).exists()
}

/// The process a thread belongs to (`Tgid:` of `/proc/TID/status`).
pub fn tgid_of(proc_root: &Path, tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(proc_root.join(format!("{tid}/status"))).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let s = parse_stat("42 (python3) S 1 42 42 0 -1").unwrap();
        assert_eq!((s.comm.as_str(), s.state), ("python3", 'S'));
        let s = parse_stat("43 (a) (b c)) D 1 2").unwrap();
        assert_eq!((s.comm.as_str(), s.state), ("a) (b c)", 'D'));
        let s = parse_stat("44 () R 1").unwrap();
        assert_eq!((s.comm.as_str(), s.state), ("", 'R'));
        for bad in [
            "", "44", "44 (x", "44 x) S", ")( S", "44 (x)", "44 (x) ", "44 (x) 7",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stacks_read_root_first_without_offsets() {
        let text = "[<0>] handle_userfault+0x3c6/0x8a0\n\
                    [<0>] nv_ioctl+0x10/0x20 [nvidia]\n\
                    [<0>] __x64_sys_ioctl+0x9b/0x100\n\
                    [<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n";
        assert_eq!(
            parse_stack(text),
            [
                "entry_SYSCALL_64_after_hwframe",
                "__x64_sys_ioctl",
                "nv_ioctl [nvidia]",
                "handle_userfault"
            ]
        );
        assert!(parse_stack("").is_empty());
        assert!(parse_stack("[<0\n[<0>]\n\n[<0>] +0x1/0x2\n").is_empty());
        assert_eq!(
            parse_stack_line("  bare_symbol  ").as_deref(),
            Some("bare_symbol")
        );
    }

    #[test]
    fn a_fake_proc_tree_is_read_and_gaps_are_none() {
        let root = tempfile::tempdir().unwrap();
        let task = root.path().join("10/task/11");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("stat"), "11 (wo rker)) D 1 2 3").unwrap();
        std::fs::write(task.join("stack"), "[<0>] schedule+0x1/0x2\n").unwrap();
        std::fs::create_dir_all(root.path().join("11")).unwrap();
        std::fs::write(root.path().join("11/status"), "Name:\tx\nTgid:\t10\n").unwrap();
        let stat = task_stat(root.path(), 10, 11).unwrap();
        assert_eq!((stat.comm.as_str(), stat.state), ("wo rker)", 'D'));
        assert_eq!(kernel_stack(root.path(), 10, 11).unwrap(), ["schedule"]);
        assert_eq!(threads(root.path(), 10), [11]);
        assert!(thread_alive(root.path(), 10, 11));
        assert_eq!(tgid_of(root.path(), 11), Some(10));
        assert_eq!(task_stat(root.path(), 10, 12), None);
        assert!(kernel_stack(root.path(), 10, 12)
            .unwrap_err()
            .contains("needs root"));
        assert!(threads(root.path(), 99).is_empty());
        assert_eq!(tgid_of(root.path(), 99), None);
        std::fs::write(task.join("stack"), "").unwrap();
        assert!(kernel_stack(root.path(), 10, 11)
            .unwrap_err()
            .contains("empty"));
    }
}
