"""A stream read from a file object in one pass, in bounded memory.

QEMU's streams hold the guest's RAM, so they are as large as the guest: the
reader keeps only a window of the bytes (what one record or one device
section needs), knows every byte's offset in the whole stream, and skips
pages without keeping them.  Every error it raises names the offset where
the stream ended or lied, and the part of the stream being read.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from vmstate.core.errors import MalformedStream, TruncatedStream

#: The most one record may ask to be held at once: a device section or a
#: block name; QEMU's largest device sections (a VGA's or a CPU's with its
#: XSAVE area) are well under this.
MAX_WINDOW = 16 << 20
_CHUNK = 1 << 20
_FORMATS: dict[str, struct.Struct] = {}


class Source:
    """Bytes of ``handle`` from the current position on, with their offsets
    in the stream (``base`` is the offset of the handle's first byte)."""

    def __init__(self, handle: BinaryIO | bytes, base: int = 0):
        if isinstance(handle, (bytes, bytearray, memoryview)):
            self._handle = None
            self._buffer = bytes(handle)
        else:
            self._handle = handle
            self._buffer = b""
        self._start = base              # offset of _buffer[0]
        self._at = 0                    # read position within _buffer

    @property
    def offset(self) -> int:
        return self._start + self._at

    def _fill(self, n: int, what: str, path: str) -> None:
        """Make ``n`` bytes from the read position available, or raise
        TruncatedStream where the stream ends."""
        if n > MAX_WINDOW:
            raise MalformedStream(f"the {what} would be {n} bytes, more than any stream holds in one record "
                                  f"({MAX_WINDOW})", self.offset, path)
        if self._at + n <= len(self._buffer):
            return
        if self._handle is not None:
            kept = self._buffer[self._at:]
            self._start += self._at
            self._at = 0
            parts, have = [kept], len(kept)
            while have < n:
                chunk = self._handle.read(max(_CHUNK, n - have))
                if not chunk:
                    break
                parts.append(chunk)
                have += len(chunk)
            self._buffer = b"".join(parts)
        if self._at + n > len(self._buffer):
            raise TruncatedStream(f"stream ends inside the {what}", len(self._buffer) + self._start, path)

    def peek_byte(self) -> int | None:
        """The next byte, or None at the end of the stream."""
        try:
            self._fill(1, "stream", "")
        except TruncatedStream:
            return None
        return self._buffer[self._at]

    def window(self, n: int, what: str, path: str) -> tuple[bytes, int]:
        """The buffer and the position in it where ``n`` bytes from the read
        position are, without consuming them: for a section's payload,
        read by the section layer in place."""
        self._fill(n, what, path)
        return self._buffer, self._at

    def available(self, limit: int) -> tuple[bytes, int, int]:
        """The buffer, the read position, and how many bytes are there
        from it (reading more, up to ``limit``, when the stream has them)."""
        try:
            self._fill(limit, "stream", "")
        except TruncatedStream:
            pass
        return self._buffer, self._at, min(limit, len(self._buffer) - self._at)

    def advance(self, n: int) -> None:
        self._at += n

    def unpack(self, fmt: str, what: str, path: str) -> tuple:
        layout = _FORMATS.get(fmt)
        if layout is None:
            layout = _FORMATS[fmt] = struct.Struct(fmt)
        self._fill(layout.size, what, path)
        values = layout.unpack_from(self._buffer, self._at)
        self._at += layout.size
        return values

    def take(self, n: int, what: str, path: str) -> bytes:
        self._fill(n, what, path)
        chunk = self._buffer[self._at:self._at + n]
        self._at += n
        return chunk

    def skip(self, n: int, what: str, path: str) -> None:
        """Pass over ``n`` bytes holding at most a chunk of them."""
        while n > 0:
            step = min(n, _CHUNK)
            self._fill(step, what, path)
            self._at += step
            n -= step
            if self._at > _CHUNK:
                self._buffer = self._buffer[self._at:]
                self._start += self._at
                self._at = 0

    def at_end(self) -> bool:
        return self.peek_byte() is None
