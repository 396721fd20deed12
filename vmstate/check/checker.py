"""The migration checker: prove that a guest cannot tell it was migrated.

A scenario is a trace with ``migrate`` lines.  It runs twice on fresh
machines: straight through, pausing at each migration point for the downtime
(virtual time stands still, host time moves on), and migrated, where each
point saves the machine to a stream, loads it into a fresh machine (possibly
one that writes or loads other versions) and goes on there.  The two
observation records must be equal event for event.  When they are not, the
verdict says where they part and which fields the migration changed.

``migrate`` lines may carry ``from=DEVICE:N,...`` (the versions the source
writes), ``to=DEVICE:N,...`` (the highest versions the destination loads) and
``downtime=NS``; the check's own arguments are the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from deepdiff import DeepDiff

from vmstate.machine import migration
from vmstate.core.state import copy_state
from vmstate.core.errors import StreamError, TraceError, UsageError
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Event, Observations
from vmstate.trace.qtest import Command, Runner, parse_pragmas, parse_trace


@dataclass(frozen=True)
class Point:
    """One migration: which line, what the source writes, what the
    destination loads, and how long the machine is stopped."""

    line: int
    versions: dict[str, int]
    highest: dict[str, int]
    downtime: int


class Later:
    """A value to compute on first read: what a :class:`MigrationRecord`'s
    diffs hold until a report asks for them."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[], Any]):
        self.compute = compute


class _Lazy:
    """A dataclass field that may be given a :class:`Later`: the first
    read computes the value and keeps it, later reads return it.  A check
    computes its diffs only when something reads them, since an equivalent
    migration never needs them and they cost more than the check."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = "_" + name

    def __get__(self, record: Any, owner: type | None = None) -> Any:
        if record is None:
            raise AttributeError(self.name)  # no default: the field stays required
        value = record.__dict__[self.slot]
        if type(value) is Later:
            value = record.__dict__[self.slot] = value.compute()
        return value

    def __set__(self, record: Any, value: Any) -> None:
        record.__dict__[self.slot] = value


@dataclass
class MigrationRecord:
    """One migration of the migrated run: its point, the stream's length,
    what the migration changed in the machine's state (``state_diff``) and
    what a save of the destination changes in the stream (``stream_diff``),
    both DeepDiff dicts, computed on first read."""

    point: Point
    stream_length: int
    state_diff: dict = _Lazy()
    stream_diff: dict = _Lazy()

    def __getstate__(self) -> dict:
        """Copies and pickles carry the diffs computed, not the means to."""
        return {"point": self.point, "stream_length": self.stream_length,
                "_state_diff": self.state_diff, "_stream_diff": self.stream_diff}


@dataclass
class Divergence:
    index: int
    line: int
    straight: Event | None
    migrated: Event | None
    before: list[tuple[Event, Event]]
    migration: MigrationRecord | None


@dataclass
class Verdict:
    status: str  # "equivalent", "diverges" or "refused"
    straight: Observations
    migrated: Observations
    migrations: list[MigrationRecord] = field(default_factory=list)
    divergence: Divergence | None = None
    refusal: StreamError | None = None
    refused_at: int | None = None

    @property
    def equivalent(self) -> bool:
        return self.status == "equivalent"


def _versions(text: str, line: int) -> dict[str, int]:
    try:
        return migration.parse_versions(text)
    except UsageError as err:
        raise TraceError(str(err), line) from None


def migration_points(commands: list[Command], versions: dict[str, int] | None = None,
                     highest: dict[str, int] | None = None, downtime: int = 0) -> dict[int, Point]:
    """Each ``migrate`` line's point, its options overriding the defaults."""
    points = {}
    for command in commands:
        if command.name != "migrate":
            continue
        options = dict(command.args)
        unknown = set(options) - {"from", "to", "downtime"}
        if unknown:
            raise TraceError(f"unknown migrate option {sorted(unknown)[0]!r} (from=, to=, downtime=)",
                             command.line, command.text)
        try:
            pause = int(options["downtime"], 0) if "downtime" in options else downtime
        except ValueError:
            raise TraceError(f"downtime {options['downtime']!r} is not a number", command.line, command.text) from None
        if pause < 0:
            raise TraceError("downtime cannot be negative", command.line, command.text)
        points[command.line] = Point(
            command.line,
            _versions(options["from"], command.line) if "from" in options else dict(versions or {}),
            _versions(options["to"], command.line) if "to" in options else dict(highest or {}),
            pause)
    return points


class _Refused(Exception):
    def __init__(self, error: StreamError, line: int):
        self.error = error
        self.line = line


def _state_diff(before: Any, after: Any) -> dict:
    diff = DeepDiff(before, after, verbose_level=2)
    return diff.to_dict() if diff else {}


class _Held:
    """A device as save and decode see it, frozen at one moment: its saved
    state, handed out as a new copy each time as the device would."""

    def __init__(self, state: Any):
        self.state = state

    def get_state(self) -> Any:
        return copy_state(self.state)


class _Moment:
    def __init__(self, now: int):
        self.now = now


class _Frozen:
    """What :func:`_stream_diff` reads of a machine (its devices' saved
    states, its clock), taken when the migration happens, so that the diff
    can be computed later, when a report asks for it, exactly as then."""

    def __init__(self, machine, live: dict):
        self.devices = {name: _Held(dev.get_state() if hasattr(dev, "live_state") else live[name])
                        for name, dev in machine.devices.items()}
        self.clock = _Moment(machine.clock.now)


def _stream_diff(data: bytes, machine, point: Point, sections) -> dict:
    """What changed between the stream that was sent and the destination
    saved again at the same versions: a field the load dropped or
    mis-converted shows here by its name."""
    from vmstate.wire.table import to_container

    again = migration.save(machine, point.versions, sections)
    sent = migration.decode(data, machine, sections=sections)
    back = migration.decode(again, machine, sections=sections)
    flat = lambda loaded: {s.idstr: to_container(s.description, s.version, s.state) for s in loaded.sections}
    return _state_diff(flat(sent), flat(back))


def run(commands: list[Command], options: dict, points: dict[int, Point], migrate: bool,
        records: list[MigrationRecord] | None = None, sections=None) -> Observations:
    """One run of a scenario; ``migrate`` says whether the points migrate or
    only pause."""

    def at_point(machine, command):
        point = points[command.line]
        if not migrate:
            machine.host.pause(point.downtime)
            return machine
        data = migration.save(machine, point.versions, sections)
        try:
            twin = migration.restore(data, highest=point.highest, sections=sections, **machine.options)
        except StreamError as err:
            raise _Refused(err, command.line) from None
        twin.host.paused_total = machine.host.paused_total
        twin.host.pause(point.downtime)
        if records is not None:
            # The source is never run again, so its state can be read when
            # the diff is; the destination runs on, so it is read now.
            after = twin.get_state()
            frozen = _Frozen(twin, after)
            records.append(MigrationRecord(
                point, len(data),
                Later(lambda source=machine, after=after: _state_diff(source.get_state(), after)),
                Later(lambda frozen=frozen: _stream_diff(data, frozen, point, sections))))
        return twin

    runner = Runner(PcMachine(**options), migrate=at_point)
    for _ in runner.run(commands):
        pass
    return runner.session.observations


def check(scenario: str | list[Command], source_versions: dict[str, int] | None = None,
          destination_versions: dict[str, int] | None = None, downtime: int = 0,
          rtc_base: str | None = None, rtc_clock: str | None = None, context: int = 5,
          sections=None) -> Verdict:
    """Run a scenario straight and migrated and compare what the guest saw.

    ``source_versions`` are the versions the source writes at every point,
    ``destination_versions`` the highest the destination loads (a missing
    device means current); ``migrate`` lines may override both."""
    if isinstance(scenario, str):
        pragmas = parse_pragmas(scenario)
        commands = parse_trace(scenario)
    else:
        pragmas, commands = {}, scenario
    options = {"rtc_base": rtc_base or pragmas.get("rtc-base", "2000-01-01T00:00:00"),
               "rtc_clock": rtc_clock or pragmas.get("rtc-clock", "vm")}
    sections = migration.SECTIONS if sections is None else sections
    points = migration_points(commands, source_versions, destination_versions, downtime)
    straight = run(commands, options, points, migrate=False)
    records: list[MigrationRecord] = []
    try:
        migrated = run(commands, options, points, migrate=True, records=records, sections=sections)
    except _Refused as refused:
        return Verdict("refused", straight, Observations(), records, refusal=refused.error,
                       refused_at=refused.line)
    index = straight.first_divergence(migrated)
    if index is None:
        return Verdict("equivalent", straight, migrated, records)
    a = straight.events[index] if index < len(straight.events) else None
    b = migrated.events[index] if index < len(migrated.events) else None
    line = (a or b).op
    last = None
    for record in records:
        if record.point.line < line:
            last = record
    before = list(zip(straight.events[max(0, index - context):index], migrated.events[max(0, index - context):index]))
    return Verdict("diverges", straight, migrated, records, Divergence(index, line, a, b, before, last))


def _format_versions(versions: dict[str, int]) -> str:
    return ",".join(f"{name}:{number}" for name, number in sorted(versions.items()))


def counterexample(scenario: str | list[Command], verdict: Verdict, source_versions=None,
                   destination_versions=None, downtime: int = 0, rtc_base: str | None = None,
                   rtc_clock: str | None = None) -> str:
    """A trace that replays the check exactly: its machine pragma, and every
    ``migrate`` line spelling out its versions and downtime."""
    if isinstance(scenario, str):
        pragmas = parse_pragmas(scenario)
        commands = parse_trace(scenario)
    else:
        pragmas, commands = {}, scenario
    base = rtc_base or pragmas.get("rtc-base", "2000-01-01T00:00:00")
    clock = rtc_clock or pragmas.get("rtc-clock", "vm")
    points = migration_points(commands, source_versions, destination_versions, downtime)
    lines = [f"#! rtc-base={base} rtc-clock={clock}", f"# vmstate check: {verdict.status}"]
    if verdict.divergence is not None:
        d = verdict.divergence
        lines.append(f"# the runs part at line {d.line}: straight {d.straight}, migrated {d.migrated}")
    if verdict.refusal is not None:
        lines.append(f"# refused at line {verdict.refused_at}: {verdict.refusal}")
    for command in commands:
        if command.name == "migrate":
            point = points[command.line]
            words = ["migrate"]
            if point.versions:
                words.append(f"from={_format_versions(point.versions)}")
            if point.highest:
                words.append(f"to={_format_versions(point.highest)}")
            words.append(f"downtime={point.downtime}")
            lines.append(" ".join(words))
        else:
            lines.append(command.text)
    return "\n".join(lines) + "\n"
