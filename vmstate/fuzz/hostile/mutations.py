"""What an attacker does to a valid stream: cut it, flip its bits (the
clock's too), make its lengths and fields lie (times at the end of time
among them), duplicate, reorder, shuffle, drop and splice its sections, keep
some of them only, and nest its JSON description too deep."""
from __future__ import annotations

import random
from typing import Callable

from vmstate.core.clock import MAX_VIRTUAL_NS
from vmstate.fuzz.hostile.seeds import Seed, bounds, read_value, write_value
from vmstate.wire.table import Leaf

# -- mutations ------------------------------------------------------------------------
def _offset(rng: random.Random, seed: Seed, data: bytes) -> int:
    """An offset, most often among the fields and framing rather than in
    the JSON description that makes up most of a stream."""
    end = min(seed.layout.binary_end or len(data), len(data))
    return rng.randrange(end) if end and rng.random() < 0.85 else rng.randrange(max(len(data), 1))


def lies(true: int, size: int, rng: random.Random) -> list[int]:
    top = (1 << (8 * size)) - 1
    return [0, 1, true - 1, true + 1, top, top >> 1, top >> 1 | 1 << (8 * size - 1), rng.randrange(top + 1)]


def field_values(leaf: Leaf, rng: random.Random) -> list[int]:
    """Values to put in a field: its wire format's extremes (a bool is a
    byte) and, when it has a rule, the values just outside what it accepts."""
    kind = leaf.entry.kind
    lo, hi = bounds(leaf)
    values = [lo, hi, 0, -1, 1, rng.randint(lo, hi)]
    valid = leaf.entry.valid
    if isinstance(valid, range):
        values += [valid.start - 1, valid.stop, valid.stop - 1 + rng.randint(1, 1 << 16)]
    elif isinstance(valid, frozenset):
        values += [max(valid) + 1, min(valid) - 1, rng.choice(sorted(valid)) ^ (1 << rng.randrange(8 * kind.size))]
    return values


def truncate(rng, seed, data):
    return data[:_offset(rng, seed, data)]


def bitflip(rng, seed, data):
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        at = _offset(rng, seed, data)
        if at < len(out):
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte(rng, seed, data):
    at = _offset(rng, seed, data)
    if at >= len(data):
        return data
    return data[:at] + bytes([rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))]) + data[at + 1:]


def lie(rng, seed, data):
    sites = [s for s in seed.layout.lengths if s.offset + s.size <= len(data)]
    if not sites:
        return bitflip(rng, seed, data)
    site = rng.choice(sites)
    return write_value(site, data, rng.choice(lies(read_value(site, data), site.size, rng)))


def out_of_range(rng, seed, data):
    sites = [s for s in seed.layout.values if s.offset + s.size <= len(data)]
    if not sites:
        return byte(rng, seed, data)
    site = rng.choice(sites)
    return write_value(site, data, rng.choice(field_values(site, rng)))


def _spans(seed) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in seed.layout.sections]


def duplicate(rng, seed, data):
    spans = _spans(seed)
    if not spans:
        return data + data[8:]
    a, b = rng.choice(spans)
    at = rng.choice([s for s, _ in spans] + [spans[-1][1]])
    return data[:at] + data[a:b] + data[at:]


def reorder(rng, seed, data):
    spans = _spans(seed)
    if len(spans) < 2:
        return truncate(rng, seed, data)
    i, j = sorted(rng.sample(range(len(spans)), 2))
    (a, b), (c, d) = spans[i], spans[j]
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def drop(rng, seed, data):
    spans = _spans(seed)
    if not spans:
        return data[:-1]
    a, b = rng.choice(spans)
    return data[:a] + data[b:]


def _garbage(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def trailing(rng, seed, data):
    junk = rng.choice((b"\x00", b"\x7e", b"\x06\x00\x00\x00\x02{}", _garbage(rng, rng.randint(1, 64))))
    if rng.random() < 0.7 or seed.layout.eof is None:
        return data + junk
    at = rng.choice([seed.layout.eof, seed.layout.eof + 1])
    return data[:at] + junk + data[at:]


def noise(rng, seed, data):
    """Bytes that owe nothing to a stream, or a valid header followed by them."""
    junk = _garbage(rng, rng.choice((0, 1, 4, 8, 13, 40, 300)))
    return rng.choice((junk, data[:rng.choice((4, 8, 13, 26))] + junk))


def splice(rng, seed, data, donor: Seed | None = None):
    """A section of another stream put in this one (with its own section id)."""
    donor = donor or seed
    if not donor.layout.sections or not seed.layout.sections:
        return data
    span = rng.choice(donor.layout.sections)
    at = rng.choice([s.start for s in seed.layout.sections])
    return data[:at] + donor.data[span.start:span.end] + data[at:]


#: Times a model may not reach: around the end of virtual time (2^62 ns) and
#: of int64, where a deadline one period on would no longer fit its field.
END_OF_TIME = (MAX_VIRTUAL_NS - 1, MAX_VIRTUAL_NS, MAX_VIRTUAL_NS + (1 << 40), (1 << 63) - 1, (1 << 63) - 2,
               (1 << 63) - (1 << 23), -(1 << 63), (1 << 64) - 1, (1 << 64) - (1 << 23))


def end_of_time(rng, seed, data):
    """A 64-bit field (a time, a deadline, a counter) set near the end of time."""
    sites = [s for s in seed.layout.values if s.size == 8 and s.offset + 8 <= len(data)]
    if not sites:
        return out_of_range(rng, seed, data)
    site = rng.choice(sites)
    lo, hi = bounds(site)
    values = [v for v in END_OF_TIME if lo <= v <= hi]
    return write_value(site, data, rng.choice(values))


def clock_bitflip(rng, seed, data):
    """One bit of the virtual clock flipped: every deadline in the stream is
    then far from the time the devices run at."""
    sites = [s for s in seed.layout.values if s.path.startswith("timer.") and s.offset + s.size <= len(data)]
    if not sites:
        return bitflip(rng, seed, data)
    site = rng.choice(sites)
    return write_value(site, data, read_value(site, data) ^ (1 << rng.randrange(64)))


def shuffle(rng, seed, data):
    """Every section in another order, the clock's included."""
    spans = _spans(seed)
    if len(spans) < 2:
        return truncate(rng, seed, data)
    order = list(spans)
    rng.shuffle(order)
    first, last = spans[0][0], spans[-1][1]
    return data[:first] + b"".join(data[a:b] for a, b in order) + data[last:]


def partial(rng, seed, data):
    """Some of the sections only, restored into a machine busy with its own
    state: what the stream leaves out must not outlive the load."""
    spans = _spans(seed)
    if not spans:
        return data
    kept = [span for span in spans if rng.random() < 0.5]
    first, last = spans[0][0], spans[-1][1]
    eof = seed.layout.eof if seed.layout.eof is not None else last
    return data[:first] + b"".join(data[a:b] for a, b in kept) + data[last:eof + 1]


def deep_json(rng, seed, data):
    """A JSON description nested deeper than a parser's recursion allows
    (QEMU writes a few levels)."""
    if seed.layout.eof is None:
        return data
    depth = rng.choice((990, 1000, 5000, 100_000))
    opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))
    text = opener * depth + b"0" + closer * depth
    return data[:seed.layout.eof + 1] + b"\x06" + len(text).to_bytes(4, "big") + text


MUTATIONS: dict[str, Callable] = {
    "truncate": truncate, "bitflip": bitflip, "byte": byte, "lie": lie, "out-of-range": out_of_range,
    "duplicate": duplicate, "reorder": reorder, "drop": drop, "trailing": trailing, "noise": noise,
    "splice": splice, "end-of-time": end_of_time, "clock-bitflip": clock_bitflip, "shuffle": shuffle,
    "partial": partial, "deep-json": deep_json,
}
WEIGHTS = {"truncate": 10, "bitflip": 14, "byte": 8, "lie": 12, "out-of-range": 20, "duplicate": 4,
           "reorder": 4, "drop": 3, "trailing": 4, "noise": 6, "splice": 4, "havoc": 11,
           "end-of-time": 8, "clock-bitflip": 4, "shuffle": 3, "partial": 4, "deep-json": 1}


def mutate(rng: random.Random, seed: Seed, seeds_: list[Seed]) -> tuple[str, bytes]:
    """One hostile input from ``seed``: (mutation name, bytes)."""
    name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    if name == "havoc":
        data = seed.data
        for _ in range(rng.randint(2, 4)):
            step = rng.choice(["bitflip", "byte", "lie", "out-of-range", "truncate", "duplicate", "reorder",
                               "end-of-time", "clock-bitflip"])
            data = MUTATIONS[step](rng, seed, data)
        return name, data
    if name == "splice":
        return name, splice(rng, seed, seed.data, rng.choice(seeds_))
    return name, MUTATIONS[name](rng, seed, seed.data)
