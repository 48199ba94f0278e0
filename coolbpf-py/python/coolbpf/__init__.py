"""coolbpf: eBPF observability from Python.

Run any probe of the catalogue and read its records as dicts::

    import coolbpf

    with coolbpf.Probe("syscount", pid=1234) as probe:
        for record in probe.records(timeout=5):
            print(record)

Profile, symbolize, or load your own BPF object::

    profile = coolbpf.Profiler(freq=99).run(5)  # or start()/stop()/profile()
    print(profile.folded())
    coolbpf.Symbolizer().symbolize([0xffffffff81000000], kernel=True)
    obj = coolbpf.Object.from_source(C_SOURCE, globals={"target_pid": 42})

Everything that waits releases the GIL and can be interrupted with Ctrl-C. Errors are
:class:`coolbpf.Error` subclasses that are also the matching builtin exceptions (see
:mod:`coolbpf.errors`). Loading BPF needs root (or CAP_BPF and CAP_PERFMON).
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Union

from . import _native, errors
from ._native import Map, Profile, RingBuffer, Symbolizer
from .errors import (
    BpfError,
    ClosedError,
    CompileError,
    DecodeError,
    Error,
    InvalidArgumentError,
    IoError,
    NotFoundError,
    PermissionDeniedError,
    PluginError,
    UnsupportedError,
)

__version__: str = _native.__version__

__all__ = [
    "features",
    "probes",
    "Probe",
    "Profiler",
    "Profile",
    "Object",
    "Map",
    "RingBuffer",
    "Symbolizer",
    *errors.__all__,
]

Record = Dict[str, Any]
GlobalValue = Union[int, bool, bytes]
PathLike = Union[str, "os.PathLike[str]"]


def features() -> Dict[str, Dict[str, Any]]:
    """What this kernel can do, detected by loading and attaching tiny programs:
    ``{feature: {"available": bool, "reason": str | None}}`` (cached per process)."""
    return _native.features()


def probes() -> List[Dict[str, Any]]:
    """The probe catalogue: one dict per probe with ``name``, ``category``,
    ``description``, ``hooks``, ``options`` (name, help, default), ``available`` and
    ``reason`` (why not, on this kernel or host)."""
    return _native.probes()


def _option_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidArgumentError(
        f"option {key}={value!r}: expected a str, int, float or bool"
    )


class Probe:
    """A probe of the catalogue (see :func:`probes`), by name.

    ``pid`` traces one process; other keyword arguments are the probe's options (as
    listed by :func:`probes`; an unknown one raises :class:`InvalidArgumentError`).
    Records are emitted every ``interval`` seconds and once more at :meth:`stop`, and
    stay readable after it. Up to ``queue`` records wait to be read; more are dropped
    and counted in :attr:`dropped`.

    Use it as a context manager (``start`` on enter, ``stop`` on exit), or call
    :meth:`start`/:meth:`stop`, or :meth:`run` for a fixed duration.
    """

    def __init__(
        self,
        name: str,
        pid: Optional[int] = None,
        *,
        interval: float = 1.0,
        queue: int = 65536,
        **options: Any,
    ) -> None:
        pairs = [(key, _option_text(key, value)) for key, value in options.items()]
        self._session = _native.ProbeSession(name, pid, pairs, interval, queue)

    @property
    def name(self) -> str:
        """The probe's registry name."""
        return self._session.name

    @property
    def running(self) -> bool:
        """Whether the probe runs."""
        return self._session.running

    @property
    def dropped(self) -> int:
        """Records lost because they were not read fast enough."""
        return self._session.dropped

    def start(self) -> "Probe":
        """Loads and attaches the probe. Starting a running probe does nothing."""
        self._session.start()
        return self

    def stop(self) -> None:
        """Stops the probe after one last collect; its records stay readable."""
        self._session.stop()

    def close(self) -> None:
        """Stops the probe and frees everything; unread records are lost."""
        self._session.close()

    def poll(self, timeout: Optional[float] = 0.0) -> List[Record]:
        """Waits up to ``timeout`` seconds (``None``: until one arrives) for a record,
        then returns it and every other record queued."""
        return self._session.poll(timeout)

    def records(self, timeout: Optional[float] = None) -> Iterator[Record]:
        """Yields records as they arrive, for ``timeout`` seconds in all (``None``: until
        the probe is stopped and every record was read).

        Records are dicts in the form of ``coolbpf run --json``: ``probe``, ``kind``
        (``counter``, ``gauge``, ``histogram``, ``event``, ``stacks``) and the kind's
        fields; histograms have ``buckets`` (``le``, ``count``), ``count``, ``sum``,
        ``mean`` and ``percentiles`` (``p50``, ``p90``, ``p95``, ``p99``, ``p999``: upper
        bounds of the buckets holding them).
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            if deadline is None:
                wait: Optional[float] = 0.25
            else:
                wait = min(0.25, max(0.0, deadline - time.monotonic()))
            batch = self._session.poll(wait)
            yield from batch
            if batch:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return
            if not self._session.running and self._session.queued == 0:
                return

    def run(self, duration: float) -> List[Record]:
        """Starts the probe (if needed), runs it for ``duration`` seconds, stops it and
        returns every record (the last ones are the final collect at stop)."""
        return self._session.run(duration)

    def __enter__(self) -> "Probe":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<coolbpf.Probe {self.name!r} running={self.running}>"


class Profiler:
    """A CPU profiler: stacks sampled ``freq`` times a second (per CPU, or per thread
    of ``pid``), or with ``off_cpu=True`` the time tasks spend off the CPU (blocked,
    sleeping, waiting to run) by stack, in microseconds.

    User addresses are symbolized every second while the processes still run, with
    DWARF (inlined frames, source lines) where binaries carry it; ``debug_info=False``
    names frames from symbol tables only, much cheaper on large binaries.
    :meth:`profile` returns a :class:`Profile` with ``folded()``, ``top(n)``,
    ``stacks()``, ``write_pprof(path)`` and ``write_svg(path)``.
    """

    def __init__(
        self,
        freq: int = 99,
        pid: Optional[int] = None,
        off_cpu: bool = False,
        debug_info: bool = True,
    ) -> None:
        self._profiler = _native.Profiler(freq, pid, off_cpu, debug_info)

    @property
    def running(self) -> bool:
        """Whether the profiler runs."""
        return self._profiler.running

    def start(self) -> "Profiler":
        """Loads and attaches the profiler."""
        self._profiler.start()
        return self

    def stop(self) -> None:
        """Stops the profiler and builds its profile."""
        self._profiler.stop()

    def profile(self) -> Profile:
        """The profile of the last run (stops the profiler first if it runs)."""
        return self._profiler.profile()

    def run(self, duration: float) -> Profile:
        """Profiles for ``duration`` seconds (Ctrl-C ends it early) and returns the
        profile."""
        self.start()
        try:
            time.sleep(duration)
        finally:
            self.stop()
        return self.profile()

    def __enter__(self) -> "Profiler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Object:
    """Your own BPF object, loaded into the kernel.

    From a ``.bpf.o`` file (``Object("my.bpf.o")``), its bytes (``data=``), or BPF C
    source (:meth:`from_source`). ``globals`` sets global variables before load
    (``{name: int | bool | bytes}``: an int takes the variable's size from BTF, so
    ``const volatile`` settings work as constants); ``max_entries`` resizes maps
    (``{map: entries}``, e.g. a ring buffer's size in bytes).

    Closing it (or leaving its ``with`` block) detaches everything it attached.
    """

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        data: Optional[bytes] = None,
        globals: Optional[Mapping[str, GlobalValue]] = None,
        max_entries: Optional[Mapping[str, int]] = None,
    ) -> None:
        if (path is None) == (data is None):
            raise InvalidArgumentError("give exactly one of path and data")
        self._object = _native.Object(
            None if path is None else os.fspath(path),
            data=data,
            globals=dict(globals) if globals else None,
            max_entries=list(max_entries.items()) if max_entries else None,
        )

    @staticmethod
    def compile(source: str, defines: Iterable[str] = ()) -> str:
        """Compiles BPF C ``source`` with the local clang against coolbpf's headers
        (``vmlinux.h``, ``coolbpf/coolbpf.bpf.h``, libbpf's ``bpf/*.h``) and returns the
        object file's path. Objects are cached by content under
        ``$XDG_CACHE_HOME/coolbpf`` (else ``~/.cache/coolbpf``). Raises
        :class:`CompileError` with clang's output, or :class:`UnsupportedError` naming
        the package to install when clang is missing."""
        return os.fspath(_native.compile_source(source, list(defines)))

    @classmethod
    def from_source(
        cls,
        source: str,
        *,
        defines: Iterable[str] = (),
        globals: Optional[Mapping[str, GlobalValue]] = None,
        max_entries: Optional[Mapping[str, int]] = None,
    ) -> "Object":
        """Compiles ``source`` (see :meth:`compile`) and loads it."""
        return cls(cls.compile(source, defines), globals=globals, max_entries=max_entries)

    @property
    def name(self) -> str:
        """The object's name."""
        return self._object.name

    @property
    def programs(self) -> List[str]:
        """Names of the loaded programs."""
        return self._object.programs

    @property
    def maps(self) -> List[str]:
        """Names of the maps."""
        return self._object.maps

    @property
    def attachments(self) -> int:
        """Number of live kernel attachments."""
        return self._object.attachments

    def attach(self, program: str, target: Optional[str] = None) -> "Object":
        """Attaches ``program`` to ``target``: ``tracepoint:CATEGORY:NAME``,
        ``raw_tp:NAME``, ``tp_btf:NAME``, ``uprobe:SYMBOL@LIBRARY_OR_PATH``,
        ``uretprobe:...``, ``usdt:...``, ``perf_event:...``; without a target, where the
        program's ``SEC()`` says."""
        self._object.attach(program, target)
        return self

    def detach_all(self) -> None:
        """Detaches every attachment (the object stays loaded)."""
        self._object.detach_all()

    def map(self, name: str) -> Map:
        """Map ``name`` (lookup, update, items, counters, histograms)."""
        return self._object.map(name)

    def ring_buffer(self, map: str, capacity: int = 1 << 20) -> RingBuffer:
        """Starts consuming ring buffer ``map``; read events in batches with
        :meth:`RingBuffer.read`. Up to ``capacity`` events wait to be read; more are
        counted as lost in :meth:`RingBuffer.losses`."""
        return self._object.ring_buffer(map, capacity)

    def global_bytes(self, name: str) -> bytes:
        """The current bytes of global variable ``name``, read from the kernel."""
        return self._object.global_bytes(name)

    def global_int(self, name: str) -> int:
        """Global variable ``name`` (1, 2, 4 or 8 bytes) as an unsigned int."""
        return self._object.global_int(name)

    def close(self) -> None:
        """Detaches everything and unloads the object."""
        self._object.close()

    def __enter__(self) -> "Object":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<coolbpf.Object {self.name!r}>"
