"""Fuzzing migration: random scenarios through the checker, failures shrunk
to replayable traces.

- :func:`check_scenario` judges one scenario.  It runs it straight and
  migrated with :func:`vmstate.check.checker.run`, comparing only the
  observation records first (the checker's field diffs are what make a
  check slow, and an equivalent run needs none); only a run that diverges
  goes through :func:`vmstate.check.checker.check` for the full verdict,
  which also says whether QEMU 7.2 diverges the same way.  An event budget
  bounds the work a scenario may cause, so that a drawn 1 kHz interrupt run
  for two hours is set aside instead of stalling a campaign; the states the
  scenario reached are recorded.
- :func:`campaign` is ``vmstate fuzz``: hypothesis drawing
  :func:`vmstate.strategies.scenarios`, in one or more worker processes that
  share hypothesis's example database, with progress on a terminal, every
  failure shrunk and written as a trace that ``vmstate check`` replays.
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
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase

from vmstate.check import checker
from vmstate.check.report import changed_fields
from vmstate.core.clock import EventBudget
from vmstate.core.errors import EventBudgetExceeded, UsageError
from vmstate.core.paths import cache
from vmstate.machine import migration
from vmstate.machine.pc import PcMachine
from vmstate.fuzz.reproducible import seed_alone
from vmstate.present import Progress
from vmstate.strategies import scenarios
from vmstate.trace.qtest import parse_trace

#: Timer events (callbacks run by the virtual clock) one scenario may cause,
#: straight and migrated runs together.  A step of hours is cheap while the
#: machine is quiet and ruinous with a fast periodic interrupt; a scenario
#: over budget is *set aside*, not judged (hypothesis treats it as invalid
#: and looks elsewhere, and never shrinks towards it).
EVENT_BUDGET = 40_000


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


# -- judging a scenario ----------------------------------------------------------------
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
    s = checker.Scenario.of(scenario, source_versions, destination_versions, downtime)
    used = migration.SECTIONS if sections is None else sections
    spent = EventBudget(budget)
    signatures: set = set()

    def reached(machine) -> None:
        signatures.update(state_signatures(machine))

    try:
        straight, end = checker.run(s.commands, s.options, s.points, False, used, at_point=reached, budget=spent)
        reached(end)
        try:
            migrated, _ = checker.run(s.commands, s.options, s.points, True, used, budget=spent)
        except checker.Refused:
            migrated = None
    except EventBudgetExceeded:
        return Outcome("costly", signatures=signatures)
    if migrated is not None and migrated.first_divergence(straight) is None:
        return Outcome("equivalent", signatures=signatures)
    # Diverges or refused: the checker's full verdict, and whether QEMU 7.2
    # diverges the same way.  These runs cost what the ones above did.
    verdict = checker.check(scenario, source_versions, destination_versions, downtime, sections=used,
                            known=accept_known)
    if verdict.equivalent:
        return Outcome("equivalent", verdict, signatures=signatures)
    if verdict.known:
        return Outcome("known", verdict, verdict.known, signatures)
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


def default_database() -> Path:
    """The example database a campaign keeps when ``--database`` names none:
    in vmstate's cache, so that later campaigns replay what earlier ones
    found, wherever they are run from."""
    return cache() / "fuzz-database"


def _keep_hypothesis_out_of_the_current_folder() -> None:
    """Hypothesis keeps files of its own (``.hypothesis/``) in the current
    folder unless told otherwise; a campaign that finds nothing leaves
    nothing there."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(cache() / "hypothesis")


def open_database(spec: str | os.PathLike | None, default: Path):
    """Hypothesis's example database from ``--database``: a directory, a
    ``redis://`` URL (hypothesis.extra.redis, needs the ``redis`` package),
    or ``:memory:`` (nothing kept: seeded test campaigns).
    Workers open it each for themselves; both kinds are safe to share."""
    spec = str(spec) if spec is not None else str(default)
    if spec == ":memory:":
        return InMemoryExampleDatabase()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        try:  # an optional extra, imported only for a redis:// database
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as err:
            raise UsageError(f"--database {spec}: the redis package is missing (pip install 'vmstate[redis]'): "
                             f"{err}") from None
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


def _property(config: Config, report: Callable[[str, Any], None]):
    """The hypothesis test a worker runs: one scenario, judged.  Its verdict
    depends on the scenario alone (never on the time), so that hypothesis's
    shrinking and replaying see the same failure."""
    strategy = scenarios(devices=config.devices, max_chunks=config.max_chunks)

    @given(strategy)
    def migration_is_invisible(trace: str) -> None:
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
    return migration_is_invisible


#: A time-limited campaign runs in rounds sized to end near its deadline
#: (the first round this long, later ones by the rate measured so far), and
#: stops between rounds: a deadline never cuts a round short.
FIRST_ROUND = 10
MAX_ROUND = 200


def _run_worker(config: Config, worker: int, report: Callable[[str, Any], None]) -> None:
    """Rounds of hypothesis runs until the example count or the time is up;
    each failure found is reported, shrunk."""
    started = time.monotonic()
    deadline = started + config.time_limit if config.time_limit else None
    _keep_hypothesis_out_of_the_current_folder()
    database = None if config.derandomize else open_database(config.database, default_database())
    total = config.examples
    done = [0]

    def counted(kind: str, payload) -> None:
        done[0] += kind == "example"
        report(kind, payload)

    test = _property(config, counted)
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if config.shrink:
        phases.append(Phase.shrink)
    for index in itertools.count():
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return
        if total is not None and total <= 0:
            return
        if deadline is None:
            size = total
        else:
            rate = done[0] / (now - started) if done[0] else None
            size = FIRST_ROUND if rate is None else max(1, min(MAX_ROUND, int(rate * (deadline - now))))
            size = size if total is None else min(total, size)
        round_test = settings(max_examples=size, deadline=None, database=database, derandomize=config.derandomize,
                              suppress_health_check=list(HealthCheck), phases=phases, report_multiple_bugs=False,
                              print_blob=False)(test)
        if config.seed is not None and not config.derandomize:
            round_test = hypothesis_seed(config.seed * 1009 + worker * 101 + index)(round_test)
        try:
            with seed_alone() if config.seed is not None or config.derandomize else contextlib.nullcontext():
                round_test()
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


def campaign(config: Config, progress: bool = True) -> Report:
    """Run a campaign: ``config.workers`` processes (one in-process when 1),
    each drawing scenarios from :func:`vmstate.strategies.scenarios` on
    ``config.devices`` and judging them with :func:`check_scenario` against
    ``config.sections``; failures are shrunk, written to ``config.out`` as
    counterexample traces, and returned."""
    if config.workers < 1:
        raise UsageError("--workers must be at least 1")
    if config.examples is None and config.time_limit is None:
        raise UsageError("give --examples or --time")
    _keep_hypothesis_out_of_the_current_folder()
    open_database(config.database, default_database())
    result = Report(workers=config.workers)
    signatures: set = set()
    started = time.monotonic()
    timed = config.time_limit is not None
    bar = Progress(f"fuzz {','.join(config.devices)}" + (" (seconds)" if timed else ""),
                   config.time_limit if timed else config.examples,
                   ("{task.fields[rate]:.1f} ex/s", "[red]{task.fields[failures]} failures[/]",
                    "{task.fields[states]} states", "{task.fields[costly]} set aside"),
                   {"rate": 0.0, "failures": 0, "states": 0, "costly": 0},
                   enabled=None if progress else False, transient=False)

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
        bar.update(result.seconds if timed else result.examples, rate=result.rate, failures=len(result.failures),
                   states=result.states, costly=result.costly)

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
        config.out.mkdir(parents=True, exist_ok=True)
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


def report_json(result: Report) -> str:
    return json.dumps(result.to_json())
