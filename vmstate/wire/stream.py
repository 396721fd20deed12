"""QEMU's migration stream container, for device-state sections.

``QEVM``, version 3, the configuration section naming the machine type, one
FULL section per device (type, section id, idstr, instance id, version, the
payload, a footer repeating the section id), the EOF marker, and QEMU's JSON
description of every section.  Reading decodes and validates the whole
stream into states the caller owns; nothing is applied here, so a stream that
fails anywhere leaves every destination untouched.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from vmstate.core.errors import (MalformedStream, NotAStream, StreamError, TrailingData, TruncatedStream,
                                 UnknownSection)
from vmstate.wire.kinds import UINT8, UINT32
from vmstate.wire.markers import COMMAND, CONFIGURATION, END, EOF_MARKER as EOF, FOOTER, FULL, PART, START, \
    VMDESCRIPTION
from vmstate.wire.section import SUBSECTION_NAME_LENGTH, check_version, load_section, save_section, walk_section
from vmstate.wire.table import Description, Field, Leaf

MAGIC = b"QEVM"
STREAM_VERSION = 3
MACHINE_TYPE = "pc-i440fx-7.2"
PAGE_SIZE = 4096
# Bound on the JSON description we accept, so that a lying length cannot make
# us allocate without limit.
MAX_DESCRIPTION = 1 << 20


@dataclass
class Section:
    """One device's state as a stream carries it."""

    idstr: str
    instance_id: int
    description: Description
    version: int
    state: Any
    # where the payload starts in the stream it was read from
    offset: int | None = None


_DESCRIBED: dict[tuple, bytes] = {}
# The trailer's JSON text (the trailer without its 5-byte framing), kept
# beside it so that a read does not copy it out of the trailer every time.
_TEXTS: dict[tuple, bytes] = {}
# The last trailer written or matched, with its text: most streams read are
# the last one written.
_LAST: list[bytes] = [b"", b""]
# Stream preambles by machine type, section headers by (section id, idstr,
# instance id, version), footers by section id.  Bounded: hostile streams
# bring any ids.
_PREAMBLES: dict[str, bytes] = {}
_HEADERS: dict[tuple, bytes] = {}
_FOOTERS: dict[int, bytes] = {}
_CACHED = 1024
_DESCRIBED_CACHED = 64


def write(sections: list[Section], machine_type: str = MACHINE_TYPE) -> bytes:
    return write_items([(s.idstr, s.instance_id, s.description, s.version, s.state) for s in sections],
                       machine_type)


def write_items(items: list[tuple], machine_type: str = MACHINE_TYPE) -> bytes:
    """:func:`write` for sections given as ``(idstr, instance_id, description,
    version, state)`` tuples, which a save makes without building a
    :class:`Section` each (the trailer's JSON, made once per shape, is the
    only thing that needs them)."""
    preamble = _PREAMBLES.get(machine_type)
    if preamble is None:
        name = machine_type.encode()
        preamble = MAGIC + struct.pack(">IBI", STREAM_VERSION, CONFIGURATION, len(name)) + name
        if len(_PREAMBLES) < _CACHED:
            _PREAMBLES[machine_type] = preamble
    out = [preamble]
    append = out.append
    keys = []
    for section_id, (idstr, instance_id, description, version, state) in enumerate(items):
        head_key = (section_id, idstr, instance_id, version)
        head = _HEADERS.get(head_key)
        if head is None:
            raw = idstr.encode()
            head = (struct.pack(">BIB", FULL, section_id, len(raw)) + raw
                    + struct.pack(">II", instance_id, version))
            if len(_HEADERS) < _CACHED:
                _HEADERS[head_key] = head
        append(head)
        keys.append((idstr, instance_id, id(description), save_section(description, version, state, out)))
        append(_FOOTERS.get(section_id) or _footer(section_id))
    append(bytes([EOF]))
    key = tuple(keys)
    trailer = _DESCRIBED.get(key)
    if trailer is None or _LAST[0] is not trailer:
        trailer = _described([Section(*item) for item in items], key)
    append(trailer)
    return b"".join(out)


def _described_key(sections: list[Section]) -> tuple:
    """What the trailer depends on (``write`` gets the same key from
    ``save_section`` as it writes)."""
    return tuple([(s.idstr, s.instance_id, id(s.description), s.description.json_key(s.version, s.state))
                  for s in sections])


def _described(sections: list[Section], key: tuple | None = None) -> bytes:
    """The VMDESCRIPTION trailer, built once per combination of sections,
    versions, counts and needed subsections."""
    if key is None:
        key = _described_key(sections)
    trailer = _DESCRIBED.get(key)
    if trailer is None:
        devices = [{"name": s.idstr, "instance_id": s.instance_id, **s.description.json(s.version, s.state)}
                   for s in sections]
        text = json.dumps({"page_size": PAGE_SIZE, "devices": devices}, separators=(",", ":")).encode()
        trailer = struct.pack(">BI", VMDESCRIPTION, len(text)) + text
        # Bounded too: a read looks up the trailer of whatever sections a
        # stream brings (any subset, order and versions), and each one kept
        # costs about 130 KB.
        if len(_DESCRIBED) < _DESCRIBED_CACHED:
            _TEXTS[key] = text
            _DESCRIBED[key] = trailer
        _LAST[:] = [trailer, text]
    elif _LAST[0] is not trailer:
        _LAST[:] = [trailer, _TEXTS.get(key) or trailer[5:]]
    return trailer


# lookup(idstr, instance_id) -> (description, state to load into, highest
# version the destination loads)
Lookup = Callable[[str, int], tuple[Description, Any, int]]


@dataclass
class Loaded:
    """A decoded stream: its machine type, its sections (states ready to be
    applied) and its JSON description's text, if any."""

    machine_type: str
    sections: list[Section]
    description_text: bytes | None

    @property
    def description(self) -> dict | None:
        return None if self.description_text is None else json.loads(self.description_text)


_LAYOUTS: dict[str, struct.Struct] = {}
_INSTANCE_VERSION = struct.Struct(">II")
_ID_LENGTH = struct.Struct(">IB")


class _Reader:
    """The bytes and where reading is; every error names ``what`` was being
    read and the part of the stream it belongs to (``path``: the section's
    name once known)."""

    def __init__(self, data: bytes):
        self.data = data
        self.off = 0

    def need(self, n: int, what: str, path: str) -> None:
        if self.off + n > len(self.data):
            raise TruncatedStream(f"stream ends inside the {what}", self.off, path)

    def unpack(self, fmt: str, what: str, path: str) -> tuple:
        layout = _LAYOUTS.get(fmt)
        if layout is None:
            layout = _LAYOUTS[fmt] = struct.Struct(fmt)
        size = layout.size
        if self.off + size > len(self.data):
            raise TruncatedStream(f"stream ends inside the {what}", self.off, path)
        values = layout.unpack_from(self.data, self.off)
        self.off += size
        return values

    def take(self, n: int, what: str, path: str) -> bytes:
        self.need(n, what, path)
        chunk = self.data[self.off:self.off + n]
        self.off += n
        return bytes(chunk)


def _shown(raw: bytes) -> str:
    """Bytes that should have been a name, short enough for a message."""
    return repr(raw) if len(raw) <= 40 else f"{raw[:40]!r}... ({len(raw)} bytes)"


def read(data: bytes, lookup: Lookup, now: Callable[[list[Section]], int | None], default_now: int = 0,
         machine_type: str = MACHINE_TYPE) -> Loaded:
    """Decode and validate a whole stream.  ``lookup(idstr, instance_id)``
    gives the description and a state copy to load into (raising
    UnknownSection for a device the destination lacks); ``now(sections)``
    gives the stream's virtual time from the sections read so far, or None
    while they do not tell it (then it is ``default_now``, the
    destination's)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NotAStream("a stream is bytes")
    r = _Reader(bytes(data))
    magic = r.take(4, "header", "(header)")
    if magic != MAGIC:
        raise NotAStream(f"magic {magic!r} is not {MAGIC!r}", 0, "(header)")
    (version,) = r.unpack(">I", "header", "(header)")
    if version != STREAM_VERSION:
        hint = " (version 2 streams are obsolete)" if version == 2 else ""
        raise NotAStream(f"stream format version {version} is not {STREAM_VERSION}{hint}", 4, "(header)")
    found_type = None
    sections: list[Section] = []
    times: list[int] = []
    seen: set[tuple[str, int]] = set()
    ids: set[int] = set()
    data = r.data
    while True:
        at = r.off
        if at < len(data):
            kind = data[at]
            r.off = at + 1
        else:
            (kind,) = r.unpack(">B", "section type", "(section type)")
        if kind == CONFIGURATION:
            if found_type is not None or sections:
                raise MalformedStream("the configuration section must come first, once", at, "configuration")
            (length,) = r.unpack(">I", "configuration", "configuration")
            raw = r.take(length, "machine type", "configuration")
            try:
                found_type = raw.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedStream(f"machine type {_shown(raw)} is not ASCII", at + 5, "configuration") from None
            if found_type != machine_type:
                raise MalformedStream(f"machine type {found_type!r} is not the destination's {machine_type!r}",
                                      at + 5, "configuration")
        elif kind == FULL:
            sections.append(_read_section(r, at, lookup, now(sections), seen, ids, len(sections) + 1))
            times.append(now(sections[:-1]))
        elif kind == EOF:
            final = now(sections)
            _at_the_streams_time(r.data, sections, times, default_now if final is None else final, lookup)
            return Loaded(found_type or machine_type, sections, _read_description(r, sections))
        elif kind in (START, PART, END):
            raise MalformedStream("iterative sections (RAM, block) are not device state and are not supported", at,
                                  "(section type)")
        elif kind == COMMAND:
            raise MalformedStream("migration commands are not supported in a device-state stream", at,
                                  "(section type)")
        else:
            raise MalformedStream(f"unknown section type {kind:#04x}", at, "(section type)")


def _at_the_streams_time(data: bytes, sections: list[Section], times: list[int], final: int,
                         lookup: Lookup) -> None:
    """Sections read before the stream's time was known (``used`` None:
    their rules on the time held) are read again at that time, so that
    every section is judged against the time it will run at, whatever the
    order of the sections: QEMU fixes none, and loads the clock first.  In
    a stream in QEMU's order that is the clock's own section only."""
    for i, (section, used) in enumerate(zip(sections, times)):
        if used != final:
            description, state, _ = lookup(section.idstr, section.instance_id)
            load_section(description, section.version, data, section.offset, state, final, section.idstr)
            sections[i] = Section(section.idstr, section.instance_id, description, section.version, state,
                                  section.offset)


def _read_section(r: _Reader, at: int, lookup: Lookup, now: int, seen: set, ids: set, ordinal: int) -> Section:
    """A FULL section; until its name is read, errors name it by its place
    (``(section 3)``), then by its name."""
    data, off = r.data, r.off
    if off + 5 <= len(data) and off + 5 + data[off + 4] <= len(data):
        section_id, n = _ID_LENGTH.unpack_from(data, off)
        raw = data[off + 5:off + 5 + n]
        r.off = off + 5 + n
    else:
        place = f"(section {ordinal})"
        section_id, n = r.unpack(">IB", "section header", place)
        raw = r.take(n, f"section name (of {n} bytes, begun {_shown(bytes(data[r.off:]))})", place)
    try:
        idstr = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedStream(f"section name {_shown(raw)} is not ASCII", at + 6, f"(section {ordinal})") from None
    name = idstr or f"(section {ordinal})"
    if r.off + 8 <= len(r.data):
        instance_id, version = _INSTANCE_VERSION.unpack_from(r.data, r.off)
        r.off += 8
    else:
        instance_id, version = r.unpack(">II", "section header", name)
    if (idstr, instance_id) in seen or section_id in ids:
        raise MalformedStream(f"section {idstr!r} (id {section_id}) appears twice", at, name)
    seen.add((idstr, instance_id))
    ids.add(section_id)
    try:
        description, state, highest = lookup(idstr, instance_id)
    except UnknownSection as err:
        # The lookup knows devices, not bytes: the section's name is where
        # the stream asks for a device this machine lacks.
        if err.offset is not None:
            raise
        raise UnknownSection(err.message, at + 6, err.path or name) from None
    check_version(description, version, r.off - 4, idstr, highest)
    start = r.off
    r.off = load_section(description, version, r.data, r.off, state, now, idstr)
    if r.data.startswith(_footer(section_id), r.off):
        r.off += 5
        return Section(idstr, instance_id, description, version, state, start)
    (footer,) = r.unpack(">B", "section footer", idstr)
    if footer != FOOTER:
        raise MalformedStream(f"section footer expected (0x7e), found {footer:#04x}", r.off - 1, idstr)
    (footer_id,) = r.unpack(">I", "section footer", idstr)
    if footer_id != section_id:
        raise MalformedStream(f"footer names section {footer_id}, not {section_id}", r.off - 4, idstr)
    return Section(idstr, instance_id, description, version, state, start)


def _footer(section_id: int) -> bytes:
    """A section's footer bytes (made once per id): a read compares them
    whole and takes the byte-by-byte path, with its precise errors, only
    when they differ."""
    foot = _FOOTERS.get(section_id)
    if foot is None:
        foot = struct.pack(">BI", FOOTER, section_id)
        if len(_FOOTERS) < _CACHED:
            _FOOTERS[section_id] = foot
    return foot


def _read_description(r: _Reader, sections: list[Section]) -> bytes | None:
    """The JSON trailer.  QEMU's loader ignores it; we check its framing, and
    parse it only when it is not exactly the one we would write."""
    if r.off == len(r.data):
        return None
    last, text = _LAST
    if len(r.data) - r.off == len(last) and len(text) <= MAX_DESCRIPTION and r.data.startswith(last, r.off):
        # A trailer vmstate wrote (the last one, usually this stream's):
        # whichever sections it describes, it is well framed and parses,
        # so the checks below would pass and return its text.
        r.off = len(r.data)
        return text
    key = _described_key(sections)
    expected = _described(sections, key)
    if len(r.data) - r.off == len(expected) and r.data.startswith(expected, r.off):
        r.off = len(r.data)
        text = _TEXTS.get(key)
        return text if text is not None else expected[5:]
    at = r.off
    where = "(JSON description)"
    (kind,) = r.unpack(">B", "description marker", where)
    if kind != VMDESCRIPTION:
        raise TrailingData(f"{len(r.data) - at} byte(s) after the end of the stream", at, "(after EOF)")
    (length,) = r.unpack(">I", "description length", where)
    if length > MAX_DESCRIPTION:
        raise MalformedStream(f"a {length}-byte JSON description is beyond the {MAX_DESCRIPTION} accepted", at + 1,
                              where)
    text = r.take(length, "JSON description", where)
    try:
        json.loads(text)
    except RecursionError:
        raise MalformedStream("the JSON description is nested deeper than any QEMU writes", at + 5, where) from None
    except (UnicodeDecodeError, ValueError) as err:
        raise MalformedStream(f"the JSON description does not parse: {err}", at + 5, where) from None
    if r.off != len(r.data):
        raise TrailingData(f"{len(r.data) - r.off} byte(s) after the JSON description", r.off, "(after EOF)")
    return text


# -- where a stream's parts are -------------------------------------------------------
# The framing's lengths, as values of the bytes a stream can lie about.
MACHINE_TYPE_LENGTH = Field("(machine type length)", UINT32, path="")
SECTION_NAME_LENGTH = Field("(section name length)", UINT8, path="")
DESCRIPTION_LENGTH = Field("(length)", UINT32, path="")


@dataclass(frozen=True)
class Span:
    """A FULL section's bytes: from its type byte (``start``) to after its
    footer (``end``); ``payload`` is where its fields begin."""

    idstr: str
    version: int
    start: int
    payload: int
    end: int


@dataclass
class Layout:
    """Where a stream's parts are: its FULL sections, every value in them
    and in the framing (lengths and counts apart), the EOF marker and the
    JSON description."""

    sections: list[Span] = field(default_factory=list)
    values: list[Leaf] = field(default_factory=list)
    lengths: list[Leaf] = field(default_factory=list)
    eof: int | None = None
    description: int | None = None

    @property
    def binary_end(self) -> int:
        """Where the bytes that the fields and framing live in end."""
        return self.description if self.description is not None else self.eof + 1 if self.eof is not None else 0


def _frame(entry: Field, path: str, data: bytes, offset: int) -> Leaf:
    size = entry.kind.size
    (value,) = struct.unpack_from(">" + entry.kind.fmt, data, offset)
    return Leaf(path, entry, offset, size, value, True)


def layout(data: bytes, describe: Callable[[str], Description | None]) -> Layout:
    """The layout of a valid stream, or of its device sections up to the
    first section ``describe(idstr)`` has no description for (QEMU's RAM)."""
    out = Layout()
    out.lengths.append(_frame(MACHINE_TYPE_LENGTH, "configuration (machine type length)", data, 9))
    (n,) = struct.unpack_from(">I", data, 9)
    off = 13 + n
    while off < len(data):
        kind = data[off]
        if kind == EOF:
            out.eof = off
            if off + 1 < len(data):
                out.lengths.append(_frame(DESCRIPTION_LENGTH, "JSON description (length)", data, off + 2))
                out.description = off + 6
            break
        if kind != FULL:
            break
        n = data[off + 5]
        idstr = data[off + 6:off + 6 + n].decode("ascii")
        description = describe(idstr)
        if description is None:
            break
        out.lengths.append(_frame(SECTION_NAME_LENGTH, f"{idstr} (section name length)", data, off + 5))
        (version,) = struct.unpack_from(">I", data, off + 6 + n + 4)
        payload = off + 6 + n + 8
        walk = walk_section(description, version, data, payload, idstr)
        while True:
            try:
                leaf = next(walk)
            except StopIteration as done:
                end = done.value + 5
                break
            if leaf.counter:
                out.lengths.append(leaf)
            if leaf.entry.kind is not None and leaf.entry is not SUBSECTION_NAME_LENGTH:
                out.values.append(leaf)
        out.sections.append(Span(idstr, version, off, payload, end))
        off = end
    return out


__all__ = ["Section", "Loaded", "Layout", "Span", "write", "write_items", "read", "layout", "StreamError",
           "UnknownSection", "MACHINE_TYPE"]
