//! Event streams against the real kernel: every event the BPF side produced is either
//! delivered or counted as lost, exactly.

use std::time::Duration;

use bytes::Bytes;
use coolbpf_core::stream::{Delivery, EventStream, Losses};
use coolbpf_core::testing::bpf_available;
use coolbpf_core::{BpfObject, ObjectBuilder};

static FLOOD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flood.bpf.o"));

/// The flood object with only `program` loaded, counting getppid calls of this process.
fn flood(program: &str, other: &str) -> BpfObject {
    let mut object = ObjectBuilder::from_bytes(FLOOD)
        .global("target_tid", &(current_tid()))
        .global("target_syscall", &(libc::SYS_getppid as u32))
        .disable_program(other)
        .load()
        .expect("load flood object");
    object.attach_auto(program).expect("attach flood program");
    object
}

/// Makes exactly `n` getppid syscalls from this thread.
fn getppid_times(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
}

fn assert_accounted(what: &str, produced: u64, delivered: u64, losses: &Losses) {
    eprintln!("{what}: produced {produced}, delivered {delivered}, losses {losses:?}");
    assert_eq!(
        losses.delivered, delivered,
        "{what}: the stream's delivered count is what the test read"
    );
    assert_eq!(
        losses.decode_errors, 0,
        "{what}: raw payloads never fail to decode"
    );
    assert_eq!(
        delivered + losses.total(),
        produced,
        "{what}: delivered + lost must equal what the BPF side produced"
    );
    assert!(
        losses.total() > 0,
        "{what}: the flood was meant to overflow and did not"
    );
}

#[test]
fn ring_buffer_flood_is_delivered_or_counted_exactly() {
    if !bpf_available("ring_buffer_flood_is_delivered_or_counted_exactly") {
        return;
    }
    const CALLS: u64 = 200_000;
    let mut object = flood("flood_ringbuf", "flood_perf");
    // A 4 KiB ring holds ~15 events of 264 bytes: a burst of syscalls must overflow it.
    let mut stream: EventStream<Bytes> =
        EventStream::ring_buffer_raw(&object, "events", Delivery::channel(1 << 20))
            .expect("stream");
    getppid_times(CALLS);
    object.detach_all();
    stream.stop().expect("stop drains cleanly");
    let receiver = stream.receiver().expect("channel delivery");
    let delivered = receiver.try_iter().count() as u64;
    let produced = object.global_u64("produced").expect("read produced");
    assert_eq!(
        produced, CALLS,
        "the program saw exactly the getppid calls this test made"
    );
    let losses = stream.losses().expect("losses");
    assert!(
        losses.kernel.ringbuf_reserve > 0,
        "tiny ring buffer must have refused reservations"
    );
    assert_eq!(
        losses.received, delivered,
        "nothing was lost between ring and channel"
    );
    assert_accounted("ringbuf", produced, delivered, &losses);
}

#[test]
fn perf_buffer_flood_into_tiny_channel_counts_overflow_exactly() {
    if !bpf_available("perf_buffer_flood_into_tiny_channel_counts_overflow_exactly") {
        return;
    }
    const CALLS: u64 = 50_000;
    let mut object = flood("flood_perf", "flood_ringbuf");
    // Nobody reads the 16-slot channel during the flood, so it overflows.
    let mut stream = EventStream::perf_buffer_raw(&object, "perf_events", Delivery::channel(16))
        .expect("stream");
    getppid_times(CALLS);
    object.detach_all();
    stream.stop().expect("stop drains cleanly");
    let delivered = stream.receiver().expect("channel").try_iter().count() as u64;
    let produced = object.global_u64("produced").expect("read produced");
    assert_eq!(produced, CALLS);
    let losses = stream.losses().expect("losses");
    assert_eq!(delivered, 16, "the channel holds exactly its capacity");
    assert!(losses.channel_overflow > 0);
    assert_accounted("perf", produced, delivered, &losses);
}

#[test]
fn callback_delivery_sees_every_event_of_a_slow_trickle() {
    if !bpf_available("callback_delivery_sees_every_event_of_a_slow_trickle") {
        return;
    }
    let mut object = flood("flood_ringbuf", "flood_perf");
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut stream = EventStream::ring_buffer(
        &object,
        "events",
        |payload: &[u8]| {
            let seq: [u8; 8] = payload[..8]
                .try_into()
                .map_err(|_| coolbpf_core::Error::Decode("short".into()))?;
            Ok(u64::from_ne_bytes(seq))
        },
        Delivery::callback(move |seq: u64| tx.send(seq).expect("test receiver alive")),
    )
    .expect("stream");
    // Ten calls, each waited for: nothing can overflow, so every sequence number arrives.
    for expected in 0..10u64 {
        getppid_times(1);
        let seq = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("event within 5 s");
        assert_eq!(seq, expected, "events arrive in order, one per syscall");
    }
    object.detach_all();
    stream.stop().expect("stop");
    let losses = stream.losses().expect("losses");
    assert_eq!((losses.delivered, losses.total()), (10, 0));
}

#[test]
fn a_panicking_callback_stops_the_stream_and_is_reported() {
    if !bpf_available("a_panicking_callback_stops_the_stream_and_is_reported") {
        return;
    }
    let object = flood("flood_ringbuf", "flood_perf");
    let mut stream = EventStream::ring_buffer_raw(
        &object,
        "events",
        Delivery::callback(|_event| panic!("callback bug")),
    )
    .expect("stream");
    getppid_times(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stream.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !stream.is_running(),
        "the consumer thread ends after the panic"
    );
    let err = stream.stop().expect_err("the panic is reported");
    assert!(err.to_string().contains("callback bug"), "{err}");
}

#[test]
fn wrong_map_kind_is_a_clear_error() {
    if !bpf_available("wrong_map_kind_is_a_clear_error") {
        return;
    }
    let object = flood("flood_ringbuf", "flood_perf");
    let err = EventStream::perf_buffer_raw(&object, "events", Delivery::channel(1))
        .err()
        .expect("error");
    assert!(err.to_string().contains("not a perf event array"), "{err}");
    let err = EventStream::ring_buffer_raw(&object, "no_such_map", Delivery::channel(1))
        .err()
        .expect("error");
    assert!(
        err.to_string().contains("no_such_map") && err.to_string().contains("events"),
        "{err}"
    );
}

/// This thread's id.
fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    (unsafe { libc::gettid() }) as u32
}
