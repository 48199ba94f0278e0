//! Per-thread CPU accounting from `/proc/PID/task/TID/schedstat`: time on a CPU and time
//! waiting for one, as the scheduler itself counts them (ns).

use std::collections::BTreeMap;
use std::fs;

/// One thread's scheduler counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedCounters {
    /// Time run on a CPU, ns.
    pub on_cpu_ns: u64,
    /// Time runnable and waiting for a CPU, ns.
    pub runq_ns: u64,
}

/// The counters and name of every thread of `pid` now; threads that vanish while being
/// read are left out.
pub fn snapshot(pid: u32) -> BTreeMap<u32, (String, SchedCounters)> {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = task.path();
        let (Ok(stat), Ok(comm)) = (
            fs::read_to_string(dir.join("schedstat")),
            fs::read_to_string(dir.join("comm")),
        ) else {
            continue;
        };
        if let Some(counters) = parse_schedstat(&stat) {
            threads.insert(tid, (comm.trim().to_owned(), counters));
        }
    }
    threads
}

/// `exec_ns wait_ns timeslices`.
pub fn parse_schedstat(text: &str) -> Option<SchedCounters> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    Some(SchedCounters {
        on_cpu_ns: fields.next()?.ok()?,
        runq_ns: fields.next()?.ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines_parse_and_garbage_does_not() {
        assert_eq!(
            parse_schedstat("123 45 6\n"),
            Some(SchedCounters {
                on_cpu_ns: 123,
                runq_ns: 45
            })
        );
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x y z"), None);
    }

    #[test]
    fn this_process_has_its_main_thread() {
        let me = std::process::id();
        let threads = snapshot(me);
        assert!(threads.contains_key(&me), "{threads:?}");
        assert!(snapshot(u32::MAX - 1).is_empty());
    }
}
