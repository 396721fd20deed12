"""Save a running machine to a migration stream, and restore one.

``save`` writes each device at the version its destination needs (QEMU's
machine-type compatibility settings, here a ``versions`` map).  ``restore``
decodes and validates the whole stream into copies of the destination's
states first, and applies them only when everything has loaded: a stream
that fails anywhere leaves the destination exactly as it was.
"""
from __future__ import annotations

from schemas import SECTIONS, SectionSchema
from schemas.timer import TimerState
from vmstate.wire import stream
from vmstate.core.state import copy_state
from vmstate.core.errors import UnknownSection, UsageError


def _version_for(schema, versions: dict[str, int]) -> int:
    description = schema.description
    version = versions.get(schema.device or schema.idstr, versions.get(description.name, description.version))
    if not description.minimum <= version <= description.version:
        raise UsageError(f"{description.name} can be written as versions {description.minimum}.."
                         f"{description.version}, not {version}")
    return version


Schemas = list[SectionSchema]


def _find(sections: Schemas, idstr: str) -> SectionSchema | None:
    for schema in sections:
        if schema.idstr == idstr:
            return schema
    return None


def save(machine, versions: dict[str, int] | None = None, sections: Schemas = SECTIONS) -> bytes:
    """The machine's device state as a QEMU 7.2 migration stream.
    ``sections`` replaces the schemas (the tests plant broken ones)."""
    versions = versions or {}
    schemas = sections
    unknown = versions and (set(versions) - {s.device or s.idstr for s in schemas}
                            - {s.description.name for s in schemas})
    if unknown:
        raise UsageError(f"no section for {', '.join(sorted(unknown))}")
    described = {s.device for s in schemas}
    missing = [name for name in machine.devices if name not in described]
    if missing:
        raise UsageError(f"no schema for {', '.join(missing)}: its state cannot be saved")
    sections = []
    for schema in schemas:
        if schema.device is None:
            state = TimerState(0, machine.clock.now)
        elif schema.device in machine.devices:
            state = machine.devices[schema.device].get_state()
        else:
            continue
        description = schema.description
        if versions or not description.minimum <= description.version:
            version = _version_for(schema, versions)
        else:
            version = description.version
        sections.append((schema.idstr, 0, description, version, state))
    return stream.write_items(sections)


def decode(data: bytes, machine, highest: dict[str, int] | None = None,
           sections: Schemas = SECTIONS) -> stream.Loaded:
    """Decode and validate a stream against ``machine`` without changing it.
    ``highest`` limits the versions each device loads, as an older
    destination would."""
    highest = highest or {}

    def lookup(idstr: str, instance_id: int):
        schema = _find(sections, idstr)
        if schema is None or instance_id != 0 or (schema.device is not None and schema.device not in machine.devices):
            raise UnknownSection(f"no device {idstr!r} instance {instance_id} on this machine", None, idstr)
        limit = highest.get(schema.device or schema.idstr, highest.get(schema.description.name))
        if schema.device is None:
            return schema.description, TimerState(0, machine.clock.now), limit
        get_state = machine.devices[schema.device].get_state
        state = get_state()
        return schema.description, state if getattr(get_state, "fresh_state", False) else copy_state(state), limit

    def now(sections) -> int:
        for section in sections:
            if section.idstr == "timer":
                return section.state.cpu_clock_offset
        return machine.clock.now

    return stream.read(data, lookup, now)


def apply(loaded: stream.Loaded, machine, sections: Schemas = SECTIONS, clock: bool = True) -> None:
    """Load the decoded states; ``clock=False`` leaves the virtual clock where
    it is, as QEMU under qtest does (its clock is not in the stream)."""
    for section in loaded.sections:
        if section.idstr == "timer" and clock:
            machine.clock.load(section.state.cpu_clock_offset)
    for section in loaded.sections:
        schema = _find(sections, section.idstr)
        if schema.device is not None:
            machine.devices[schema.device].set_state(section.state)


def restore(data: bytes, machine=None, highest: dict[str, int] | None = None,
            sections: Schemas = SECTIONS, **options):
    """Restore a stream into ``machine`` (a fresh PcMachine built with
    ``options`` when None) and return it."""
    if machine is None:
        from vmstate.machine.pc import PcMachine
        machine = PcMachine(**options)
    apply(decode(data, machine, highest, sections), machine, sections)
    return machine


def parse_versions(text: str) -> dict[str, int]:
    """``i8254:2,hpet:1`` (or with ``=``) as a versions map."""
    versions: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        sep = ":" if ":" in item else "="
        name, found, value = item.partition(sep)
        if not found or not name or not value.isdigit():
            raise UsageError(f"versions are DEVICE:N,..., not {item!r}")
        versions[name] = int(value)
    return versions


def migrate(machine, versions: dict[str, int] | None = None, downtime: int = 0,
            highest: dict[str, int] | None = None, sections: Schemas = SECTIONS):
    """Live migration as QEMU does it: stop, save, load into a fresh machine
    of the same configuration, go on.  Virtual time comes back from the
    stream; host time carries on from the source's and moves by the downtime."""
    data = save(machine, versions, sections)
    twin = restore(data, highest=highest, sections=sections, **machine.options)
    twin.host.paused_total = machine.host.paused_total
    twin.host.pause(downtime)
    return twin


def migrate_as_the_reference_does(machine, sections: Schemas = SECTIONS):
    """Migration the way the reference harness performs it on QEMU under
    qtest: the destination loads with its clock still at 0 (the qtest clock
    is not in the stream), so post_load code that reads the clock sees 0, and
    is then ``clock_set`` to the source's time, firing what falls due on the
    way with interrupts not intercepted.  Only for comparing with recordings
    of the reference; :func:`migrate` is what a real destination does."""
    from vmstate.machine.pc import PcMachine

    data = save(machine, sections=sections)
    twin = PcMachine(**machine.options)
    apply(decode(data, twin, sections=sections), twin, sections, clock=False)
    twin.clock_set(machine.clock.now)
    return twin
