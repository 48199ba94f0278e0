//! Argument checking and the records path, through the exported functions.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;

use super::*;

fn last_message() -> String {
    // SAFETY: the last error message is a live C string of this thread.
    unsafe { CStr::from_ptr(coolbpf_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn open(name: &CStr, options: &[coolbpf_option]) -> (i32, *mut coolbpf_probe) {
    let mut probe = ptr::null_mut();
    // SAFETY: valid strings and arrays, a writable out-pointer.
    let rc = unsafe {
        coolbpf_probe_open(
            name.as_ptr(),
            options.as_ptr(),
            options.len(),
            0,
            &raw mut probe,
        )
    };
    (rc, probe)
}

#[test]
fn nulls_are_invalid_arguments() {
    let mut probe = ptr::null_mut();
    // SAFETY: NULLs are what is tested; out-pointers are valid.
    unsafe {
        assert_eq!(
            coolbpf_probe_open(ptr::null(), ptr::null(), 0, 0, &raw mut probe),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert!(
            last_message().contains("name is NULL"),
            "{}",
            last_message()
        );
        assert_eq!(coolbpf_last_error_code(), COOLBPF_ERR_INVALID_ARGUMENT);
        assert_eq!(
            coolbpf_probe_open(c"syscount".as_ptr(), ptr::null(), 0, 0, ptr::null_mut()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            coolbpf_probe_open(c"syscount".as_ptr(), ptr::null(), 2, 0, &raw mut probe),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert!(probe.is_null());
        assert_eq!(
            coolbpf_probe_start(ptr::null_mut()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            coolbpf_probe_stop(ptr::null_mut()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            coolbpf_probe_poll(ptr::null_mut(), 0, None, ptr::null_mut()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        coolbpf_probe_close(ptr::null_mut());
        assert_eq!(coolbpf_record_kind(ptr::null()), COOLBPF_RECORD_INVALID);
        assert!(coolbpf_record_json(ptr::null()).is_null());
        coolbpf_record_free(ptr::null_mut());
        let mut object = ptr::null_mut();
        assert_eq!(
            coolbpf_object_open(ptr::null(), &raw mut object),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            coolbpf_object_attach(ptr::null_mut(), c"p".as_ptr(), ptr::null()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            coolbpf_ringbuf_open(
                ptr::null(),
                c"events".as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut()
            ),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        let mut symbols = ptr::null_mut();
        assert_eq!(
            coolbpf_symbolize_kernel(ptr::null(), ptr::null(), 0, &raw mut symbols),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        coolbpf_bytes_free(ptr::null_mut());
    }
}

#[test]
fn bad_utf8_is_an_invalid_argument() {
    let name = c"sys\xffcount";
    let (rc, probe) = open(name, &[]);
    assert_eq!(rc, -COOLBPF_ERR_INVALID_ARGUMENT);
    assert!(probe.is_null());
    assert!(last_message().contains("UTF-8"), "{}", last_message());
}

#[test]
fn unknown_probe_is_not_found_and_lists_the_known_ones() {
    let (rc, probe) = open(c"no_such_probe", &[]);
    assert_eq!(rc, -COOLBPF_ERR_NOT_FOUND);
    assert!(probe.is_null());
    let message = last_message();
    assert!(
        message.contains("no_such_probe") && message.contains("syscount"),
        "{message}"
    );
    // SAFETY: a static string comes back.
    let name = unsafe { CStr::from_ptr(coolbpf_error_name(rc)) };
    assert_eq!(name, c"not_found");
}

#[test]
fn bad_options_are_invalid_arguments() {
    let cases: &[(&CStr, &CStr, &str)] = &[
        (c"no_such_option", c"1", "no_such_option"),
        (c"pid", c"abc", "pid"),
        (c"pid", c"0", "pid"),
        (c"", c"1", "empty key"),
    ];
    for (key, value, mentions) in cases {
        let option = coolbpf_option {
            key: key.as_ptr(),
            value: value.as_ptr(),
        };
        let (rc, probe) = open(c"syscount", &[option]);
        assert_eq!(rc, -COOLBPF_ERR_INVALID_ARGUMENT, "{key:?}={value:?}");
        assert!(probe.is_null());
        assert!(last_message().contains(mentions), "{}", last_message());
    }
    let null_value = coolbpf_option {
        key: c"entries".as_ptr(),
        value: ptr::null(),
    };
    assert_eq!(
        open(c"syscount", &[null_value]).0,
        -COOLBPF_ERR_INVALID_ARGUMENT
    );
    assert!(
        last_message().contains("options[0].value"),
        "{}",
        last_message()
    );
    let missing_pid = coolbpf_option {
        key: c"pid".as_ptr(),
        value: c"4294967294".as_ptr(),
    };
    assert_eq!(open(c"syscount", &[missing_pid]).0, -COOLBPF_ERR_NOT_FOUND);
}

#[test]
fn a_handle_of_another_type_is_refused() {
    let mut symbolizer = ptr::null_mut();
    // SAFETY: a writable out-pointer; then a symbolizer passed as a probe, which the
    // magic number catches (both are heap blocks larger than the magic).
    unsafe {
        assert_eq!(coolbpf_symbolizer_new(&raw mut symbolizer), 0);
        assert_eq!(
            coolbpf_probe_start(symbolizer.cast()),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert!(last_message().contains("not a live probe handle"));
        coolbpf_symbolizer_free(symbolizer);
    }
}

#[test]
fn error_codes_are_the_core_codes() {
    use coolbpf_core::ErrorKind;
    assert_eq!(COOLBPF_ERR_NOT_FOUND, ErrorKind::NotFound.code());
    assert_eq!(COOLBPF_ERR_CLOSED, ErrorKind::Closed.code());
    // SAFETY: static strings come back.
    unsafe {
        assert_eq!(CStr::from_ptr(coolbpf_error_name(0)), c"ok");
        assert_eq!(CStr::from_ptr(coolbpf_error_name(i32::MIN)), c"unknown");
        assert_eq!(
            CStr::from_ptr(coolbpf_error_name(-COOLBPF_ERR_PERMISSION)),
            c"permission"
        );
    }
}

#[test]
fn registry_names_are_listed() {
    let names: Vec<String> = (0..coolbpf_probe_count())
        .map(|i| {
            // SAFETY: in range, a static string.
            unsafe { CStr::from_ptr(coolbpf_probe_name(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(names.iter().any(|n| n == "runqlat"), "{names:?}");
    assert!(coolbpf_probe_name(names.len()).is_null());
}

#[test]
fn record_accessors_read_the_data_model() {
    use coolbpf_core::{labels, Histogram, Layout, Metric, Record};
    let histogram = Histogram::from_slots(Layout::Log2, &[0, 12, 40], 83, "us");
    let record = handle::into_raw(coolbpf_record::new(Record::from(Metric::histogram(
        "runqlat",
        "runq_latency",
        labels! { "cpu" => 3, "comm" => "sh" },
        histogram,
    ))));
    // SAFETY: a live record made above, freed once at the end; out-pointers are locals.
    unsafe {
        assert_eq!(coolbpf_record_kind(record), COOLBPF_RECORD_HISTOGRAM);
        assert_eq!(CStr::from_ptr(coolbpf_record_name(record)), c"runq_latency");
        assert_eq!(CStr::from_ptr(coolbpf_record_probe(record)), c"runqlat");
        assert_eq!(coolbpf_record_label_count(record), 2);
        let mut label = std::mem::zeroed::<coolbpf_label>();
        assert_eq!(coolbpf_record_label(record, 0, &raw mut label), 0);
        assert_eq!(CStr::from_ptr(label.key), c"comm");
        assert_eq!(CStr::from_ptr(label.string_value), c"sh");
        assert_eq!(coolbpf_record_label(record, 1, &raw mut label), 0);
        assert!(label.string_value.is_null());
        assert_eq!(label.int_value, 3);
        assert_eq!(
            coolbpf_record_label(record, 2, &raw mut label),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        let mut h = std::mem::zeroed::<coolbpf_histogram>();
        assert_eq!(coolbpf_record_histogram(record, &raw mut h), 0);
        assert_eq!((h.count, h.sum, h.bucket_count), (52, 83, 2));
        assert_eq!(CStr::from_ptr(h.unit), c"us");
        let (mut le, mut count) = (0, 0);
        assert_eq!(
            coolbpf_record_bucket(record, 1, &raw mut le, &raw mut count),
            0
        );
        assert_eq!((le, count), (3, 40));
        let mut p = 0;
        assert_eq!(coolbpf_record_percentile(record, 0.5, &raw mut p), 0);
        assert_eq!(p, 3);
        assert_eq!(
            coolbpf_record_percentile(record, 1.5, &raw mut p),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        let mut value = 0u64;
        assert_eq!(
            coolbpf_record_counter(record, &raw mut value),
            -COOLBPF_ERR_INVALID_ARGUMENT
        );
        assert!(last_message().contains("histogram"), "{}", last_message());
        let json = CStr::from_ptr(coolbpf_record_json(record))
            .to_str()
            .unwrap();
        assert!(
            json.starts_with(r#"{"probe":"runqlat","kind":"histogram""#),
            "{json}"
        );
        coolbpf_record_free(record);
    }
}

/// What a poll callback collects.
#[derive(Default)]
struct Seen {
    histograms: u64,
    values: u64,
    json_ok: bool,
}

unsafe extern "C" fn collect(record: *const coolbpf_record, ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is the `Seen` the test passed; the record is lent for this call.
    unsafe {
        let seen = &mut *ctx.cast::<Seen>();
        if coolbpf_record_kind(record) == COOLBPF_RECORD_HISTOGRAM {
            let mut h = std::mem::zeroed::<coolbpf_histogram>();
            if coolbpf_record_histogram(record, &raw mut h) == 0 {
                seen.histograms += 1;
                seen.values += h.count;
            }
        }
        seen.json_ok = !coolbpf_record_json(record).is_null();
        // A lent record cannot be freed: refused, not a crash.
        coolbpf_record_free(record.cast_mut());
    }
    0
}

#[test]
fn runqlat_histograms_arrive_through_poll() {
    if !coolbpf_core::testing::bpf_available("runqlat_histograms_arrive_through_poll") {
        return;
    }
    let (rc, probe) = open(c"runqlat", &[]);
    assert_eq!(rc, 0, "{}", last_message());
    // SAFETY: a live probe, closed once at the end; `seen` outlives the polls.
    unsafe {
        assert_eq!(coolbpf_probe_start(probe), 0, "{}", last_message());
        assert_eq!(coolbpf_probe_is_running(probe), 1);
        // Context switches to measure: sleeps wake up through the run queue.
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(coolbpf_probe_stop(probe), 0, "{}", last_message());
        assert_eq!(coolbpf_probe_is_running(probe), 0);
        let mut seen = Seen::default();
        let ctx = (&raw mut seen).cast::<c_void>();
        let mut total = 0;
        loop {
            let n = coolbpf_probe_poll(probe, 0, Some(collect), ctx);
            assert!(n >= 0, "{}", last_message());
            if n == 0 {
                break;
            }
            total += n;
        }
        assert!(total > 0);
        assert!(
            seen.histograms >= 1 && seen.values >= 50,
            "{} values",
            seen.values
        );
        assert!(seen.json_ok);
        let mut dropped = u64::MAX;
        assert_eq!(coolbpf_probe_records_dropped(probe, &raw mut dropped), 0);
        assert_eq!(dropped, 0);
        coolbpf_probe_close(probe);
    }
}
