"""Snapshot files: a migration stream with what it needs beside it.

A stream says nothing of the machine options it was taken under (the RTC's
base and clock), so a file carries them, with the versions written and the
clocks at save time, in a small JSON header.  A CRC-32 over the whole file
detects corruption before anything is decoded; files are replaced whole
(:func:`vmstate.core.outputs.write_atomically`), so an old snapshot is never
replaced by a half-written one.

Layout: ``VMSSNAP1``, be32 header length, the header (JSON), the stream,
be32 CRC-32 of everything before it.
"""
from __future__ import annotations

import json
import struct
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from vmstate import __version__
from vmstate.core.errors import MalformedStream, NotAStream, StreamError, TruncatedStream

MAGIC = b"VMSSNAP1"
MAX_HEADER = 1 << 16


@dataclass
class Snapshot:
    """A snapshot file's stream and header; ``stream_at`` is where the
    stream starts in the file."""

    stream: bytes
    header: dict
    stream_at: int = 0

    @property
    def machine_options(self) -> dict:
        return dict(self.header["machine"])

    @contextmanager
    def in_the_file(self) -> Iterator[None]:
        """Errors about the stream, with their offsets in the file (what a
        user opening the file sees)."""
        try:
            yield
        except StreamError as err:
            raise err.shifted(self.stream_at) from None


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


#: The header's keys as :func:`header_for` and :func:`encode` write them,
#: each with its type; keys beyond these are left alone (a later vmstate
#: may add some), these must all be there.
HEADER = {"vmstate": str, "created": str, "machine": dict, "versions": dict,
          "virtual_ns": int, "host_ns": int, "stream_length": int}
INT64_MAX = (1 << 63) - 1


def _header(text: bytes) -> dict:
    """The header as :func:`header_for` writes it, or MalformedStream naming
    the key (``header.machine.rtc_base``) at the header's offset."""
    def refuse(message: str, key: str = "") -> MalformedStream:
        return MalformedStream(message, 12, f"header.{key}" if key else "header")

    try:
        header = json.loads(text)
    except RecursionError:
        raise refuse("the header is nested deeper than any JSON vmstate writes") from None
    except ValueError as err:
        raise refuse(f"the header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise refuse(f"the header is a JSON {type(header).__name__}, not an object")
    for key, kind in HEADER.items():
        if key not in header:
            raise refuse("missing: the header is not what vmstate writes", key)
        value = header[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise refuse(f"{value!r} is not a JSON {'string' if kind is str else kind.__name__}", key)
        if kind is int and not 0 <= value <= INT64_MAX:
            raise refuse(f"{value} is outside 0 .. INT64_MAX", key)
    for key, value in header["machine"].items():
        if not isinstance(value, str):
            raise refuse(f"{value!r} is not a string", f"machine.{key}")
    for key, value in header["versions"].items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 32:
            raise refuse(f"{value!r} is not a section version", f"versions.{key}")
    return header


def decode(data: bytes) -> Snapshot:
    """A snapshot file's stream and header, checked as far as the file's own
    format goes (the machine options are the machine's to judge)."""
    if len(data) < len(MAGIC) + 8:
        raise TruncatedStream("a snapshot file is at least 16 bytes", len(data), "(snapshot)")
    if data[:8] != MAGIC:
        raise NotAStream(f"not a vmstate snapshot (magic {data[:8]!r})", 0, "(snapshot magic)")
    (crc,) = struct.unpack_from(">I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise MalformedStream("the snapshot's checksum does not match: the file is corrupt or cut short",
                              len(data) - 4, "(snapshot checksum)")
    (length,) = struct.unpack_from(">I", data, 8)
    if length > MAX_HEADER or 12 + length > len(data) - 4:
        raise MalformedStream(f"header length {length} does not fit the file", 8, "(snapshot header length)")
    header = _header(data[12:12 + length])
    stream = data[12 + length:-4]
    if len(stream) != header["stream_length"]:
        raise MalformedStream(f"the stream is {len(stream)} bytes, the header says {header['stream_length']}",
                              12 + length, "header.stream_length")
    return Snapshot(stream, header, 12 + length)
