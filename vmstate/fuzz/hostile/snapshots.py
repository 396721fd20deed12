"""What an attacker does to a snapshot file: a header that is not what vmstate
writes (keys missing, unknown or of another type, options no machine takes,
JSON nested too deep, bytes that are not UTF-8), under a checksum that
matches, so that the header itself is what gets judged."""
from __future__ import annotations

import copy
import json
import random
import struct
import zlib

from vmstate.fuzz.hostile.seeds import Seed
from vmstate.wire import snapshot

_STRANGE = (None, True, 0, -1, 1 << 64, 1.5, "", "garbage", "1900-01-01T00:00:00", "9999-12-31T23:59:59",
            [], {}, "\x00", "é")


def _strange(rng: random.Random):
    """A value no header key holds (a fresh one: some are containers)."""
    return copy.deepcopy(rng.choice(_STRANGE))


def _sealed(text: bytes, stream: bytes) -> bytes:
    """A snapshot file around ``text`` as its header, with a valid CRC."""
    body = snapshot.MAGIC + struct.pack(">I", len(text)) + text + stream
    return body + struct.pack(">I", zlib.crc32(body))


def _header(seed: Seed) -> dict:
    return {"vmstate": "0.1.0", "created": "2026-01-01T00:00:00+00:00", "machine": dict(seed.options),
            "versions": {}, "virtual_ns": seed.machine.clock.now, "host_ns": seed.machine.host.now,
            "stream_length": len(seed.data)}


def _changed(rng: random.Random, header: dict) -> dict:
    key = rng.choice(sorted(header) + ["machine", "machine", "versions"])
    choice = rng.randrange(5)
    if choice == 0:
        header.pop(key, None)
    elif key in ("machine", "versions") and choice == 1 and isinstance(header.get(key), dict):
        names = ("rtc_base", "rtc_clock", "speed", "") if key == "machine" else ("i8254", "hpet", "bogus")
        header[key][rng.choice(names)] = _strange(rng)
    elif choice == 2:
        header[rng.choice(("extra", key))] = _strange(rng)
    else:
        header[key] = _strange(rng)
    return header


def hostile_snapshot(rng: random.Random, seed: Seed) -> tuple[str, bytes]:
    """One hostile snapshot file of ``seed``'s stream: (class, bytes)."""
    header = _header(seed)
    kind = rng.choices(("header", "deep", "not-utf8", "not-an-object", "valid", "crc"), (10, 2, 1, 1, 1, 1))[0]
    if kind == "header":
        for _ in range(rng.choice((1, 1, 2, 3))):
            header = _changed(rng, header)
        text = json.dumps(header).encode()
    elif kind == "deep":
        depth = rng.choice((1000, 5000, 20000))
        header["machine"] = "@"
        text = json.dumps(header).encode().replace(b'"@"', b"[" * depth + b"]" * depth)
    elif kind == "not-utf8":
        text = json.dumps(header).encode().replace(b"vm", b"\xff\xfe", 1)
    elif kind == "not-an-object":
        text = rng.choice((b"[]", b"3", b'"machine"', b"null"))
    else:
        text = json.dumps(header).encode()
    data = _sealed(text, seed.data)
    if kind == "crc":
        at = rng.randrange(len(data))
        data = data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]
    return f"snapshot-{kind}", data
