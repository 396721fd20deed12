"""The migration checker: prove that a guest cannot tell it was migrated.

A scenario is a trace with ``migrate`` lines.  It runs twice on fresh
machines: straight through, pausing at each migration point for the downtime
(virtual time stands still, host time moves on), and migrated, where each
point saves the machine to a stream, loads it into a fresh machine (possibly
one that writes or loads other versions) and goes on there.  The two
observation records must be equal event for event.  When they are not, the
verdict says where they part and which fields the migrations before that
point changed, and whether the difference is exactly one QEMU 7.2 shows
itself (:mod:`vmstate.check.known`).

``migrate`` lines may carry ``from=DEVICE:N,...`` (the versions the source
writes), ``to=DEVICE:N,...`` (the highest versions the destination loads) and
``downtime=NS``; the check's own arguments are the defaults.
"""
from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


from vmstate.check.known import KNOWN_DIVERGENCES, Correction
from vmstate.core.clock import EventBudget
from vmstate.core.errors import StreamError, UsageError
from vmstate.core.observe import Event, Observations
from vmstate.core.state import copy_state
from vmstate.machine import migration
from vmstate.machine.migration import Point
from vmstate.machine.pc import PcMachine
from vmstate.trace.load import load_trace, machine_options, parse_pragmas
from vmstate.trace.points import migration_points
from vmstate.trace.qtest import Command, Runner, iter_commands
from vmstate.wire.table import to_container


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
    """Where the runs part: the event index and its trace line, both runs'
    events there and just before, and the migrations before that line, the
    latest first: the suspects are what they changed."""

    index: int
    line: int
    straight: Event | None
    migrated: Event | None
    before: list[tuple[Event, Event]]
    migrations: list[MigrationRecord] = field(default_factory=list)

    @property
    def migration(self) -> MigrationRecord | None:
        """The last migration before the runs part."""
        return self.migrations[0] if self.migrations else None


@dataclass
class Verdict:
    """``status``: "equivalent", "diverges" or "refused".  A divergence
    that is exactly one of QEMU 7.2's own has ``known`` naming it."""

    status: str
    straight: Observations
    migrated: Observations
    migrations: list[MigrationRecord] = field(default_factory=list)
    divergence: Divergence | None = None
    refusal: StreamError | None = None
    refused_at: int | None = None
    known: tuple[str, ...] = ()
    observed: int | None = None

    @property
    def equivalent(self) -> bool:
        return self.status == "equivalent"

    @property
    def events(self) -> int:
        """How many events the straight run observed (up to where the runs
        part): a check that kept no record says so in ``observed``."""
        return len(self.straight) if self.observed is None else self.observed


class Refused(Exception):
    """The destination refused a stream at a migration point."""

    def __init__(self, error: StreamError, line: int):
        super().__init__(str(error))
        self.error = error
        self.line = line


def _state_diff(before: Any, after: Any) -> dict:
    from deepdiff import DeepDiff  # 100 ms and more at import (numpy's, where it is installed): when asked

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

    def __init__(self, machine: PcMachine, live: dict):
        self.devices = {name: _Held(dev.get_state() if dev.converts_on_save else live[name])
                        for name, dev in machine.devices.items()}
        self.clock = _Moment(machine.clock.now)


def _stream_diff(data: bytes, machine, point: Point, sections) -> dict:
    """What changed between the stream that was sent and the destination
    saved again at the same versions: a field the load dropped or
    mis-converted shows here by its name."""
    again = migration.save(machine, point.versions, sections)
    sent = migration.decode(data, machine, sections=sections)
    back = migration.decode(again, machine, sections=sections)
    flat = lambda loaded: {s.idstr: to_container(s.description, s.version, s.state) for s in loaded.sections}
    return _state_diff(flat(sent), flat(back))


def recorder(records: list[MigrationRecord], sections) -> Callable:
    """An ``after_migration`` hook for :func:`run` keeping a record of each
    migration.  The source is never run again, so its state can be read
    when the diff is; the destination runs on, so it is read now."""

    def record(source: PcMachine, twin: PcMachine, point: Point, data: bytes) -> None:
        after = twin.get_state()
        frozen = _Frozen(twin, after)
        records.append(MigrationRecord(
            point, len(data),
            Later(lambda: _state_diff(source.get_state(), after)),
            Later(lambda: _stream_diff(data, frozen, point, sections))))
    return record


def run(commands: list[Command], options: dict, points: dict[int, Point], migrate: bool, sections=None, *,
        at_point: Callable[[PcMachine], None] | None = None,
        after_migration: Callable[[PcMachine, PcMachine, Point, bytes], None] | None = None,
        corrections: Iterable[Correction] = (), applied: set | None = None,
        budget: EventBudget | None = None) -> tuple[Observations, PcMachine]:
    """One run of a scenario: ``migrate`` says whether the points migrate or
    only pause.  Hooks: ``at_point(machine)`` before each point,
    ``after_migration(source, destination, point, stream)`` after each
    migration; ``corrections`` (see :mod:`vmstate.check.known`) are applied
    to each destination, those that applied added to ``applied``.  Returns
    the observations and the machine the run ended on.  A refused stream
    raises :class:`Refused`; ``budget`` bounds the timer events of all the
    run's machines together."""
    sections = migration.SECTIONS if sections is None else sections

    def at_line(machine: PcMachine, command: Command) -> PcMachine:
        if at_point is not None:
            at_point(machine)
        point = points[command.line]
        if not migrate:
            machine.host.pause(point.downtime)
            return machine
        try:
            twin, data = migration.migrate(machine, point, sections)
        except StreamError as err:
            raise Refused(err, command.line) from None
        for correct in corrections:
            if correct(machine, twin) and applied is not None:
                applied.add(correct)
        if after_migration is not None:
            after_migration(machine, twin, point, data)
        return twin

    runner = Runner(PcMachine(**options, budget=budget), migrate=at_line)
    for _ in runner.run(commands):
        pass
    return runner.session.observations, runner.machine


@dataclass
class Scenario:
    """A scenario ready to run: commands, machine options, points."""

    commands: list[Command]
    options: dict
    points: dict[int, Point]

    @classmethod
    def of(cls, scenario: str | list[Command], source_versions=None, destination_versions=None,
           downtime: int = 0, rtc_base: str | None = None, rtc_clock: str | None = None) -> "Scenario":
        if isinstance(scenario, str):
            commands, options = load_trace(scenario, rtc_base, rtc_clock)
        else:
            commands, options = list(scenario), load_trace("", rtc_base, rtc_clock)[1]
        return cls(commands, options, migration_points(commands, source_versions, destination_versions, downtime))


def check(scenario: str | list[Command], source_versions: dict[str, int] | None = None,
          destination_versions: dict[str, int] | None = None, downtime: int = 0,
          rtc_base: str | None = None, rtc_clock: str | None = None, context: int = 5,
          sections=None, known: bool = True, budget: EventBudget | None = None, keep: bool = True) -> Verdict:
    """Run a scenario straight and migrated and compare what the guest saw.

    ``source_versions`` are the versions the source writes at every point,
    ``destination_versions`` the highest the destination loads (a missing
    device means current); ``migrate`` lines may override both.  With
    ``known``, a divergence is searched for QEMU 7.2's own (the verdict's
    ``known`` names them).  A scenario without a ``migrate`` line proves
    nothing and is refused.  ``budget`` bounds the timer events of every
    run the check makes.  Without ``keep`` the two runs go in step, a
    command at a time, and only the last ``context`` events of each are
    held: a trace of any length checks in bounded memory, and the verdict's
    records hold those events only (``observed`` counts them all)."""
    if not keep and isinstance(scenario, str):
        return _in_step(scenario, source_versions, destination_versions, downtime, rtc_base, rtc_clock, context,
                        sections, known, budget)
    s = Scenario.of(scenario, source_versions, destination_versions, downtime, rtc_base, rtc_clock)
    if not s.points:
        raise UsageError("the scenario has no migrate line: there is no migration to check")
    sections = migration.SECTIONS if sections is None else sections
    straight, _ = run(s.commands, s.options, s.points, False, sections, budget=budget)
    records: list[MigrationRecord] = []
    try:
        migrated, _ = run(s.commands, s.options, s.points, True, sections, after_migration=recorder(records, sections),
                          budget=budget)
    except Refused as refused:
        return Verdict("refused", straight, Observations(), records, refusal=refused.error,
                       refused_at=refused.line)
    index = straight.first_divergence(migrated)
    if index is None:
        return Verdict("equivalent", straight, migrated, records)
    a = straight.events[index] if index < len(straight.events) else None
    b = migrated.events[index] if index < len(migrated.events) else None
    line = (a or b).op
    earlier = [r for r in reversed(records) if r.point.line < line]
    before = list(zip(straight.events[max(0, index - context):index], migrated.events[max(0, index - context):index]))
    verdict = Verdict("diverges", straight, migrated, records, Divergence(index, line, a, b, before, earlier))
    if known:
        verdict.known = known_divergence(s, sections, straight, budget) or ()
    return verdict


def _in_step(text: str, source_versions, destination_versions, downtime, rtc_base, rtc_clock, context: int,
             sections, known: bool, budget: EventBudget | None) -> Verdict:
    """:func:`check` with the two runs in step: after each command, the
    events each run observed are compared and dropped (the last ``context``
    pairs kept for the report)."""
    options = machine_options(parse_pragmas(text), rtc_base=rtc_base, rtc_clock=rtc_clock)
    points = migration_points((c for c in iter_commands(text) if c.name == "migrate"), source_versions,
                              destination_versions, downtime)
    if not points:
        raise UsageError("the scenario has no migrate line: there is no migration to check")
    sections = migration.SECTIONS if sections is None else sections
    records: list[MigrationRecord] = []
    after = recorder(records, sections)

    def pause(machine: PcMachine, command: Command) -> PcMachine:
        machine.host.pause(points[command.line].downtime)
        return machine

    def migrate(machine: PcMachine, command: Command) -> PcMachine:
        point = points[command.line]
        try:
            twin, data = migration.migrate(machine, point, sections)
        except StreamError as err:
            raise Refused(err, command.line) from None
        after(machine, twin, point, data)
        return twin

    straight = Runner(PcMachine(**options, budget=budget), migrate=pause)
    migrated = Runner(PcMachine(**options, budget=budget), migrate=migrate)
    a, b = straight.session.observations.events, migrated.session.observations.events
    window: collections.deque = collections.deque(maxlen=context)
    seen = 0

    def parted(x: Event | None, y: Event | None) -> Verdict:
        line = (x or y).op
        before = list(window)
        d = Divergence(seen, line, x, y, before, [r for r in reversed(records) if r.point.line < line])
        verdict = Verdict("diverges", Observations([p for p, _ in before]), Observations([q for _, q in before]),
                          records, d, observed=seen)
        if known:
            s = Scenario.of(text, source_versions, destination_versions, downtime, rtc_base, rtc_clock)
            whole = run(s.commands, s.options, s.points, False, sections, budget=budget)[0]
            verdict.known = known_divergence(s, sections, whole, budget) or ()
        return verdict

    for command in iter_commands(text):
        straight.execute(command)
        try:
            migrated.execute(command)
        except Refused as refused:
            return Verdict("refused", Observations([x for x, _ in window] + a), Observations(), records,
                           refusal=refused.error, refused_at=refused.line, observed=seen + len(a))
        # Events are compared by their place in each run's record, as the
        # whole records would be: a run ahead by some events keeps them for
        # the other's next command.
        n = min(len(a), len(b))
        for x, y in zip(a[:n], b[:n]):
            if x != y:
                return parted(x, y)
            window.append((x, y))
            seen += 1
        del a[:n], b[:n]
    if a or b:
        return parted(a[0] if a else None, b[0] if b else None)
    return Verdict("equivalent", Observations([x for x, _ in window]), Observations([y for _, y in window]),
                   records, observed=seen)


def known_divergence(s: Scenario, sections, straight: Observations,
                     budget: EventBudget | None = None) -> tuple[str, ...] | None:
    """Which of QEMU 7.2's own visible migrations explain a diverging
    scenario, or None when they do not explain it all.

    A divergence is *known* when the migrated run, with each destination
    corrected for those QEMU conversions only, observes exactly what the
    straight run observes, and every correction named applied.  The
    smallest set is returned."""
    try:
        for size in range(1, len(KNOWN_DIVERGENCES) + 1):
            for names in itertools.combinations(KNOWN_DIVERGENCES, size):
                applied: set = set()
                fixes = [KNOWN_DIVERGENCES[n].correct for n in names]
                migrated, _ = run(s.commands, s.options, s.points, True, sections, corrections=fixes, applied=applied,
                                  budget=budget)
                if migrated.first_divergence(straight) is None and len(applied) == size:
                    return names
    except Refused:
        return None
    return None


def counterexample(scenario: str | list[Command], verdict: Verdict, source_versions=None,
                   destination_versions=None, downtime: int = 0, rtc_base: str | None = None,
                   rtc_clock: str | None = None) -> str:
    """A trace that replays the check exactly: its machine pragma, and every
    ``migrate`` line spelling out its versions and downtime.  The lines it
    names are its own (one command a line, after the header)."""
    s = Scenario.of(scenario, source_versions, destination_versions, downtime, rtc_base, rtc_clock)
    header = [f"#! rtc-base={s.options['rtc_base']} rtc-clock={s.options['rtc_clock']}",
              f"# vmstate check: {verdict.status}" + (f" (as QEMU 7.2: {', '.join(verdict.known)})"
                                                      if verdict.known else "")]
    told = verdict.divergence is not None or verdict.refusal is not None
    first = len(header) + told + 1
    renumber = {c.line: first + i for i, c in enumerate(s.commands)}
    if verdict.divergence is not None:
        d = verdict.divergence
        header.append(f"# the runs part at line {renumber.get(d.line, d.line)}: straight {d.straight}, "
                      f"migrated {d.migrated}")
    if verdict.refusal is not None:
        header.append(f"# refused at line {renumber.get(verdict.refused_at, verdict.refused_at)}: {verdict.refusal}")
    body = [" ".join(["migrate", *s.points[c.line].words()]) if c.name == "migrate" else c.text
            for c in s.commands]
    return "\n".join(header + body) + "\n"
