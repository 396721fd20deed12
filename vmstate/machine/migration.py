"""Save a running machine to a migration stream, and restore one.

``save`` writes each device at the version its destination needs (QEMU's
machine-type compatibility settings, here a ``versions`` map).  ``restore``
decodes and validates the whole stream into copies of the destination's
states first, and applies them only when everything has loaded: a stream
that fails anywhere leaves the destination exactly as it was.  Every
device, the virtual clock included, is a :class:`vmstate.core.device.Device`
named as its section's schema says, so none is a special case here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from schemas import SECTIONS, SectionSchema, by_idstr
from vmstate.core.clock import TimerState
from vmstate.core.errors import MalformedStream, UnknownSection, UsageError
from vmstate.core.state import owned
from vmstate.machine.names import format_versions
from vmstate.machine.pc import PcMachine, option_error
from vmstate.wire import stream

Schemas = list[SectionSchema]


@dataclass(frozen=True)
class Point:
    """One migration: at which trace line, the versions the source writes,
    the highest the destination loads (a device left out: current), and the
    host time that passes while the machine is stopped."""

    line: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    highest: dict[str, int] = field(default_factory=dict)
    downtime: int = 0

    def words(self) -> list[str]:
        """The point as a ``migrate`` line's options."""
        words = []
        if self.versions:
            words.append(f"from={format_versions(self.versions)}")
        if self.highest:
            words.append(f"to={format_versions(self.highest)}")
        return words + [f"downtime={self.downtime}"]


def _version_for(schema: SectionSchema, versions: dict[str, int]) -> int:
    description = schema.description
    version = versions.get(schema.device, description.version)
    if not description.minimum <= version <= description.version:
        raise UsageError(f"{schema.device} can be written as versions {description.minimum}.."
                         f"{description.version}, not {version}")
    return version


def _known(names, schemas: Schemas, what: str) -> None:
    unknown = set(names) - {s.device for s in schemas}
    if unknown:
        raise UsageError(f"{what}: no section for {', '.join(sorted(unknown))}")


def save(machine: PcMachine, versions: dict[str, int] | None = None, sections: Schemas = SECTIONS) -> bytes:
    """The machine's device state as a QEMU 7.2 migration stream.
    ``sections`` replaces the schemas (the tests plant broken ones)."""
    versions = versions or {}
    _known(versions, sections, "versions")
    described = {s.device for s in sections}
    missing = [name for name in machine.devices if name not in described]
    if missing:
        raise UsageError(f"no schema for {', '.join(missing)}: its state cannot be saved")
    items = [(schema.idstr, 0, schema.description, _version_for(schema, versions),
              machine.devices[schema.device].get_state())
             for schema in sections if schema.device in machine.devices]
    return stream.write_items(items)


def decode(data: bytes, machine: PcMachine, highest: dict[str, int] | None = None,
           sections: Schemas = SECTIONS) -> stream.Loaded:
    """Decode and validate a stream against ``machine`` without changing it.
    ``highest`` limits the versions each device loads, as an older
    destination would."""
    highest = highest or {}
    _known(highest, sections, "highest versions")

    def lookup(idstr: str, instance_id: int):
        schema = by_idstr(idstr, sections)
        if schema is None or instance_id != 0 or schema.device not in machine.devices:
            raise UnknownSection(f"no device {idstr!r} instance {instance_id} on this machine", None, idstr)
        return schema.description, owned(machine.devices[schema.device].get_state), highest.get(schema.device)

    def now(decoded) -> int | None:
        """The stream's virtual time: its clock's, once decoded."""
        for section in decoded:
            if isinstance(section.state, TimerState):
                return section.state.cpu_clock_offset
        return None

    return stream.read(data, lookup, now, machine.clock.now)


def apply(loaded: stream.Loaded, machine: PcMachine, sections: Schemas = SECTIONS) -> None:
    """Load the decoded states into their devices, in the machine's order
    of sections (the clock first, whatever the stream's order), so that
    each device's post_load sees the stream's time."""
    order = {schema.idstr: i for i, schema in enumerate(sections)}
    for section in sorted(loaded.sections, key=lambda s: order[s.idstr]):
        machine.devices[by_idstr(section.idstr, sections).device].set_state(section.state)


def restore(data: bytes, machine: PcMachine | None = None, highest: dict[str, int] | None = None,
            sections: Schemas = SECTIONS, clock: int | None = None, **options) -> PcMachine:
    """Restore a stream as a QEMU destination loads it: into a machine just
    started with the same options.  ``machine``, when given, is reset to
    that first, so no state of its own outlives the load (an armed HPET
    the stream does not mention, comparators beyond the stream's count);
    when None, a PcMachine is built with ``options``.  ``clock`` is the
    virtual time for a stream that does not carry it (a QEMU under qtest
    does not: its clock is not in the stream).  A stream that fails to load
    leaves ``machine`` exactly as it was."""
    target = PcMachine(**(machine.options if machine is not None else options))
    if clock is not None:
        target.clock.load(clock)
    loaded = decode(data, target, highest, sections)
    if machine is not None:
        machine.reinitialize()
        if clock is not None:
            machine.clock.load(clock)
        target = machine
    apply(loaded, target, sections)
    return target


def migrate(machine: PcMachine, point: Point = Point(), sections: Schemas = SECTIONS) -> tuple[PcMachine, bytes]:
    """Live migration as QEMU does it: stop, save, load into a fresh machine
    of the same configuration, go on.  Virtual time comes back from the
    stream; host time carries on from the source's and moves by the
    downtime.  Returns the destination and the stream."""
    data = save(machine, point.versions, sections)
    twin = restore(data, highest=point.highest, sections=sections, **machine.options)
    twin.carry_on_from(machine, point.downtime)
    return twin, data


def migrate_as_the_reference_does(machine: PcMachine, sections: Schemas = SECTIONS) -> PcMachine:
    """Migration the way the reference harness performs it on QEMU under
    qtest: the qtest clock is not in the stream, so the destination loads
    with its clock still at 0 (post_load code that reads the clock sees 0),
    and is then ``clock_set`` to the source's time, firing what falls due on
    the way with interrupts not intercepted.  Only for comparing with
    recordings of the reference; :func:`migrate` is what a real destination
    does."""
    twin = PcMachine(**machine.options)
    loaded = decode(save(machine, sections=sections), twin, sections=sections)
    loaded.sections = [s for s in loaded.sections if not isinstance(s.state, TimerState)]
    apply(loaded, twin, sections)
    twin.clock_set(machine.clock.now)
    return twin


def snapshot_options(snap) -> dict:
    """The machine options a snapshot's header names, each judged as the
    machine judges it; a bad one is refused naming its header key."""
    options = snap.machine_options
    for key, value in options.items():
        problem = option_error(key, value)
        if problem:
            raise MalformedStream(problem, 12, f"header.machine.{key}")
    return options
