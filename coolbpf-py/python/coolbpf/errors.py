"""coolbpf's exceptions.

Every error coolbpf raises is a :class:`coolbpf.Error`, and also the builtin exception a
Python program would catch for the same problem: a missing privilege is a
``PermissionError``, a bad option a ``ValueError``, an unknown probe, map, program or
process a ``LookupError``, a failed I/O or BPF operation an ``OSError``.

Each carries ``code`` (the stable numeric code shared with the C ABI), ``kind`` (its
name, e.g. ``"invalid_argument"``) and, when the kernel reported one, ``errno``.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
    "PermissionDeniedError",
    "UnsupportedError",
    "InvalidArgumentError",
    "NotFoundError",
    "IoError",
    "BpfError",
    "DecodeError",
    "PluginError",
    "ClosedError",
    "CompileError",
]


class Error(Exception):
    """Base class of every coolbpf error."""

    code: int = 0
    kind: str = "error"
    errno: Optional[int] = None


class PermissionDeniedError(Error, PermissionError):
    """A capability or permission is missing (code 1); the message says how to get it."""

    code = 1
    kind = "permission"


class UnsupportedError(Error, OSError):
    """The kernel (or the machine: clang, headers) lacks something this needs (code 2)."""

    code = 2
    kind = "unsupported"


class InvalidArgumentError(Error, ValueError):
    """An argument, option or value is invalid (code 3)."""

    code = 3
    kind = "invalid_argument"


class NotFoundError(Error, LookupError):
    """A probe, map, program, global, process or file does not exist (code 4)."""

    code = 4
    kind = "not_found"


class IoError(Error, OSError):
    """An I/O operation failed (code 5)."""

    code = 5
    kind = "io"


class BpfError(Error, OSError):
    """libbpf or the kernel's BPF subsystem refused an operation (code 6)."""

    code = 6
    kind = "bpf"


class DecodeError(Error, ValueError):
    """Data could not be decoded (code 7)."""

    code = 7
    kind = "decode"


class PluginError(Error, RuntimeError):
    """A probe failed while running (code 8)."""

    code = 8
    kind = "plugin"


class ClosedError(Error, RuntimeError):
    """The handle was already closed (code 9)."""

    code = 9
    kind = "closed"


class CompileError(Error):
    """clang rejected BPF C source given to :meth:`coolbpf.Object.from_source`; the
    message holds clang's output."""

    kind = "compile"
