"""Reading sections out of a real QEMU stream, for golden interop tests.
Deliberately independent of vmstate.wire.stream, so that the two check each other."""
from __future__ import annotations

import json
import struct
from pathlib import Path

STREAMS = Path(__file__).resolve().parent.parent / "fixtures" / "streams"


def real_stream(name: str = "qemu-7.2-pc-pit-channel2.bin") -> bytes:
    return (STREAMS / name).read_bytes()


def section(data: bytes, idstr: str) -> tuple[int, bytes]:
    """(version, payload) of a FULL section, found by its header and footer."""
    name = idstr.encode()
    at = data.find(bytes([len(name)]) + name)
    while at >= 0 and data[at - 5] != 0x04:
        at = data.find(bytes([len(name)]) + name, at + 1)
    (section_id,) = struct.unpack_from(">I", data, at - 4)
    start = at + 1 + len(name)
    _, version = struct.unpack_from(">II", data, start)
    end = data.find(b"\x7e" + struct.pack(">I", section_id), start + 8)
    return version, data[start + 8:end]


def described(data: bytes, idstr: str) -> dict:
    """The JSON description QEMU wrote for a section."""
    text = data[data.find(b'{"page_size"'):]
    devices = json.loads(text[:text.rindex(b"}") + 1])["devices"]
    return next(d for d in devices if d["name"] == idstr)
