"""The API's shape and its errors; nothing here loads BPF."""

import pytest

import coolbpf
from coolbpf import errors


def test_catalogue_lists_probes_with_options():
    probes = {p["name"]: p for p in coolbpf.probes()}
    for name in ("syscount", "execsnoop", "runqlat", "profile", "offcpu"):
        assert name in probes
    runqlat = probes["runqlat"]
    assert runqlat["description"]
    assert {o["name"] for o in runqlat["options"]} >= {"per"}
    assert "available" in runqlat and "reason" in runqlat


def test_gpu_probes_are_in_the_catalogue_and_say_what_they_lack():
    probes = {p["name"]: p for p in coolbpf.probes()}
    for name in ("cuda", "nccl", "gpuhang", "xid", "nvml"):
        assert probes[name]["category"] == "gpu"
    # No driver here: NVML cannot load, and the reason says so instead of failing later.
    nvml = probes["nvml"]
    if not nvml["available"]:
        assert "NVML" in nvml["reason"]
    cuda = probes["cuda"]
    assert {o["name"] for o in cuda["options"]} >= {"lib", "events", "buffer_kb"}


def test_unknown_probe_is_lookup_error_naming_known_probes():
    with pytest.raises(LookupError) as info:
        coolbpf.Probe("no_such_probe")
    err = info.value
    assert isinstance(err, coolbpf.NotFoundError) and isinstance(err, coolbpf.Error)
    assert err.code == 4 and err.kind == "not_found"
    assert "syscount" in str(err)


def test_bad_option_is_value_error():
    with pytest.raises(ValueError) as info:
        coolbpf.Probe("runqlat", no_such_option=1)
    assert isinstance(info.value, coolbpf.InvalidArgumentError)
    assert info.value.code == 3
    assert "no_such_option" in str(info.value)
    with pytest.raises(ValueError):
        coolbpf.Probe("runqlat", interval=-1)
    with pytest.raises(ValueError):
        coolbpf.Probe("runqlat", per=object())


def test_missing_process_is_not_found():
    with pytest.raises(coolbpf.NotFoundError):
        coolbpf.Probe("syscount", pid=2**31 - 2)


def test_closed_probe_raises_closed_error():
    probe = coolbpf.Probe("runqlat")
    probe.close()
    with pytest.raises(coolbpf.ClosedError):
        probe.start()


def test_exception_hierarchy():
    assert issubclass(errors.PermissionDeniedError, PermissionError)
    assert issubclass(errors.IoError, OSError)
    assert issubclass(errors.BpfError, OSError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.InvalidArgumentError, ValueError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), coolbpf.Error)


def test_object_errors():
    with pytest.raises(coolbpf.NotFoundError) as info:
        coolbpf.Object("/nonexistent/x.bpf.o")
    assert "/nonexistent/x.bpf.o" in str(info.value)
    with pytest.raises(coolbpf.Error):
        coolbpf.Object(data=b"not an ELF file")
    with pytest.raises(ValueError):
        coolbpf.Object()


def test_compile_error_carries_clang_output(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(coolbpf.CompileError) as info:
        coolbpf.Object.compile("this is not C;")
    assert "error" in str(info.value)


def test_missing_clang_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CLANG", "/nonexistent/clang")
    with pytest.raises(coolbpf.UnsupportedError) as info:
        coolbpf.Object.compile("int x;")
    assert "apt-get install clang" in str(info.value)


def test_compile_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    source = '#include "coolbpf/coolbpf.bpf.h"\nchar LICENSE[] SEC("license") = "GPL";\n'
    first = coolbpf.Object.compile(source)
    assert first.startswith(str(tmp_path / "coolbpf"))
    mtime = (tmp_path / first).stat().st_mtime_ns
    assert coolbpf.Object.compile(source) == first
    assert (tmp_path / first).stat().st_mtime_ns == mtime
    assert coolbpf.Object.compile(source + "\n") != first


def test_symbolizer_arguments():
    symbolizer = coolbpf.Symbolizer()
    with pytest.raises(ValueError):
        symbolizer.symbolize([1])
    with pytest.raises(ValueError):
        symbolizer.symbolize([1], pid=1, kernel=True)
    with pytest.raises(coolbpf.NotFoundError):
        symbolizer.symbolize([1], pid=2**31 - 2)
    with pytest.raises(coolbpf.Error):
        symbolizer.symbolize([1], elf="/nonexistent/elf")


def test_profiler_arguments():
    with pytest.raises(ValueError):
        coolbpf.Profiler(freq=0)
    with pytest.raises(ValueError):
        coolbpf.Profiler(freq=1000, off_cpu=True)
    with pytest.raises(ValueError):
        coolbpf.Profiler().profile()


def test_ctrl_c_interrupts_a_wait():
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, coolbpf\n"
        "probe = coolbpf.Probe('runqlat', interval=1000)\n"
        "print('waiting', flush=True)\n"
        "try:\n"
        "    probe.poll(timeout=None)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "waiting\n"
    time.sleep(0.3)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    assert child.stdout.readline() == "interrupted\n"
    assert child.wait(timeout=5) == 0
    assert time.monotonic() - started < 2
