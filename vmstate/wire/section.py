"""A section's payload: its fields, then its subsections, as QEMU frames them.

Saving runs the generated saver of the description at the version written.
Loading unpacks the fields with the fast path into a state the caller owns,
checks every rule, then reads the subsections QEMU's way (peek at the name;
anything not named ``<parent>/...`` ends them), and applies the conversions.
Only when something is wrong are the bytes walked value by value, so that
the error names the field and the offset of its first byte.
"""
from __future__ import annotations

import struct
from typing import Any

from vmstate.core.errors import InvalidField, MalformedStream, TruncatedStream, UnknownSubsection, \
    VersionTooNew, VersionTooOld
from vmstate.wire.fastpath import BadCount, section_saver
from vmstate.wire.kinds import UINT8, accepts, rule_text
from vmstate.wire.markers import SUBSECTION
from vmstate.wire.table import Description, Field, Leaf, Offsets, Walk

_U32 = struct.Struct(">I")
# The framing a subsection adds, as a value of the bytes: its name's length.
SUBSECTION_NAME_LENGTH = Field("(name length)", UINT8, path="")


def save_section(description: Description, version: int, state: Any, out: list) -> tuple:
    """Append a section's payload (fields, then needed subsections), and
    return ``description.json_key(version, state)``: the subsections it
    wrote decide it, so the stream's JSON description is found without
    asking every subsection again."""
    save = description._savers.get(version)
    if save is None:
        save = description._savers[version] = section_saver(description, version, save_section)[0]
    return save(state, out)


def source(description: Description, version: int) -> str:
    """The generated code of a section at a version: its fast path and its
    saver, as ``vmstate schema source`` prints them."""
    return description.fast(version).source + "\n" + section_saver(description, version, save_section)[1]


def check_version(description: Description, version: int, offset: int, where: str,
                  highest: int | None = None) -> None:
    """QEMU's version rule; ``highest`` plays a destination that only knows
    versions up to it (an older build of the device)."""
    top = description.version if highest is None else min(highest, description.version)
    if version > top:
        raise VersionTooNew(f"version {version} is newer than the {top} this destination loads",
                            offset, where)
    if version < description.minimum:
        raise VersionTooOld(f"version {version} is older than the minimum {description.minimum}",
                            offset, where)


def load_section(description: Description, version: int, buf: bytes, off: int, state: Any,
                 now: int, where: str) -> int:
    """Load a section's payload at ``off`` into ``state`` (a copy the caller
    owns); validate it, apply the conversions, and return the offset after
    it.  Errors name the byte offset and the field path under ``where``."""
    aux: dict = {"now": now, "subsections": set()}
    if description.pre_load:
        description.pre_load(state, version, aux)
    off = _load_fields(description, version, buf, off, state, aux, where)
    if off < len(buf) and buf[off] == SUBSECTION:
        off = _load_subsections(description, buf, off, state, aux, now, where)
    if description.post_load:
        description.post_load(state, version, aux)
    return off


def _load_fields(description: Description, version: int, buf: bytes, start: int, state: Any,
                 aux: dict, where: str) -> int:
    fast = description.fast(version)
    try:
        end = fast.unpack(buf, start, state, aux)
    except (struct.error, BadCount):
        locate(description, version, buf, start, where)
        raise MalformedStream("fields could not be read", start, where) from None
    if not fast.sound(state, aux):
        offsets = Offsets(description.walk(version, buf, start, where), start)
        description.explain(version, state, aux, where, offsets)
        raise InvalidField("a rule of this section does not hold", start, where)
    return end


def locate(description: Description, version: int, buf: bytes, start: int, where: str) -> int:
    """Walk the fields reading the bytes themselves and raise the precise
    error (truncation, an out-of-range count or value) at the first problem,
    naming its offset and path.  Returns the end offset when there is none."""
    walk = description.walk(version, buf, start, where)
    while True:
        try:
            leaf = next(walk)
        except StopIteration as done:
            return done.value
        valid = leaf.entry.valid
        if valid is not None and leaf.entry.kind is not None and not accepts(valid, leaf.value):
            raise InvalidField(f"{leaf.value} is not valid ({rule_text(valid)})", leaf.offset, leaf.path)


def _subsection_header(description: Description, buf: bytes, off: int, where: str):
    """The subsection starting at ``off`` as (its table entry, name, the
    offset of its version), or None where QEMU's peek ends the loop."""
    prefix = description.name + "/"
    if off + 2 > len(buf):
        return None
    n = buf[off + 1]
    if n < len(prefix) or off + 2 + n > len(buf):
        return None
    raw = bytes(buf[off + 2:off + 2 + n])
    if not raw.startswith(prefix.encode()):
        return None
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedStream(f"subsection name {raw!r} is not ASCII", off, where) from None
    sub = description.subsection(name)
    if sub is None:
        raise UnknownSubsection(f"unknown subsection {name!r}", off, where)
    inner_where = f"{where}/{name.removeprefix(prefix)}"
    if off + 2 + n + 4 > len(buf):
        raise TruncatedStream("subsection header cut short", off, inner_where)
    return sub, name, off + 2 + n, inner_where


def _load_subsections(description: Description, buf: bytes, off: int, state: Any, aux: dict,
                      now: int, where: str) -> int:
    while off < len(buf) and buf[off] == SUBSECTION:
        header = _subsection_header(description, buf, off, where)
        if header is None:
            return off
        sub, name, at, inner_where = header
        (version,) = _U32.unpack_from(buf, at)
        check_version(sub.description, version, at, inner_where)
        if name in aux["subsections"]:
            raise MalformedStream(f"subsection {name!r} appears twice", off, where)
        aux["subsections"].add(name)
        off = load_section(sub.description, version, buf, at + 4, state, now, inner_where)
    return off


def walk_section(description: Description, version: int, buf: bytes, off: int, where: str) -> Walk:
    """Every value of a section's payload, subsections and their framing
    included, as the load reads them; returns the offset after it."""
    off = yield from description.walk(version, buf, off, where)
    seen: set[str] = set()
    while off < len(buf) and buf[off] == SUBSECTION:
        header = _subsection_header(description, buf, off, where)
        if header is None or header[1] in seen:
            return off
        sub, name, at, inner_where = header
        seen.add(name)
        yield Leaf(f"{inner_where} (name length)", SUBSECTION_NAME_LENGTH, off + 1, 1, buf[off + 1], True)
        (version,) = _U32.unpack_from(buf, at)
        check_version(sub.description, version, at, inner_where)
        off = yield from walk_section(sub.description, version, buf, at + 4, inner_where)
    return off
