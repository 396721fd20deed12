"""The streams QEMU itself writes: read with vmstate's schemas for the timer
devices, restored into a pc machine, and written so that QEMU loads them.

A real stream carries the whole machine (RAM, CPUs, every device); vmstate
models the timer devices of ``pc-i440fx-7.2`` and decodes their sections by
its own schemas, the rest by the stream's JSON description
(:mod:`vmstate.wire.qemu_stream`).  Under qtest QEMU's virtual clock is not
the ``timer`` section's (the section holds a host-derived value), so the
time a stream restores at may be given (``clock``) where the stream does
not carry it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, BinaryIO

from schemas import SECTIONS, by_idstr
from vmstate.core.clock import TimerState
from vmstate.core.errors import MalformedStream, UnknownSection
from vmstate.core.state import owned
from vmstate.machine.explain import units
from vmstate.machine.migration import Schemas, apply
from vmstate.machine.pc import PcMachine
from vmstate.wire import qemu_stream, stream
from vmstate.wire.ram import PageHandler
from vmstate.wire.section import walk_section

#: The machine types whose timer sections vmstate's schemas describe, and
#: that a restore builds a machine for.
MACHINE_TYPES = ("pc-i440fx-7.2", "pc")
#: The sections vmstate reads by its own schemas.
TIMER_SECTIONS = tuple(schema.idstr for schema in SECTIONS)


def read(handle: BinaryIO | bytes, clock: int | None = None, sections: Schemas = SECTIONS,
         on_page: PageHandler | None = None, **options) -> qemu_stream.QemuStream:
    """A real stream, its timer sections decoded by vmstate's schemas into
    states of a fresh machine built with ``options``; their rules judged at
    ``clock`` when given, else at the ``timer`` section's time."""
    machine = PcMachine(**options)

    def lookup(idstr: str, instance_id: int):
        schema = by_idstr(idstr, sections)
        if schema is None or instance_id != 0 or schema.device not in machine.devices:
            raise UnknownSection(f"no schema for {idstr!r} instance {instance_id}", None, idstr)
        return schema.description, owned(machine.devices[schema.device].get_state), None

    def now(parts) -> int | None:
        if clock is not None:
            return clock
        return next((p.state.cpu_clock_offset for p in parts if isinstance(p.state, TimerState)), None)

    return qemu_stream.read(handle, lookup, now, on_page)


def _schema_sections(real: qemu_stream.QemuStream, sections: Schemas) -> list[stream.Section]:
    """The timer sections vmstate restores, or MalformedStream for a stream
    of a machine vmstate does not build or one its schemas did not read."""
    if real.machine_type is not None and real.machine_type not in MACHINE_TYPES:
        raise MalformedStream(f"machine type {real.machine_type!r}: vmstate restores {MACHINE_TYPES[0]} streams "
                              f"(its schemas are that machine's)", 13, "configuration")
    misfit = [p for p in real.sections() if by_idstr(p.idstr or "", sections) is not None and p.how != "schema"]
    if misfit:
        first = misfit[0]
        raise MalformedStream(f"{first.idstr} could not be read by vmstate's schema: {first.note or first.how}",
                              first.payload[0] if first.payload else first.offset, first.idstr)
    return [stream.Section(p.idstr, p.instance_id, p.schema, p.version, p.state, p.payload[0])
            for p in real.sections() if p.how == "schema"]


def restore(real: qemu_stream.QemuStream, clock: int | None = None, sections: Schemas = SECTIONS,
            **options) -> PcMachine:
    """A fresh machine with the timer sections of ``real`` loaded, at
    ``clock`` (else at the stream's ``timer`` time).  Sections the stream
    leaves out keep their reset state, as in QEMU."""
    chosen = _schema_sections(real, sections)
    if clock is not None:
        chosen = [dataclasses.replace(s, state=dataclasses.replace(s.state, cpu_clock_offset=clock))
                  if isinstance(s.state, TimerState) else s for s in chosen]
    machine = PcMachine(**options)
    if clock is not None:
        machine.clock.load(clock)
    apply(stream.Loaded(real.machine_type or MACHINE_TYPES[0], chosen, None), machine, sections)
    return machine


def restore_as_the_harness_does(real: qemu_stream.QemuStream, now: int, sections: Schemas = SECTIONS,
                                **options) -> PcMachine:
    """The stream loaded as the reference harness loads one into a QEMU under
    qtest: at clock 0 (the ``timer`` section is not that clock), then
    ``clock_set`` to ``now``, what falls due on the way firing unseen."""
    chosen = [s for s in _schema_sections(real, sections) if not isinstance(s.state, TimerState)]
    machine = PcMachine(**options)
    apply(stream.Loaded(real.machine_type or MACHINE_TYPES[0], chosen, None), machine, sections)
    machine.clock_set(now)
    return machine


def _flat(part: qemu_stream.Part) -> list[tuple[str, int, Any]]:
    """(path, offset, raw value) of every value of a section, paths as QEMU's
    JSON description names them (``timer[2].cmp``, ``hpet/offset.hpet_offset``)."""
    if part.how == "description":
        return [(v.path, v.offset, v.value) for v in part.values]
    if part.how != "schema":
        return []
    base, out = part.payload[0], []
    walk = walk_section(part.schema, part.version, part.raw, 0, part.idstr)
    try:
        while True:
            leaf = next(walk)
            if leaf.counter and leaf.path.endswith("(name length)"):
                continue
            key = leaf.path[len(part.idstr):]
            key = key[1:] if key.startswith(".") else part.schema.name + key
            out.append((key, leaf.offset + base, leaf.value))
    except StopIteration:
        return out


def report(real: qemu_stream.QemuStream, clock: int | None = None) -> list[dict]:
    """Every record of a stream as ``inspect`` shows it: what it is, where
    it is, how it was read, its fields (path -> raw value) and, for the
    timer sections, their units."""
    now = clock
    if now is None:
        timer = real.section("timer")
        now = getattr(timer.state, "cpu_clock_offset", None) if timer is not None else None
    out = []
    for part in real.parts:
        item = {"kind": part.kind, "offset": part.offset, "length": (part.end or part.offset + 1) - part.offset}
        if part.idstr is not None:
            item.update(section=part.idstr, instance_id=part.instance_id, section_id=part.section_id)
        if part.version is not None:
            item["version"] = part.version
        if part.command:
            item["command"] = part.command
        if part.kind == "section":
            flat = _flat(part)
            values = {path: value for path, _, value in flat}
            item.update(read_by=part.how, fields={p: jsonable(v) for p, v in values.items()},
                        offsets={p: at for p, at, _ in flat}, units=units(part.idstr, values, now))
            if part.how == "opaque":
                item["payload"] = len(part.raw or b"")
        if part.note:
            item["note"] = part.note
        out.append(item)
    return out


def jsonable(value: Any) -> Any:
    """A raw value as JSON holds it: integers as integers, bytes as hex."""
    return value.hex() if isinstance(value, (bytes, bytearray)) else value


@dataclass
class Opened:
    """A stream a user gave: a raw QEMU stream (``format`` "qemu") or the
    stream inside a vmstate snapshot ("snapshot", with its ``header``),
    read; ``options`` are the machine options it was read with."""

    format: str
    stream: qemu_stream.QemuStream
    options: dict
    header: dict | None = None
    clock: int | None = None


class _Prefixed:
    """A handle that cannot seek, with the bytes already read put back."""

    def __init__(self, prefix: bytes, handle):
        self.prefix, self.handle = prefix, handle

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            head, self.prefix = (self.prefix, b"") if n < 0 or n >= len(self.prefix) else \
                (self.prefix[:n], self.prefix[n:])
            return head + (self.handle.read(n - len(head)) if n < 0 or n > len(head) else b"")
        return self.handle.read(n)


def open_stream(source, clock: int | None = None, on_page: PageHandler | None = None, **options) -> Opened:
    """Read the raw QEMU stream or vmstate snapshot at ``source`` (a path or
    ``-``), telling them apart by their magic.  A snapshot's own machine
    options and clock are used unless given; its errors carry offsets in the
    file."""
    from vmstate.core.inputs import MAX_INPUT, open_input, read_bounded
    from vmstate.machine.migration import snapshot_options
    from vmstate.wire import snapshot

    handle = open_input(source, "stream or snapshot")
    try:
        seekable = handle.seekable()
        magic = handle.read(len(snapshot.MAGIC))
        if magic == snapshot.MAGIC:
            snap = snapshot.decode(magic + read_bounded(handle, MAX_INPUT))
            chosen = {**snapshot_options(snap), **{k: v for k, v in options.items() if v is not None}}
            with snap.in_the_file():
                real = read(snap.stream, clock, on_page=on_page, **chosen)
            return Opened("snapshot", real, chosen, snap.header, clock)
        if seekable:
            handle.seek(0)
        else:
            handle = _Prefixed(magic, handle)
        chosen = {k: v for k, v in options.items() if v is not None}
        return Opened("qemu", read(handle, clock, on_page=on_page, **chosen), chosen, None, clock)
    finally:
        if source != "-":
            getattr(handle, "handle", handle).close()


def reencode(real: qemu_stream.QemuStream) -> list[dict]:
    """Every section vmstate decoded, written again from what was decoded:
    by its schema from the state, or by the JSON description from the
    values; each with whether the bytes are the ones read (and where they
    first differ)."""
    from vmstate.wire import described
    from vmstate.wire.section import save_section

    entries = {(d["name"], d.get("instance_id", 0)): d for d in described.devices(real.description)}
    out = []
    for part in real.sections():
        if part.how == "schema":
            pieces: list = []
            save_section(part.schema, part.version, part.state, pieces)
            again = b"".join(pieces)
        elif part.how == "description":
            again = described.write(entries[(part.idstr, part.instance_id)], part.values)
        else:
            out.append({"section": part.idstr, "instance_id": part.instance_id, "read_by": part.how,
                        "identical": None})
            continue
        first = next((i for i, (a, b) in enumerate(zip(again, part.raw)) if a != b), None)
        if first is None and len(again) != len(part.raw):
            first = min(len(again), len(part.raw))
        item = {"section": part.idstr, "instance_id": part.instance_id, "read_by": part.how,
                "identical": first is None, "length": len(part.raw)}
        if first is not None:
            item["differs_at"] = part.payload[0] + first
        out.append(item)
    return out


def compare(a: Opened, b: Opened, pages_a: dict, pages_b: dict, clock: int | None = None) -> dict:
    """What differs between two streams, section by section and field by
    field (DeepDiff on the flat fields), with the RAM pages that differ
    when both carry RAM (``pages_*``: (block, offset) -> digest)."""
    from deepdiff import DeepDiff

    def keyed(opened: Opened) -> dict:
        return {(i["section"], i["instance_id"]): i for i in report(opened.stream, clock) if i["kind"] == "section"}

    left, right = keyed(a), keyed(b)
    name = lambda key: key[0] if not key[1] else f"{key[0]} (instance {key[1]})"
    out: dict = {"only_in_a": [name(k) for k in left if k not in right],
                 "only_in_b": [name(k) for k in right if k not in left], "sections": []}
    for key in (k for k in left if k in right):
        x, y = left[key], right[key]
        changes = []
        diff = DeepDiff(x["fields"], y["fields"], verbose_level=2)
        for kind in ("values_changed", "type_changes"):
            for path, change in diff.get(kind, {}).items():
                field = path[len("root['"):-2] if path.startswith("root['") else path
                changes.append({"field": field, "a": change["old_value"], "b": change["new_value"],
                                "a_means": x["units"].get(field), "b_means": y["units"].get(field)})
        for kind, side in (("dictionary_item_removed", "a"), ("dictionary_item_added", "b")):
            for path, value in diff.get(kind, {}).items():
                field = path[len("root['"):-2]
                changes.append({"field": field, "a": value if side == "a" else None,
                                "b": value if side == "b" else None})
        if changes or x.get("version") != y.get("version"):
            out["sections"].append({"section": name(key), "versions": [x.get("version"), y.get("version")]
                                    if x.get("version") != y.get("version") else None, "fields": changes})
    if pages_a or pages_b:
        differ = sorted(k for k in set(pages_a) | set(pages_b) if pages_a.get(k) != pages_b.get(k))
        out["ram"] = {"pages_a": len(pages_a), "pages_b": len(pages_b), "differ": len(differ),
                      "first": [f"{block}+{offset:#x}" for block, offset in differ[:8]]}
    out["identical"] = not (out["only_in_a"] or out["only_in_b"] or out["sections"] or
                            out.get("ram", {}).get("differ"))
    return out
