//! One stack out of two: the native user stack and the Python frames its interpreter
//! runs. Each native `_PyEval_EvalFrameDefault` frame is one call of the evaluation loop,
//! and runs a run of Python frames that ends (outermost) at an `entry` frame; that run
//! takes the native frame's place, so the stack reads
//! `main;Py_RunMain;...;<module>;work;fib;fib` instead of
//! `main;...;_PyEval_EvalFrameDefault;_PyEval_EvalFrameDefault`, with C frames (a C
//! extension, `sorted`) staying between the runs where they were called.

use std::sync::Arc;

use crate::profile::{Location, PythonFrame};

/// The function of CPython's evaluation loop (3.10 to 3.13).
pub const EVAL_FUNCTION: &str = "_PyEval_EvalFrameDefault";

/// Splits frames (innermost first) into runs, each ending at an entry frame; frames
/// after the last entry frame form a last run.
fn runs<'a>(python: &[PythonFrame], locations: &'a [Arc<Location>]) -> Vec<&'a [Arc<Location>]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for (i, frame) in python.iter().enumerate().take(locations.len()) {
        if frame.entry {
            runs.push(&locations[start..=i]);
            start = i + 1;
        }
    }
    if start < locations.len().min(python.len()) {
        runs.push(&locations[start..python.len().min(locations.len())]);
    }
    runs
}

/// Where the evaluation loop's frame is in a location's inline chain, if it is there.
fn eval_index(location: &Location) -> Option<usize> {
    location
        .frames
        .iter()
        .position(|f| f.function == EVAL_FUNCTION)
}

/// The stack, innermost first, of `native` (innermost first) with the Python frames
/// `python` (innermost first, named by `locations`, one each) put where the interpreter
/// runs them: the n-th evaluation loop frame from the inside is replaced by the n-th run.
///
/// Never drops a Python frame: when the native stack has fewer evaluation frames than
/// there are runs (it was truncated, or could not be unwound through the interpreter),
/// the outermost evaluation frame takes all remaining runs; with none at all, the Python
/// frames go below (root side of) the native frames, which were called from them.
/// Frames inlined into the evaluation loop (inner in the same location) stay above its
/// run; functions it was inlined into stay below.
pub fn interleave(
    native: &[Arc<Location>],
    python: &[PythonFrame],
    locations: &[Arc<Location>],
) -> Vec<Arc<Location>> {
    let runs = runs(python, locations);
    let evals: Vec<usize> = native
        .iter()
        .enumerate()
        .filter(|(_, loc)| eval_index(loc).is_some())
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::with_capacity(native.len() + locations.len());
    if evals.is_empty() {
        out.extend(native.iter().cloned());
        out.extend(runs.iter().flat_map(|run| run.iter().cloned()));
        return out;
    }
    let mut next_run = 0;
    for (i, location) in native.iter().enumerate() {
        let Some(nth) = evals.iter().position(|&e| e == i) else {
            out.push(location.clone());
            continue;
        };
        if next_run >= runs.len() {
            // More evaluation loop calls than runs: this one ran no frame we saw.
            out.push(location.clone());
            continue;
        }
        let last = nth + 1 == evals.len();
        let taken = if last { runs.len() - next_run } else { 1 };
        let index = eval_index(location).unwrap_or(0);
        let (inner, rest) = location.frames.split_at(index);
        if !inner.is_empty() {
            out.push(Arc::new(Location::new(location.address, inner.to_vec())));
        }
        for run in &runs[next_run..next_run + taken] {
            out.extend(run.iter().cloned());
        }
        next_run += taken;
        let outer = &rest[1..];
        if !outer.is_empty() {
            out.push(Arc::new(Location::new(location.address, outer.to_vec())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Frame;

    fn frame(name: &str) -> Frame {
        Frame {
            function: name.into(),
            raw_name: name.into(),
            offset: 0,
            file: None,
            line: None,
            column: None,
            inlined: false,
        }
    }

    fn loc(names: &[&str]) -> Arc<Location> {
        Arc::new(Location::new(0, names.iter().map(|n| frame(n)).collect()))
    }

    fn py(names: &[(&str, bool)]) -> (Vec<PythonFrame>, Vec<Arc<Location>>) {
        let frames = names
            .iter()
            .enumerate()
            .map(|(i, &(_, entry))| PythonFrame {
                code: i as u64,
                offset: 0,
                entry,
            })
            .collect();
        (frames, names.iter().map(|(n, _)| loc(&[n])).collect())
    }

    fn names(stack: &[Arc<Location>]) -> Vec<String> {
        stack
            .iter()
            .flat_map(|l| l.frames.iter().map(|f| f.function.clone()))
            .collect()
    }

    #[test]
    fn runs_replace_evaluation_frames_in_order() {
        // fib <- fib <- key (entry, called by sorted) <- work <- <module> (entry).
        let (frames, locations) = py(&[
            ("fib", false),
            ("fib", false),
            ("key", true),
            ("work", false),
            ("<module>", true),
        ]);
        let native = [
            loc(&[EVAL_FUNCTION]),
            loc(&["list_sort_impl"]),
            loc(&[EVAL_FUNCTION]),
            loc(&["main"]),
        ];
        let stack = interleave(&native, &frames, &locations);
        assert_eq!(
            names(&stack),
            [
                "fib",
                "fib",
                "key",
                "list_sort_impl",
                "work",
                "<module>",
                "main"
            ]
        );
    }

    #[test]
    fn inline_chains_are_split_around_the_run() {
        let (frames, locations) = py(&[("f", true)]);
        let native = [loc(&["inlined_helper", EVAL_FUNCTION, "outer"])];
        let stack = interleave(&native, &frames, &locations);
        assert_eq!(names(&stack), ["inlined_helper", "f", "outer"]);
    }

    #[test]
    fn leftover_runs_go_to_the_last_evaluation_frame() {
        let (frames, locations) = py(&[("a", true), ("b", true), ("c", true)]);
        let native = [loc(&[EVAL_FUNCTION]), loc(&["[unknown]"])];
        let stack = interleave(&native, &frames, &locations);
        assert_eq!(names(&stack), ["a", "b", "c", "[unknown]"]);
    }

    #[test]
    fn without_evaluation_frames_python_goes_to_the_root_side() {
        let (frames, locations) = py(&[("a", false), ("b", true)]);
        let native = [loc(&["memcpy"])];
        let stack = interleave(&native, &frames, &locations);
        assert_eq!(names(&stack), ["memcpy", "a", "b"]);
        assert_eq!(names(&interleave(&[], &frames, &locations)), ["a", "b"]);
    }

    #[test]
    fn extra_evaluation_frames_stay_native() {
        let (frames, locations) = py(&[("a", true)]);
        let native = [loc(&[EVAL_FUNCTION]), loc(&[EVAL_FUNCTION])];
        let stack = interleave(&native, &frames, &locations);
        assert_eq!(names(&stack), ["a", EVAL_FUNCTION]);
    }
}
