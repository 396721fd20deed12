"""Fuzzing migration: random scenarios through the checker, failures shrunk
to replayable traces.

Three layers:

- :func:`check_scenario` judges one scenario.  It runs it straight and
  migrated exactly as :func:`vmstate.check.checker.check` does, but compares only
  the observation records first (the checker's field diffs are what make a
  check slow, and an equivalent run needs none); only a run that diverges
  goes through :func:`vmstate.check.checker.check` for the full verdict.  It also
  bounds the work a scenario may cause (:data:`EVENT_BUDGET` timer events),
  so that a drawn 1 kHz interrupt run for two hours is set aside instead of
  stalling a campaign, and records which device states the scenario reached.
- :func:`known_qemu_divergence` recognizes the places where QEMU 7.2's own
  migration is visible to a guest (README, "Where QEMU 7.2's own migration is
  not invisible"), so that a property can accept exactly those.
- :func:`campaign` is ``vmstate fuzz``: hypothesis drawing
  :func:`vmstate.strategies.scenarios`, in one or more worker processes that
  share hypothesis's example database, with live progress, every failure
  shrunk and written as a trace that ``vmstate check`` replays.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import queue as queue_module
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from vmstate.check import checker
from vmstate.machine import migration
from vmstate.core.clock import NANOSECONDS_PER_SECOND, VirtualClock, muldiv64
from vmstate.core.errors import StreamError, UsageError
from vmstate.machine.pc import DEFAULT_RTC_BASE, PcMachine
from vmstate.trace.qtest import Command, Runner, parse_pragmas, parse_trace

#: Timer events (callbacks run by the virtual clock) one scenario may cause,
#: straight and migrated runs together.  A step of hours is cheap while the
#: machine is quiet and ruinous with a fast periodic interrupt; a scenario
#: over budget is *set aside*, not judged (hypothesis treats it as invalid
#: and looks elsewhere, and never shrinks towards it).
EVENT_BUDGET = 40_000

RTC_PERIODIC_REPHASE = "qemu-rtc-periodic-rephase"
RTC_DIVIDER_HELD_JUMP = "qemu-rtc-divider-held-time-jump"
RTC_CHANGE_THROTTLE = "qtest-rtc-change-throttle"
HPET_STRAY_TIMER = "qemu-hpet-stray-timer-not-migrated"

#: The divergences QEMU 7.2 itself shows across a migration, with why.
KNOWN_DIVERGENCES = {
    RTC_PERIODIC_REPHASE:
        "rtc_post_load re-arms the periodic timer one period after the load whenever its deadline is "
        "ahead (always, on the virtual clock): the next periodic tick comes up to a period late",
    RTC_DIVIDER_HELD_JUMP:
        "rtc pre_save copies the running time into CMOS although the divider holds the clock "
        "(register A 0x6x): the destination's time of day jumps to the running time",
    RTC_CHANGE_THROTTLE:
        "the monitor rate-limits RTC_CHANGE events with a timer on the virtual clock under qtest; it is "
        "no device's state and is not migrated, so an argumentless clock_step stops at it only on the "
        "source (a guest cannot see it: only a qtest client stepping to the next deadline can)",
    HPET_STRAY_TIMER:
        "the comparator one past num_timers (timer 3 at 0xfed00160), which QEMU's off-by-one range check "
        "lets a guest program, is not in the hpet section: the destination has its own, at reset",
}


class _OverBudget(Exception):
    """A scenario caused more timer events than its budget."""


@contextlib.contextmanager
def event_budget(limit: int = EVENT_BUDGET):
    """Within this block, running more than ``limit`` timer callbacks raises
    :class:`_OverBudget`.  The count is deterministic (the same scenario
    always costs the same), which hypothesis needs to replay and shrink.
    It wraps :meth:`VirtualClock.run_due`, the one place every timer of
    every machine runs, for the block's duration only."""
    original = VirtualClock.run_due
    spent = [0]

    def counted(self):
        fired = original(self)
        spent[0] += fired
        if spent[0] > limit:
            raise _OverBudget(spent[0])
        return fired

    VirtualClock.run_due = counted
    try:
        yield spent
    finally:
        VirtualClock.run_due = original


# -- states reached ----------------------------------------------------------------
def state_signatures(machine: PcMachine) -> set[tuple]:
    """Coarse signatures of the device states a campaign reaches: for each
    PIT channel its (mode, rw_mode, read_state, write_state, count_latched,
    status_latched), the HPET's enable/legacy bits and each comparator's
    mode bits, the RTC's divider, rate, register B and pending flags, and the
    PM block's placement and timer enable.  Counting distinct ones tells how
    much of the state space a campaign covered."""
    out: set[tuple] = set()
    for i, ch in enumerate(machine.pit.channels):
        out.add(("i8254", i, ch.mode, ch.rw_mode, ch.read_state, ch.write_state, ch.count_latched,
                 ch.status_latched))
    hpet = machine.hpet
    out.add(("hpet", hpet.config & 3, hpet.isr != 0))
    for t in hpet.timers[:hpet.num_timers + 1]:
        out.add(("hpet-timer", t.tn, t.config & 0x14E, t.config >> 9 & 0x1F == 2))
    rtc = machine.rtc.cmos
    out.add(("mc146818rtc", rtc[10] >> 4, rtc[10] & 15 != 0, rtc[11], rtc[12] & 0xF0))
    pm = machine.pm
    out.add(("piix4_pm", pm.enabled, pm.base, pm.pm1_en & 1, pm.pm1_sts & 1))
    out.add(("pcspk", machine.pcspk.data_on, machine.pit.channels[2].gate))
    return out


# -- running a scenario --------------------------------------------------------------
def _options(pragmas: dict, rtc_base: str | None, rtc_clock: str | None) -> dict:
    return {"rtc_base": rtc_base or pragmas.get("rtc-base", DEFAULT_RTC_BASE),
            "rtc_clock": rtc_clock or pragmas.get("rtc-clock", "vm")}


Correction = Callable[[PcMachine, PcMachine], bool]


def _run(commands: list[Command], options: dict, points: dict, migrate: bool, sections,
         corrections: Iterable[Correction] = (), signatures: set | None = None, applied: set | None = None):
    """One run, as :func:`vmstate.check.checker.run` does it.  ``corrections``
    are applied to each destination (see :func:`known_qemu_divergence`);
    ``signatures`` collects the states at each migration point and at the
    end of the run."""
    corrections = tuple(corrections)

    def at_point(machine, command):
        if signatures is not None:
            signatures.update(state_signatures(machine))
        point = points[command.line]
        if not migrate:
            machine.host.pause(point.downtime)
            return machine
        data = migration.save(machine, point.versions, sections)
        twin = migration.restore(data, highest=point.highest, sections=sections, **machine.options)
        twin.host.paused_total = machine.host.paused_total
        twin.host.pause(point.downtime)
        for correct in corrections:
            if correct(machine, twin) and applied is not None:
                applied.add(correct)
        return twin

    runner = Runner(PcMachine(**options), migrate=at_point)
    for _ in runner.run(commands):
        pass
    if signatures is not None:
        signatures.update(state_signatures(runner.machine))
    return runner.session.observations


# -- QEMU 7.2's own visible migrations -------------------------------------------------
def _undo_periodic_rephase(source: PcMachine, twin: PcMachine) -> bool:
    """rtc_post_load's re-phase, undone where the destination's periodic
    deadline is exactly the one it computes (one period from the load, on
    the 32 kHz grid) and the source's was another: then the source's
    deadline is put back.  A deadline that differs in any other way is left
    alone, so a real loss of ``next_periodic_time`` still shows."""
    from devices.mc146818 import RTC_CLOCK_RATE, ticks_to_ns

    src, dst = source.rtc, twin.rtc
    if not dst.period or dst.period != src.period or not dst.periodic_timer.pending:
        return False
    now = dst._now()
    rephased = ticks_to_ns(muldiv64(now, RTC_CLOCK_RATE, NANOSECONDS_PER_SECOND) + dst.period) + 1
    if (dst.next_periodic_time, dst.periodic_timer.expire) != (rephased, rephased):
        return False
    if (src.next_periodic_time, src.periodic_timer.expire) == (rephased, rephased):
        return False
    dst.next_periodic_time = src.next_periodic_time
    if src.periodic_timer.pending:
        dst.periodic_timer.mod(src.periodic_timer.expire)
    else:
        dst.periodic_timer.delete()
    return True


def _undo_divider_jump(source: PcMachine, twin: PcMachine) -> bool:
    """pre_save's running time in a held clock's CMOS, undone where the
    destination's time bytes are exactly what pre_save wrote and the
    source's live bytes (the frozen time) differ: those are put back."""
    from devices.mc146818 import TIME_REGISTERS

    src, dst = source.rtc, twin.rtc
    if not src._divider_reset() or src.cmos[11] & 0x80:
        return False
    saved = src.get_state().cmos_data
    changed = [i for i in TIME_REGISTERS if dst.cmos[i] != src.cmos[i]]
    if not changed or any(dst.cmos[i] != saved[i] for i in changed):
        return False
    for i in changed:
        dst.cmos[i] = src.cmos[i]
    return True


def _carry_change_throttle(source: PcMachine, twin: PcMachine) -> bool:
    """The monitor's RTC_CHANGE rate limiter, carried over as if it had
    been migrated (it is not device state; see :data:`KNOWN_DIVERGENCES`)."""
    src, dst = source.rtc, twin.rtc
    if not src.change_throttle.pending or dst.change_throttle.pending:
        return False
    dst.change_throttle.mod(src.change_throttle.expire)
    dst.change_queued = src.change_queued
    return True


def _carry_stray_timer(source: PcMachine, twin: PcMachine) -> bool:
    """The HPET's stray comparator, carried over where the destination's is
    still at reset and the source's is not (QEMU never sends it)."""
    src, dst = source.hpet, twin.hpet
    n = src.num_timers
    if n != dst.num_timers or n >= len(src.timers):
        return False
    mine, theirs = dst.timers[n].state(), src.timers[n].state()
    if mine == theirs or mine != _pristine_stray(n):
        return False
    dst.timers[n].load(theirs)
    return True


_PRISTINE: dict[int, object] = {}


def _pristine_stray(n: int):
    if n not in _PRISTINE:
        _PRISTINE[n] = PcMachine().hpet.timers[n].state()
    return _PRISTINE[n]


_CORRECTIONS: dict[str, Correction] = {
    RTC_PERIODIC_REPHASE: _undo_periodic_rephase,
    RTC_DIVIDER_HELD_JUMP: _undo_divider_jump,
    RTC_CHANGE_THROTTLE: _carry_change_throttle,
    HPET_STRAY_TIMER: _carry_stray_timer,
}


def known_qemu_divergence(scenario: str | list[Command], verdict: checker.Verdict | None = None,
                          sections=None, source_versions=None, destination_versions=None, downtime: int = 0,
                          rtc_base: str | None = None, rtc_clock: str | None = None) -> tuple[str, ...] | None:
    """Which of QEMU 7.2's own visible migrations (:data:`KNOWN_DIVERGENCES`)
    explain a diverging scenario, or None when they do not explain it all.

    A divergence is *known* when the migrated run, with each destination
    corrected for those QEMU conversions only, observes exactly what the
    straight run observes.  Each correction recognizes its conversion by
    the state it leaves -- the suspect fields must hold exactly the value
    QEMU's code computes (the re-phased periodic deadline; the running time
    pre_save wrote under a held divider), in the state where QEMU does it --
    and undoes nothing else, so a lost field next to a known conversion is
    still a failure.  The smallest set of corrections that makes the runs
    agree is returned (an empty tuple for a verdict that does not diverge).
    """
    if verdict is not None and verdict.status == "equivalent":
        return ()
    if verdict is not None and verdict.status != "diverges":
        return None
    if isinstance(scenario, str):
        pragmas, commands = parse_pragmas(scenario), parse_trace(scenario)
    else:
        pragmas, commands = {}, scenario
    options = _options(pragmas, rtc_base, rtc_clock)
    sections = migration.SECTIONS if sections is None else sections
    points = checker.migration_points(commands, source_versions, destination_versions, downtime)
    straight = _run(commands, options, points, False, sections)
    try:
        if _run(commands, options, points, True, sections).first_divergence(straight) is None:
            return ()
        for size in range(1, len(_CORRECTIONS) + 1):
            for names in itertools.combinations(_CORRECTIONS, size):
                applied: set = set()
                fixes = [_CORRECTIONS[n] for n in names]
                migrated = _run(commands, options, points, True, sections, fixes, applied=applied)
                if migrated.first_divergence(straight) is None and len(applied) == size:
                    return names
    except StreamError:
        return None
    return None


@dataclass
class Outcome:
    """What :func:`check_scenario` found.  ``status``: ``equivalent``,
    ``known`` (diverges only where QEMU 7.2 does: ``known`` names how),
    ``diverges``, ``refused`` (the destination refused the stream) or
    ``costly`` (over the event budget, not judged)."""

    status: str
    verdict: checker.Verdict | None = None
    known: tuple[str, ...] = ()
    signatures: set = field(default_factory=set)

    @property
    def failed(self) -> bool:
        return self.status in ("diverges", "refused")


def check_scenario(scenario: str, sections=None, budget: int = EVENT_BUDGET, accept_known: bool = True,
                   source_versions=None, destination_versions=None, downtime: int = 0) -> Outcome:
    """Judge one scenario (trace text): equivalent, a known QEMU divergence,
    a real divergence or refusal (with the checker's full verdict), or over
    budget.  ``sections`` replaces the schemas (planted bugs)."""
    pragmas, commands = parse_pragmas(scenario), parse_trace(scenario)
    options = _options(pragmas, None, None)
    used = migration.SECTIONS if sections is None else sections
    points = checker.migration_points(commands, source_versions, destination_versions, downtime)
    signatures: set = set()
    try:
        with event_budget(budget):
            straight = _run(commands, options, points, False, used, signatures=signatures)
            try:
                migrated = _run(commands, options, points, True, used)
            except StreamError:
                migrated = None
    except _OverBudget:
        return Outcome("costly", signatures=signatures)
    if migrated is not None and migrated.first_divergence(straight) is None:
        return Outcome("equivalent", signatures=signatures)
    # Diverges or refused: the checker's full verdict, and whether QEMU 7.2
    # diverges the same way.  These runs cost what the ones above did.
    verdict = checker.check(scenario, source_versions, destination_versions, downtime, sections=used)
    if verdict.equivalent:
        return Outcome("equivalent", verdict, signatures=signatures)
    if accept_known and verdict.status == "diverges":
        known = known_qemu_divergence(scenario, verdict, used, source_versions, destination_versions, downtime)
        if known:
            return Outcome("known", verdict, known, signatures)
    return Outcome(verdict.status, verdict, signatures=signatures)


def guest_operations(trace: str) -> int:
    """The operations a trace performs: every command but ``migrate`` and
    ``irq_intercept_in`` (time steps count: a step is something the
    scenario does); comments, blank lines and pragmas do not count."""
    return sum(1 for c in parse_trace(trace) if c.name not in ("migrate", "irq_intercept_in"))


# -- campaigns ----------------------------------------------------------------------------
@dataclass
class Failure:
    """A shrunk failing scenario: the counterexample trace (replayable by
    ``vmstate check``), its status and the suspect fields."""

    trace: str
    status: str
    line: int | None
    fields: list[str]
    worker: int
    path: str | None = None

    def to_json(self) -> dict:
        return {"status": self.status, "line": self.line, "fields": self.fields, "worker": self.worker,
                "path": self.path, "operations": guest_operations(self.trace)}


@dataclass
class Report:
    examples: int = 0
    costly: int = 0
    known: int = 0
    seconds: float = 0.0
    states: int = 0
    failures: list[Failure] = field(default_factory=list)
    workers: int = 1

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict:
        return {"examples": self.examples, "seconds": round(self.seconds, 3),
                "examples_per_second": round(self.rate, 2), "workers": self.workers,
                "set_aside_over_budget": self.costly, "known_qemu_divergences": self.known,
                "distinct_states": self.states, "failures": [f.to_json() for f in self.failures]}


class _Found(Exception):
    """Raised inside the property for a failing scenario; hypothesis shrinks
    it and re-raises the minimal one."""

    def __init__(self, trace: str, outcome: Outcome):
        super().__init__(f"{outcome.status}\n{trace}")
        self.trace = trace
        self.outcome = outcome


def open_database(spec: str | os.PathLike | None, default: Path):
    """Hypothesis's example database from ``--database``: a directory, a
    ``redis://`` URL (hypothesis.extra.redis, needs the ``redis`` package),
    or ``:memory:`` (nothing kept: seeded test campaigns).
    Workers open it each for themselves; both kinds are safe to share."""
    from hypothesis.database import DirectoryBasedExampleDatabase

    spec = str(spec) if spec is not None else str(default)
    if spec == ":memory:":
        from hypothesis.database import InMemoryExampleDatabase

        return InMemoryExampleDatabase()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as err:
            raise UsageError(f"--database {spec}: the redis package is missing ({err})") from None
        client = redis.Redis.from_url(spec)
        try:
            client.ping()
        except redis.RedisError as err:
            raise UsageError(f"--database {spec}: cannot reach redis ({err})") from None
        return RedisExampleDatabase(client)
    return DirectoryBasedExampleDatabase(spec)


@dataclass
class Config:
    """One campaign's settings, as ``vmstate fuzz`` takes them."""

    devices: tuple[str, ...] = ("i8254", "hpet", "mc146818rtc", "piix4_pm")
    examples: int | None = 200
    time_limit: float | None = None
    workers: int = 1
    seed: int | None = None
    out: Path = Path("vmstate-fuzz")
    database: str | None = None
    sections: Any = None
    tag: str = ""
    budget: int = EVENT_BUDGET
    max_chunks: int = 16
    derandomize: bool = False
    shrink: bool = True


def _property(config: Config, worker: int, report: Callable[[str, Any], None], deadline: float | None):
    """The hypothesis test a worker runs: one scenario, judged."""
    from hypothesis import HealthCheck, given, reject, settings

    from vmstate.strategies import scenarios

    strategy = scenarios(devices=config.devices, max_chunks=config.max_chunks)

    @given(strategy)
    def migration_is_invisible(trace: str) -> None:
        if deadline is not None and time.monotonic() > deadline:
            return
        outcome = check_scenario(trace, config.sections, config.budget)
        report("example", outcome)
        if outcome.status == "costly":
            reject()
        if outcome.failed:
            raise _Found(trace, outcome)

    # Campaigns on different devices or schema variants keep separate
    # entries in a shared database; workers of one campaign share theirs.
    key = repr(("vmstate-fuzz", sorted(config.devices), config.tag, config.max_chunks)).encode()
    migration_is_invisible._hypothesis_internal_database_key = hashlib.sha256(key).digest()
    return migration_is_invisible, settings, HealthCheck


def _run_worker(config: Config, worker: int, report: Callable[[str, Any], None]) -> None:
    """Rounds of hypothesis runs until the example count or the time is up;
    each failure found is reported, shrunk."""
    from hypothesis import Phase, seed as hypothesis_seed

    deadline = time.monotonic() + config.time_limit if config.time_limit else None
    database = None if config.derandomize else open_database(config.database, config.out / "database")
    total = config.examples
    rounds = itertools.count()
    while True:
        index = next(rounds)
        if deadline is not None and time.monotonic() >= deadline:
            return
        if total is not None and total <= 0:
            return
        size = total if deadline is None else min(total or 100, 100)
        test, settings, health = _property(config, worker, report, deadline)
        phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
        if config.shrink:
            phases.append(Phase.shrink)
        test = settings(max_examples=size, deadline=None, database=database, derandomize=config.derandomize,
                        suppress_health_check=list(health), phases=phases, report_multiple_bugs=False,
                        print_blob=False)(test)
        if config.seed is not None and not config.derandomize:
            test = hypothesis_seed(config.seed * 1009 + worker * 101 + index)(test)
        try:
            test()
        except _Found as found:
            report("failure", found)
            return
        if total is not None:
            total -= size
        if deadline is None:
            return


def minimize_lines(trace: str, sections=None, budget: int = EVENT_BUDGET) -> tuple[str, Outcome]:
    """Hypothesis shrinks the draws (whole chunks, values); this finishes
    on the text: drop single lines, one at a time, while the scenario still
    fails the same way.  A driver sequence hypothesis could only keep whole
    (a control word and bytes that do not matter) loses its idle parts."""
    outcome = check_scenario(trace, sections, budget)
    lines = trace.splitlines()
    changed = True
    while changed:
        changed = False
        for i in range(len(lines)):
            candidate = "\n".join(lines[:i] + lines[i + 1:]) + "\n"
            if not parse_trace(candidate):
                continue
            attempt = check_scenario(candidate, sections, budget)
            if attempt.status == outcome.status:
                lines, outcome, changed = lines[:i] + lines[i + 1:], attempt, True
                break
    return "\n".join(lines) + "\n", outcome


def _describe_failure(found: _Found, worker: int, config: Config | None = None) -> Failure:
    if config is not None and config.shrink:
        trace, outcome = minimize_lines(found.trace, config.sections, config.budget)
        if outcome.failed:
            found = _Found(trace, outcome)
    verdict = found.outcome.verdict
    counter = checker.counterexample(found.trace, verdict)
    line = fields = None
    if verdict.divergence is not None:
        from vmstate.check.report import changed_fields

        line, fields = verdict.divergence.line, changed_fields(verdict.divergence)
    elif verdict.refused_at is not None:
        line, fields = verdict.refused_at, [str(verdict.refusal)]
    return Failure(counter, verdict.status, line, fields or [], worker)


def _process_main(config: Config, worker: int, channel) -> None:
    """A worker process: batches its counts to the parent every 0.2 s."""
    pending = {"examples": 0, "costly": 0, "known": 0, "signatures": set()}
    last = [time.monotonic()]

    def flush() -> None:
        channel.put(("progress", worker, dict(pending, signatures=list(pending["signatures"]))))
        pending.update(examples=0, costly=0, known=0, signatures=set())
        last[0] = time.monotonic()

    def report(kind: str, payload) -> None:
        if kind == "example":
            pending["examples"] += 1
            pending["costly"] += payload.status == "costly"
            pending["known"] += payload.status == "known"
            pending["signatures"] |= payload.signatures
            if time.monotonic() - last[0] > 0.2:
                flush()
        else:
            flush()
            channel.put(("failure", worker, _describe_failure(payload, worker, config)))

    try:
        _run_worker(config, worker, report)
        flush()
        channel.put(("done", worker, None))
    except Exception as err:  # a worker must tell the parent, not die silently
        channel.put(("error", worker, f"{type(err).__name__}: {err}"))


def _share(total: int | None, workers: int, index: int) -> int | None:
    if total is None:
        return None
    return total // workers + (1 if index < total % workers else 0)


def campaign(config: Config, progress: bool = True, console=None) -> Report:
    """Run a campaign: ``config.workers`` processes (one in-process when 1),
    each drawing scenarios from :func:`vmstate.strategies.scenarios` on
    ``config.devices`` and judging them with :func:`check_scenario` against
    ``config.sections``; failures are shrunk, written to ``config.out`` as
    counterexample traces, and returned."""
    if config.workers < 1:
        raise UsageError("--workers must be at least 1")
    if config.examples is None and config.time_limit is None:
        raise UsageError("give --examples or --time")
    config.out.mkdir(parents=True, exist_ok=True)
    open_database(config.database, config.out / "database")
    result = Report(workers=config.workers)
    signatures: set = set()
    started = time.monotonic()
    bar = _Progress(config, progress, console)

    def absorb(kind: str, worker: int, payload) -> None:
        if kind == "progress":
            result.examples += payload["examples"]
            result.costly += payload["costly"]
            result.known += payload["known"]
            signatures.update(payload["signatures"])
        elif kind == "failure":
            result.failures.append(payload)
        elif kind == "error":
            raise RuntimeError(f"fuzz worker {worker} crashed: {payload}")
        result.states = len(signatures)
        result.seconds = time.monotonic() - started
        bar.update(result)

    with bar:
        if config.workers == 1:
            pending: list = []
            _process_main(config, 0, _ListChannel(pending, absorb))
        else:
            context = multiprocessing.get_context("fork")
            channel = context.Queue()
            processes = []
            for worker in range(config.workers):
                share = Config(**{**config.__dict__, "examples": _share(config.examples, config.workers, worker)})
                process = context.Process(target=_process_main, args=(share, worker, channel), daemon=True)
                process.start()
                processes.append(process)
            running = set(range(config.workers))
            try:
                while running:
                    try:
                        kind, worker, payload = channel.get(timeout=0.5)
                    except queue_module.Empty:
                        for worker, process in enumerate(processes):
                            if worker in running and not process.is_alive() and process.exitcode not in (0, None):
                                raise RuntimeError(f"fuzz worker {worker} died (exit {process.exitcode})")
                        continue
                    if kind == "done":
                        running.discard(worker)
                        continue
                    absorb(kind, worker, payload)
            finally:
                for process in processes:
                    if process.is_alive():
                        process.terminate()
                    process.join()
    result.seconds = time.monotonic() - started
    for failure in result.failures:
        digest = hashlib.sha1(failure.trace.encode()).hexdigest()[:10]
        path = config.out / f"counterexample-{failure.status}-{digest}.trace"
        path.write_text(failure.trace)
        failure.path = str(path)
    return result


class _ListChannel:
    """The in-process stand-in for a worker's queue."""

    def __init__(self, sink: list, absorb):
        self.sink = sink
        self.absorb = absorb

    def put(self, message) -> None:
        kind, worker, payload = message
        if kind != "done":
            self.absorb(kind, worker, payload)


class _Progress:
    """A rich progress bar: examples (of the total, or against the clock),
    examples/s, failures, set-aside scenarios and distinct states reached."""

    def __init__(self, config: Config, enabled: bool, console):
        self.enabled = enabled
        self.config = config
        self.console = console
        self.progress = None
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]fuzz[/] {task.description}"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[rate]:.1f} ex/s"),
            TextColumn("[red]{task.fields[failures]} failures[/]"),
            TextColumn("{task.fields[states]} states"),
            TextColumn("{task.fields[costly]} set aside"),
            TimeElapsedColumn(), console=self.console or Console(stderr=True), transient=False)
        self.progress.__enter__()
        total = self.config.examples if self.config.time_limit is None else self.config.time_limit
        what = ",".join(self.config.devices) + (" (seconds)" if self.config.time_limit else "")
        self.task = self.progress.add_task(what, total=total, rate=0.0, failures=0, states=0, costly=0)
        return self

    def update(self, result: Report) -> None:
        if self.progress is None:
            return
        done = result.examples if self.config.time_limit is None else result.seconds
        self.progress.update(self.task, completed=done, rate=result.rate, failures=len(result.failures),
                             states=result.states, costly=result.costly)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False


def report_json(result: Report) -> str:
    return json.dumps(result.to_json())
