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


def read_input(source: str | os.PathLike, what: str = "input", limit: int = MAX_INPUT) -> bytes:
    """The bytes of ``source`` (a path, or ``-`` for standard input)."""
    if str(source) == "-":
        data = sys.stdin.buffer.read(limit + 1)
        where = "standard input"
    else:
        path = Path(source)
        try:
            info = os.stat(path)
        except OSError as err:
            raise UsageError(f"{path}: {err.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path}: not a regular file (a {what} is read from a file or from -)")
        if info.st_size > limit:
            raise UsageError(f"{path}: {info.st_size} bytes, more than any {what} ({limit} at most)")
        try:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
        except OSError as err:
            raise UsageError(f"{path}: {err.strerror}") from None
        where = str(path)
    if len(data) > limit:
        raise UsageError(f"{where}: more than {limit} bytes, more than any {what}")
    return data
