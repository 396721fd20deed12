"""A whole stream as QEMU 7.2 writes it, read in one pass from a file object.

Everything a ``migrate "exec:cat > FILE"`` writes: the configuration
section (the machine type, and its subsections), the iterative sections
(``ram`` decoded record by record, pages skipped or handed to the caller;
others carried through to their footer), every device's FULL section,
commands, EOF and the JSON description.  A device section is read

- by vmstate's own schema when there is one (the timer devices: ``how`` is
  "schema", with the state decoded, for a restore);
- else by the stream's JSON description ("description"), found first at
  the end of the file when the file can seek;
- else carried opaquely up to its footer ("opaque").

A schema that does not fit (another machine type's layout) is reported on
the section, which is then read by the description if the stream has one.
Memory stays bounded whatever the stream claims: a window of at most one
record or section, the description (1 MiB at most) and what is decoded.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from vmstate.core.errors import (MalformedStream, NotAStream, StreamError, TrailingData, TruncatedStream,
                                 UnknownSection)
from vmstate.wire import described
from vmstate.wire.markers import COMMAND, CONFIGURATION, END, EOF_MARKER as EOF, FOOTER, FULL, PART, START, \
    SUBSECTION, VMDESCRIPTION
from vmstate.wire.ram import PageHandler, Ram, read_part
from vmstate.wire.section import check_version, load_section
from vmstate.wire.source import MAX_WINDOW, Source
from vmstate.wire.stream import MAGIC, MAX_DESCRIPTION, STREAM_VERSION, Lookup, _shown

#: The configuration section's subsections QEMU 7.2 may send, with how to
#: read their fields (savevm.c's vmstate_configuration).
_CONFIGURATION_SUBSECTIONS = ("configuration/target-page-bits", "configuration/capabilities",
                              "configuration/uuid")
#: MIG_CMD_* names (savevm.c), for a record of the commands a stream carried.
COMMANDS = {0: "INVALID", 1: "OPEN_RETURN_PATH", 2: "PING", 3: "POSTCOPY_ADVISE", 4: "POSTCOPY_LISTEN",
            5: "POSTCOPY_RUN", 6: "POSTCOPY_RAM_DISCARD", 7: "PACKAGED", 8: "ENABLE_COLO", 9: "POSTCOPY_RESUME",
            10: "RECV_BITMAP"}
_TYPES = {EOF, START, PART, END, FULL, CONFIGURATION, COMMAND}


@dataclass
class Part:
    """One record of the stream: where it is (``offset`` of its type byte,
    ``end`` after its footer) and what it is."""

    kind: str                       # configuration, start, part, end, section, command, eof
    offset: int
    end: int = 0
    section_id: int | None = None
    idstr: str | None = None
    instance_id: int | None = None
    version: int | None = None
    payload: tuple[int, int] | None = None
    how: str = ""                   # schema, description, opaque, ram
    values: list[described.Value] = field(default_factory=list)
    state: Any = None
    schema: Any = None
    raw: bytes | None = None        # a device section's payload
    note: str = ""
    command: str | None = None


@dataclass
class QemuStream:
    """What a stream held, in order, with the RAM records' summary and the
    JSON description (None for a stream without one)."""

    machine_type: str | None
    parts: list[Part]
    ram: Ram
    description: dict | None
    footers: bool | None
    size: int
    configuration: dict = field(default_factory=dict)

    def sections(self) -> list[Part]:
        return [p for p in self.parts if p.kind == "section"]

    def section(self, idstr: str, instance_id: int = 0) -> Part | None:
        return next((p for p in self.sections() if p.idstr == idstr and p.instance_id == instance_id), None)


def description_at_the_end(handle: BinaryIO) -> tuple[dict | None, int | None]:
    """The JSON description and its offset, found from the end of a file
    that can seek: the last ``0x06, be32 length, {...}`` whose length runs
    exactly to the end.  (None, None) when there is none or it does not
    parse; the reader checks later that it starts right after EOF."""
    try:
        start = handle.tell()
        size = handle.seek(0, os.SEEK_END)
    except (OSError, ValueError):
        return None, None
    try:
        span = min(size - start, MAX_DESCRIPTION + 5)
        handle.seek(size - span)
        tail = handle.read(span)
    finally:
        handle.seek(start)
    at = tail.find(bytes([VMDESCRIPTION]))
    while at >= 0:
        if at + 5 < len(tail) and tail[at + 5] == ord("{") and \
                struct.unpack_from(">I", tail, at + 1)[0] == len(tail) - at - 5:
            try:
                return json.loads(tail[at + 5:]), size - span + at
            except (RecursionError, ValueError, UnicodeDecodeError):
                return None, None
        at = tail.find(bytes([VMDESCRIPTION]), at + 1)
    return None, None


def read(handle: BinaryIO | bytes, lookup: Lookup | None = None, now: Callable[[list[Part]], int | None] | None = None,
         on_page: PageHandler | None = None, ram: Ram | None = None) -> QemuStream:
    """Read a whole QEMU stream.  ``lookup(idstr, instance_id)`` gives a
    schema and a state to decode a device section into (raising
    UnknownSection for one vmstate has no schema of); ``now(parts)`` the
    virtual time the schemas' rules judge by (None: unknown); ``on_page``
    is handed each RAM page as it is read; ``ram`` is the record of the RAM
    records to fill (one with ``marks`` set keeps their offsets)."""
    description, described_at = (None, None) if isinstance(handle, (bytes, bytearray)) else \
        description_at_the_end(handle)
    if isinstance(handle, (bytes, bytearray)):
        description, described_at = _description_in(bytes(handle))
    entries = {(d["name"], d.get("instance_id", 0)): d for d in described.devices(description)}
    src = Source(handle)
    out = QemuStream(None, [], ram if ram is not None else Ram(), description, None, 0)
    magic = src.take(4, "header", "(header)")
    if magic != MAGIC:
        raise NotAStream(f"magic {magic!r} is not {MAGIC!r}: not a QEMU migration stream", 0, "(header)")
    (version,) = src.unpack(">I", "header", "(header)")
    if version != STREAM_VERSION:
        raise NotAStream(f"stream format version {version} is not {STREAM_VERSION}", 4, "(header)")
    iterative: dict[int, str] = {}
    seen: set = set()
    while True:
        at = src.offset
        if src.at_end():
            raise TruncatedStream("stream ends before its EOF marker", at, "(section type)")
        (kind,) = src.unpack(">B", "section type", "(section type)")
        if kind == CONFIGURATION:
            if out.parts:
                raise MalformedStream("the configuration section must come first, once", at, "configuration")
            out.machine_type, out.configuration = _configuration(src)
            out.parts.append(Part("configuration", at, src.offset))
        elif kind in (START, FULL):
            place = f"(section {len(out.parts) + 1})"
            section_id, n = src.unpack(">IB", "section header", place)
            raw = src.take(n, "section name", place)
            try:
                idstr = raw.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedStream(f"section name {_shown(raw)} is not ASCII", at + 6, place) from None
            name = idstr or place
            instance_id, version = src.unpack(">II", "section header", name)
            if (idstr, instance_id, kind) in seen:
                raise MalformedStream(f"section {idstr!r} instance {instance_id} appears twice", at, name)
            seen.add((idstr, instance_id, kind))
            part = Part("start" if kind == START else "section", at, section_id=section_id, idstr=idstr,
                        instance_id=instance_id, version=version)
            if kind == START:
                iterative[section_id] = idstr
                _iterative(src, part, out, on_page)
            else:
                _device(src, part, out, entries.get((idstr, instance_id)), lookup, now)
            out.parts.append(part)
        elif kind in (PART, END):
            (section_id,) = src.unpack(">I", "section header", "(iterative section)")
            if section_id not in iterative:
                raise MalformedStream(f"part of section id {section_id}, which no START section began", at,
                                      "(iterative section)")
            part = Part("part" if kind == PART else "end", at, section_id=section_id, idstr=iterative[section_id])
            _iterative(src, part, out, on_page)
            out.parts.append(part)
        elif kind == COMMAND:
            cmd, length = src.unpack(">HH", "command", "(command)")
            src.skip(length, "command's data", "(command)")
            out.parts.append(Part("command", at, src.offset, command=COMMANDS.get(cmd, f"command {cmd}")))
        elif kind == EOF:
            out.parts.append(Part("eof", at, src.offset))
            break
        else:
            raise MalformedStream(f"unknown section type {kind:#04x}", at, "(section type)")
    _trailer(src, out, described_at)
    return out


def _description_in(data: bytes) -> tuple[dict | None, int | None]:
    import io

    return description_at_the_end(io.BytesIO(data))


def _configuration(src: Source) -> tuple[str, dict]:
    (length,) = src.unpack(">I", "configuration", "configuration")
    raw = src.take(length, "machine type", "configuration")
    try:
        machine = raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedStream(f"machine type {_shown(raw)} is not ASCII", src.offset - length,
                              "configuration") from None
    found: dict = {}
    while src.peek_byte() == SUBSECTION:
        at = src.offset
        _, n = src.unpack(">BB", "configuration subsection", "configuration")
        name = src.take(n, "configuration subsection name", "configuration").decode("ascii", "replace")
        src.unpack(">I", "configuration subsection version", name)
        if name == "configuration/target-page-bits":
            found["target_page_bits"] = src.unpack(">I", "target page bits", name)[0]
        elif name == "configuration/capabilities":
            (count,) = src.unpack(">I", "capability count", name)
            caps = []
            for _ in range(min(count, 1 << 10)):
                (k,) = src.unpack(">B", "capability name length", name)
                caps.append(src.take(k, "capability name", name).decode("ascii", "replace"))
            found["capabilities"] = caps
        elif name == "configuration/uuid":
            found["uuid"] = src.take(16, "uuid", name).hex()
        else:
            raise MalformedStream(f"configuration subsection {name!r} is none QEMU 7.2 sends", at, "configuration")
    return machine, found


def _footer(src: Source, part: Part, out: QemuStream) -> None:
    """The footer after a section: 0x7e and the section id, which streams of
    old machine types (pc-i440fx-2.3 and before) leave out; one stream has
    them on every section or on none."""
    nxt = src.peek_byte()
    name = part.idstr or "(section)"
    if out.footers is None:
        out.footers = nxt == FOOTER
    if out.footers:
        at = src.offset
        marker, section_id = src.unpack(">BI", "section footer", name)
        if marker != FOOTER:
            raise MalformedStream(f"section footer expected (0x7e), found {marker:#04x}: the payload of {name} "
                                  f"is not what its description says", at, name)
        if section_id != part.section_id:
            raise MalformedStream(f"footer names section {section_id}, not {part.section_id}", at + 1, name)
    part.end = src.offset


def _iterative(src: Source, part: Part, out: QemuStream, on_page: PageHandler | None) -> None:
    start = src.offset
    if part.idstr == "ram":
        if part.kind == "start" and part.version != 4:
            raise MalformedStream(f"ram version {part.version}: QEMU 7.2 writes 4", start - 4, "ram")
        read_part(src, out.ram, "ram", on_page)
        part.how = "ram"
    else:
        _opaque(src, part, out)
    part.payload = (start, src.offset)
    _footer(src, part, out)


def _opaque(src: Source, part: Part, out: QemuStream) -> None:
    """A section nothing describes, carried up to its footer: the first
    footer with its id that a section type or the end follows."""
    name = part.idstr or "(section)"
    if out.footers is False:
        raise MalformedStream(f"{name} has no schema and no JSON description, and this stream has no footers "
                              f"to find its end by", src.offset, name)
    footer = bytes([FOOTER]) + struct.pack(">I", part.section_id)
    size = 1 << 16
    while True:
        buf, pos, have = src.available(size)
        at = buf.find(footer, pos, pos + have)
        while at >= 0:
            after = at + 5
            if after >= pos + have and have < size or after < len(buf) and buf[after] in _TYPES:
                part.raw = src.take(at - pos, "section payload", name)
                part.how = "opaque"
                part.note = "no schema and no JSON description: carried as bytes up to its footer"
                return
            at = buf.find(footer, at + 1, pos + have)
        if have < size or size >= MAX_WINDOW:
            raise MalformedStream(f"{name}'s footer (0x7e, id {part.section_id}) is nowhere after it", src.offset,
                                  name)
        size *= 4


def _device(src: Source, part: Part, out: QemuStream, entry: dict | None, lookup: Lookup | None,
            now: Callable[[list[Part]], int | None] | None) -> None:
    start = src.offset
    part.payload = (start, start)
    problem = None
    if lookup is not None:
        try:
            schema, state, highest = lookup(part.idstr, part.instance_id)
        except UnknownSection:
            schema = None
        if schema is not None:
            time = now(out.parts) if now else None
            try:
                end = _by_schema(src, part, schema, state, highest, time)
            except StreamError as err:
                problem = err
                if time is not None and _fits_at_no_time(src, part, lookup):
                    problem = type(err)(f"{err.message} (judged at the stream's time, {time} ns: a stream from "
                                        f"QEMU under qtest does not carry its clock; give the time it was saved "
                                        f"at, vmstate's --clock)", err.offset, err.path)
                if entry is None:
                    raise problem from None
            else:
                part.how, part.schema, part.state = "schema", schema, state
                _finish(src, part, out, start, end)
                return
    if entry is not None:
        (values, stop), base = _in_a_window(src, lambda buf, pos, end: described.read(entry, buf, pos, end,
                                                                                       part.idstr))
        part.values = [described.Value(v.path, v.offset + base, v.size, v.type, v.value) for v in values]
        part.how = "description"
        if problem is not None:
            part.note = f"vmstate's schema refuses this section, read by its description instead: {problem}"
        _finish(src, part, out, start, stop + base)
        return
    _opaque(src, part, out)
    part.payload = (start, src.offset)
    _footer(src, part, out)


def _fits_at_no_time(src: Source, part: Part, lookup: Lookup) -> bool:
    """Whether the payload loads (into another fresh state) when no rule on
    the time is judged: then the time alone made it fail."""
    schema, state, highest = lookup(part.idstr, part.instance_id)
    try:
        _by_schema(src, part, schema, state, highest, None)
    except StreamError:
        return False
    return True


def _in_a_window(src: Source, parse: Callable):
    """``parse(buffer, position, end)`` over a window of the stream from the
    read position, made larger while the parse runs out of bytes the stream
    has; its result and the offset of ``buffer[0]``, errors moved to their
    offsets in the stream."""
    size = 1 << 16
    while True:
        buf, pos, have = src.available(size)
        base = src.offset - pos
        try:
            return parse(buf, pos, pos + have), base
        except TruncatedStream as err:
            if have < size or size >= MAX_WINDOW:
                raise err.shifted(base) from None
            size *= 4
        except StreamError as err:
            raise err.shifted(base) from None


def _by_schema(src: Source, part: Part, schema, state, highest: int | None, now: int | None) -> int:
    """Load the payload with vmstate's schema; the offset after it."""
    check_version(schema, part.version, src.offset - 4, part.idstr, highest)
    end, base = _in_a_window(src, lambda buf, pos, stop: load_section(schema, part.version, buf[:stop], pos, state,
                                                                      now, part.idstr))
    return end + base


def _finish(src: Source, part: Part, out: QemuStream, start: int, end: int) -> None:
    part.raw = src.take(end - start, "section payload", part.idstr)
    part.payload = (start, end)
    _footer(src, part, out)


def _trailer(src: Source, out: QemuStream, described_at: int | None) -> None:
    """After EOF: nothing (a stream without a description), or the JSON
    description, which must be the one found at the end."""
    at = src.offset
    if src.at_end():
        if out.description is not None:
            raise MalformedStream("the stream ends at EOF, but a JSON description was found before it",
                                  described_at or at, "(JSON description)")
        out.size = at
        return
    (kind,) = src.unpack(">B", "description marker", "(JSON description)")
    if kind != VMDESCRIPTION:
        raise TrailingData(f"bytes after the end of the stream (a {kind:#04x})", at, "(after EOF)")
    (length,) = src.unpack(">I", "description length", "(JSON description)")
    if length > MAX_DESCRIPTION:
        raise MalformedStream(f"a {length}-byte JSON description is beyond the {MAX_DESCRIPTION} accepted", at + 1,
                              "(JSON description)")
    text = src.take(length, "JSON description", "(JSON description)")
    if described_at is None:
        try:
            out.description = json.loads(text)
        except RecursionError:
            raise MalformedStream("the JSON description is nested deeper than any QEMU writes", at + 5,
                                  "(JSON description)") from None
        except (UnicodeDecodeError, ValueError) as err:
            raise MalformedStream(f"the JSON description does not parse: {err}", at + 5,
                                  "(JSON description)") from None
    elif described_at != at:
        raise MalformedStream(f"the JSON description found at {described_at:#x} is not where EOF puts it",
                              at, "(JSON description)")
    if not src.at_end():
        raise TrailingData("bytes after the JSON description", src.offset, "(after EOF)")
    out.size = src.offset
