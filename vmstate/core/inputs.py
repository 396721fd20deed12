"""Reading what a user points vmstate at, with bounds.

Only a regular file or standard input (``-``) is read, and never more than
a bound that no real trace, snapshot or device stream comes near: a path to
``/dev/zero`` or a FIFO must not make a command grow without end or wait
for ever.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from vmstate.core.errors import UsageError

#: No trace, snapshot or device-state stream vmstate handles whole is near this.
MAX_INPUT = 256 << 20


def _regular(path: Path, what: str) -> os.stat_result:
    """The file's status, or UsageError when it is not a regular file: a
    device (``/dev/zero``) would never end, a FIFO may never answer."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: not a regular file (a {what} is read from a file or from -)")
    return info


def open_input(source: str | os.PathLike, what: str = "input"):
    """A binary handle on ``source`` (a regular file, or ``-`` for standard
    input), for inputs read in one pass rather than whole (a QEMU stream is
    as large as its guest's RAM)."""
    if str(source) == "-":
        return sys.stdin.buffer
    path = Path(source)
    _regular(path, what)
    try:
        return open(path, "rb")
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None


def read_input(source: str | os.PathLike, what: str = "input", limit: int | None = None) -> bytes:
    """The bytes of ``source`` (a path, or ``-`` for standard input), at
    most ``limit`` (default :data:`MAX_INPUT`)."""
    limit = MAX_INPUT if limit is None else limit
    if str(source) == "-":
        data = read_bounded(sys.stdin.buffer, limit)
        where = "standard input"
    else:
        path = Path(source)
        info = _regular(path, what)
        if info.st_size > limit:
            raise UsageError(f"{path}: {info.st_size} bytes, more than any {what} ({limit} at most)")
        try:
            with open(path, "rb") as handle:
                data = read_bounded(handle, limit)
        except OSError as err:
            raise UsageError(f"{path}: {err.strerror}") from None
        where = str(path)
    if len(data) > limit:
        raise UsageError(f"{where}: more than {limit} bytes, more than any {what}")
    return data


def read_bounded(handle, limit: int, chunk: int = 1 << 20) -> bytes:
    """Up to ``limit + 1`` bytes, a chunk at a time: ``read(n)`` would
    allocate all of ``n`` first, whatever the input's size."""
    parts, total = [], 0
    while total <= limit:
        part = handle.read(min(chunk, limit + 1 - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
    return b"".join(parts)
