"""What an attacker does to a whole QEMU stream: RAM records that lie
(flags, offsets, block names, the memory-size record), configuration
subsections and commands nobody sends, a JSON description whose sizes lie,
that is nested too deep or is larger than any, and cuts and bit flips
anywhere, the RAM and the description included."""
from __future__ import annotations

import io
import json
import lzma
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

from vmstate.core.paths import FIXTURES
from vmstate.wire import qemu_stream
from vmstate.wire.ram import Ram

#: A stream's device sections and description follow the RAM: mutations
#: land there more often than their share of the bytes.
_FLAGS = (0x40, 0x80, 0x100, 0x01, 0x02 | 0x08, 0x04, 0x10, 0x20, 0x200, 0xFFF)


@dataclass
class RealSeed:
    """A real stream, the qtest clock it was saved at (None: its timer
    section is the clock), and where its RAM records and JSON description are."""

    name: str
    data: bytes
    clock: int | None
    marks: list[int] = field(default_factory=list)
    description_at: int | None = None
    boundaries: list[int] = field(default_factory=list)


def real_seeds(root: Path = FIXTURES) -> list[RealSeed]:
    out = []
    for path in sorted((root / "streams").glob("*.mig.xz")):
        data = lzma.decompress(path.read_bytes())
        ram = Ram(marks=[])
        parts = qemu_stream.read(io.BytesIO(data), ram=ram).parts
        _, at = qemu_stream.description_at_the_end(io.BytesIO(data))
        clock = 2_510_000_000 if path.name.startswith("qtest") else None
        out.append(RealSeed(path.name[:-7], data, clock, ram.marks, at,
                            [p.offset for p in parts if p.kind in ("start", "part", "end", "section", "eof")]))
    return out


def _ram_lie(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    at = rng.choice(seed.marks)
    (word,) = struct.unpack_from(">Q", data, at)
    choice = rng.randrange(3)
    if choice == 0:
        word = (word & ~0xFFF) | rng.choice(_FLAGS)
    elif choice == 1:
        word = (word & 0xFFF) | (rng.randrange(1 << 40) << 12)
    else:
        word ^= 1 << rng.randrange(64)
    return data[:at] + struct.pack(">Q", word) + data[at + 8:]


def _description_lie(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    if seed.description_at is None:
        return data
    text = json.loads(data[seed.description_at + 5:])
    kind = rng.randrange(4)
    if kind == 0:
        device = rng.choice(text["devices"])
        fields = device.get("fields") or [{}]
        rng.choice(fields)["size"] = rng.choice((0, 1, 7, 1 << 20, -1, "x"))
    elif kind == 1:
        rng.choice(text["devices"])["fields"] = [{"name": "s", "type": "struct", "size": 1, "struct": {}}] * 3
    elif kind == 2:
        return data[:seed.description_at + 5] + b"[" * 50_000 + b"]" * 50_000
    else:
        text["devices"] = text["devices"] * rng.choice((2, 20))
    body = json.dumps(text).encode()
    return data[:seed.description_at] + b"\x06" + struct.pack(">I", len(body)) + body


def _configuration(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    if data[8] != 0x07:
        return data
    (n,) = struct.unpack_from(">I", data, 9)
    name = rng.choice((b"configuration/bogus", b"configuration/capabilities", b"configuration/uuid",
                       b"configuration/target-page-bits"))
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((0, 3, 8, 40))))
    sub = b"\x05" + bytes([len(name)]) + name + struct.pack(">I", 1) + junk
    return data[:13 + n] + sub + data[13 + n:]


def _command(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    at = rng.choice(seed.boundaries)
    body = bytes(rng.randrange(256) for _ in range(rng.choice((0, 4, 9))))
    length = rng.choice((len(body), len(body) + 5, 0xFFFF))
    return data[:at] + struct.pack(">BHH", 0x08, rng.randrange(16), length) + body + data[at:]


def _cut(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    return data[:rng.randrange(len(data))]


def _flip(rng: random.Random, seed: RealSeed, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 8))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


MUTATIONS = {"ram-lie": _ram_lie, "description-lie": _description_lie, "configuration": _configuration,
             "command": _command, "cut": _cut, "flip": _flip}


def hostile_real(rng: random.Random, seeds: list[RealSeed]) -> tuple[str, bytes, RealSeed]:
    """One hostile whole stream: (class, bytes, the seed it came from)."""
    seed = rng.choice(seeds)
    name = rng.choice(list(MUTATIONS))
    return f"qemu-{name}", MUTATIONS[name](rng, seed, seed.data), seed
