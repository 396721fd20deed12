"""Snapshot files: a migration stream with what it needs beside it.

A stream says nothing of the machine options it was taken under (the RTC's
base and clock), so a file carries them, with the versions written and the
clocks at save time, in a small JSON header.  A CRC-32 over the whole file
detects corruption before anything is decoded, and files are written to a
temporary name and renamed into place, so an old snapshot is never replaced
by a half-written one.

Layout: ``VMSSNAP1``, be32 header length, the header (JSON), the stream,
be32 CRC-32 of everything before it.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vmstate import __version__
from vmstate.core.errors import MalformedStream, NotAStream, TruncatedStream

MAGIC = b"VMSSNAP1"
MAX_HEADER = 1 << 16


@dataclass
class Snapshot:
    stream: bytes
    header: dict

    @property
    def machine_options(self) -> dict:
        return dict(self.header["machine"])


def header_for(machine, versions: dict[str, int]) -> dict:
    return {
        "vmstate": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": dict(machine.options),
        "versions": dict(versions),
        "virtual_ns": machine.clock.now,
        "host_ns": machine.host.now,
    }


def encode(stream: bytes, header: dict) -> bytes:
    text = json.dumps({**header, "stream_length": len(stream)}, sort_keys=True).encode()
    body = MAGIC + struct.pack(">I", len(text)) + text + stream
    return body + struct.pack(">I", zlib.crc32(body))


def decode(data: bytes) -> Snapshot:
    if len(data) < len(MAGIC) + 8:
        raise TruncatedStream("a snapshot file is at least 16 bytes", len(data))
    if data[:8] != MAGIC:
        raise NotAStream(f"not a vmstate snapshot (magic {data[:8]!r})", 0)
    (crc,) = struct.unpack_from(">I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise MalformedStream("the snapshot's checksum does not match: the file is corrupt or cut short",
                              len(data) - 4)
    (length,) = struct.unpack_from(">I", data, 8)
    if length > MAX_HEADER or 12 + length > len(data) - 4:
        raise MalformedStream(f"header length {length} does not fit the file", 8)
    try:
        header = json.loads(data[12:12 + length])
        machine = header["machine"]
        stream_length = header["stream_length"]
        if not (isinstance(machine, dict) and isinstance(stream_length, int)):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise MalformedStream("the snapshot header is not what vmstate writes", 12) from None
    stream = data[12 + length:-4]
    if len(stream) != stream_length:
        raise MalformedStream(f"the stream is {len(stream)} bytes, the header says {stream_length}", 12 + length)
    return Snapshot(stream, header)


def write_atomically(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
