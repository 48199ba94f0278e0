//! The `nccl` probe's records: its metrics, one event per call, and the straggler event.

use coolbpf_core::{labels, Event, FieldValue, Metric, Record};

use super::call::NcclCall;
use super::functions::Function;
use super::state::{LastCall, NcclState, Position};
use super::straggler::Straggler;
use super::types;
use super::NAME;
use crate::calls::CallRecord;

/// The `event` field of a call event.
pub const CALL_EVENT: &str = "nccl_call";
/// The `event` field of a straggler report.
pub const STRAGGLER_EVENT: &str = "nccl_straggler";

const MS: u64 = 1_000_000;

/// The cumulative metrics of `state`.
pub fn metrics(state: &NcclState) -> Vec<Record> {
    let mut out = Vec::new();
    for (key, counts) in &state.counts {
        let labels = || {
            labels! {
                "pid" => key.rank.pid, "comm_id" => key.rank.comm.to_string(),
                "rank" => key.rank.rank, "nranks" => key.nranks, "op" => key.op,
                "redop" => key.redop.as_str(), "dtype" => key.dtype.as_str(),
            }
        };
        out.push(Metric::counter(NAME, "nccl_collectives_total", labels(), counts.calls).into());
        out.push(Metric::counter(NAME, "nccl_bytes_total", labels(), counts.bytes).into());
    }
    for (key, rank) in &state.ranks {
        let labels = labels! {
            "pid" => key.pid, "comm_id" => key.comm.to_string(), "rank" => key.rank,
        };
        out.push(Metric::gauge(NAME, "nccl_last_seq", labels, rank.seq as f64).into());
    }
    for ((pid, function, code), count) in &state.errors {
        let labels = labels! {
            "pid" => *pid, "function" => *function, "code" => *code,
            "error" => types::result_name(*code).unwrap_or("unknown"),
        };
        out.push(Metric::counter(NAME, "nccl_call_errors_total", labels, *count).into());
    }
    out
}

/// One call as an event: who called it, how long it took, what it returned, its
/// communicator, rank and number, and what it moves.
pub fn call_event(function: &Function, record: &CallRecord, at: Option<Position>) -> Event {
    let mut event = record
        .event(NAME, function.symbol)
        .with("event", text(CALL_EVENT));
    if let Some(at) = at {
        event = event
            .with("comm_id", FieldValue::Str(at.rank.comm.to_string()))
            .with("rank", FieldValue::Int(at.rank.rank.into()))
            .with("nranks", FieldValue::Int(at.nranks.into()));
        if let Some(seq) = at.seq {
            event = event.with("seq", FieldValue::UInt(seq));
        }
    }
    if let NcclCall::Data { data, .. } = NcclCall::decode(function, record) {
        event = event
            .with("op", text(function.op))
            .with("redop", FieldValue::Str(data.redop_name()))
            .with("dtype", FieldValue::Str(data.dtype_name()))
            .with("count", FieldValue::UInt(data.count));
        if let Some(bytes) = data.bytes() {
            event = event.with("bytes", FieldValue::UInt(bytes));
        }
        if let Some(peer) = data.peer {
            event = event.with("peer", FieldValue::Int(peer.into()));
        }
    }
    event
}

/// The report of straggler `s` at `now_ns`: who, how far behind, for how long, what it
/// is doing (inside an NCCL call, or not in NCCL at all), its latest call, and `frames`:
/// the stack of the call it is in, else of its latest call, root first.
pub fn straggler_event(
    s: &Straggler,
    last_call: Option<&LastCall>,
    frames: Vec<String>,
    now_ns: u64,
) -> Event {
    let rank = &s.rank;
    let ahead = s
        .ahead
        .iter()
        .map(|(r, pid, seq)| format!("rank {r} pid {pid} seq {seq}"))
        .collect();
    let mut event = Event::new(NAME, now_ns)
        .with("event", text(STRAGGLER_EVENT))
        .with("comm_id", FieldValue::Str(s.comm.to_string()))
        .with("nranks", FieldValue::Int(s.nranks.into()))
        .with("pid", FieldValue::UInt(rank.key.pid.into()))
        .with("comm", FieldValue::Str(rank.task.clone()))
        .with("rank", FieldValue::Int(rank.key.rank.into()))
        .with("seq", FieldValue::UInt(rank.seq))
        .with("lead_seq", FieldValue::UInt(s.lead_seq))
        .with("stalled_ms", FieldValue::UInt(s.stalled_ns / MS))
        .with("ahead", FieldValue::StrList(ahead));
    event = match &rank.in_call {
        Some(call) => event
            .with("state", text("in_nccl"))
            .with("in_call", text(call.function.symbol))
            .with("tid", FieldValue::UInt(call.tid.into()))
            .with(
                "in_call_ms",
                FieldValue::UInt(now_ns.saturating_sub(call.since_ns) / MS),
            ),
        None => event.with("state", text("outside_nccl")),
    };
    if let Some(last) = last_call {
        event = event.with("last_call", text(last.function.symbol)).with(
            "last_call_ago_ms",
            FieldValue::UInt(now_ns.saturating_sub(last.entry_ns) / MS),
        );
    }
    event.with("stack", FieldValue::StrList(frames))
}

fn text(value: &str) -> FieldValue {
    FieldValue::Str(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nccl::functions::FUNCTIONS;

    #[test]
    fn unknown_numbers_reach_the_labels_as_numbers() {
        let all_reduce = &FUNCTIONS[0];
        let mut record = CallRecord {
            return_ns: Some(5),
            ..CallRecord::default()
        };
        record.args[..7].copy_from_slice(&[0, 0, 10, 77, 31, 0xc0, 0]);
        let mut state = NcclState::default();
        let at = state.add(all_reduce, &record);
        let event = call_event(all_reduce, &record, at);
        assert_eq!(event.field("dtype"), Some(&text("77")));
        assert_eq!(event.field("redop"), Some(&text("31")));
        assert_eq!(event.field("bytes"), None);
        assert_eq!(event.field("seq"), Some(&FieldValue::UInt(1)));
        let records = metrics(&state);
        let bytes = records.iter().find_map(|r| match r {
            Record::Metric(m) if m.name == "nccl_bytes_total" => Some(m),
            _ => None,
        });
        assert_eq!(
            bytes.unwrap().label("dtype"),
            Some(&coolbpf_core::LabelValue::Str("77".into()))
        );
    }
}
