"""Save a running machine to a migration stream, and restore one.

``save`` writes each device at the version its destination needs (QEMU's
machine-type compatibility settings, here a ``versions`` map).  ``restore``
decodes and validates the whole stream into copies of the destination's
states first, and applies them only when everything has loaded: a stream
that fails anywhere leaves the destination exactly as it was.
"""
from __future__ import annotations

import copy

from schemas import SECTIONS, by_idstr
from schemas.timer import TimerState
from vmstate import stream
from vmstate.errors import UnknownSection, UsageError


def _version_for(schema, versions: dict[str, int]) -> int:
    description = schema.description
    version = versions.get(schema.device or schema.idstr, versions.get(description.name, description.version))
    if not description.minimum <= version <= description.version:
        raise UsageError(f"{description.name} can be written as versions {description.minimum}.."
                         f"{description.version}, not {version}")
    return version


def save(machine, versions: dict[str, int] | None = None) -> bytes:
    """The machine's device state as a QEMU 7.2 migration stream."""
    versions = versions or {}
    sections = []
    for schema in SECTIONS:
        if schema.device is None:
            state = TimerState(0, machine.clock.now)
        elif schema.device in machine.devices:
            state = machine.devices[schema.device].get_state()
        else:
            continue
        sections.append(stream.Section(schema.idstr, 0, schema.description,
                                       _version_for(schema, versions), state))
    return stream.write(sections)


def decode(data: bytes, machine) -> stream.Loaded:
    """Decode and validate a stream against ``machine`` without changing it."""

    def lookup(idstr: str, instance_id: int):
        schema = by_idstr(idstr)
        if schema is None or instance_id != 0 or (schema.device is not None and schema.device not in machine.devices):
            raise UnknownSection(f"no device {idstr!r} instance {instance_id} on this machine", None, idstr)
        if schema.device is None:
            return schema.description, TimerState(0, machine.clock.now)
        return schema.description, copy.deepcopy(machine.devices[schema.device].get_state())

    def now(sections) -> int:
        for section in sections:
            if section.idstr == "timer":
                return section.state.cpu_clock_offset
        return machine.clock.now

    return stream.read(data, lookup, now)


def apply(loaded: stream.Loaded, machine) -> None:
    for section in loaded.sections:
        if section.idstr == "timer":
            machine.clock.load(section.state.cpu_clock_offset)
    for section in loaded.sections:
        schema = by_idstr(section.idstr)
        if schema.device is not None:
            machine.devices[schema.device].set_state(section.state)


def restore(data: bytes, machine=None, **options):
    """Restore a stream into ``machine`` (a fresh PcMachine built with
    ``options`` when None) and return it."""
    if machine is None:
        from vmstate.machine import PcMachine
        machine = PcMachine(**options)
    apply(decode(data, machine), machine)
    return machine
