"""``vmstate hostile``: hostile inputs by the thousand, and what broke."""
from __future__ import annotations

import gc
import json
import random
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vmstate.core.errors import UsageError
from vmstate.core.paths import FIXTURES
from vmstate.fuzz.hostile.corpus import input_kind, keep, write_corpus
from vmstate.fuzz.hostile.mutations import mutate
from vmstate.fuzz.hostile.probe import (ALLOCATION_BOUND, DEADLINE_SECONDS, REAL_BOUND, RETAINED_BOUND, TRACE_BOUND,
                                        WARM_UP, probe, probe_real, probe_snapshot, probe_trace, snapshot)
from vmstate.fuzz.hostile.realstreams import hostile_real, real_seeds
from vmstate.fuzz.hostile.seeds import destination_of, seeds
from vmstate.fuzz.hostile.snapshots import hostile_snapshot
from vmstate.fuzz.hostile.traces import hostile_trace, trace_seeds
from vmstate.present import Progress, console

#: Of every hundred inputs, how many are snapshot files, traces and whole
#: QEMU streams (slow to read: 300 KB each); the rest are device-state
#: streams, where most of the bytes a user is handed come from.
SNAPSHOTS, TRACES, REAL = 6, 8, 3


@dataclass
class Finding:
    """An input that broke a rule."""

    violation: str
    detail: str
    seed: str
    mutation: str
    data: bytes


@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    restored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    mutations: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    peak: int = 0
    peaks: dict[str, int] = field(default_factory=dict)
    slowest: float = 0.0
    retained: int | None = None
    kept: dict[tuple, dict] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict:
        return {"inputs": self.inputs, "seconds": round(self.seconds, 2),
                "inputs_per_second": round(self.inputs / self.seconds, 1) if self.seconds else None,
                "restored": self.restored, "refused": dict(sorted(self.refused.items())),
                "mutations": dict(sorted(self.mutations.items())),
                "peak_bytes": self.peak, "allocation_bound": ALLOCATION_BOUND,
                "peak_bytes_by_kind": dict(sorted(self.peaks.items())), "trace_allocation_bound": TRACE_BOUND,
                "qemu_stream_allocation_bound": REAL_BOUND,
                "slowest_seconds": round(self.slowest, 4), "deadline_seconds": DEADLINE_SECONDS,
                "retained_bytes": self.retained, "retained_bound": RETAINED_BOUND,
                "corpus": len(self.kept), "clean": self.clean,
                "violations": [{"violation": f.violation, "detail": f.detail, "seed": f.seed,
                                "mutation": f.mutation, "length": len(f.data)} for f in self.findings]}


def campaign(inputs: int, seed: int = 0, progress: Callable[[int], None] | None = None,
             root: Path = FIXTURES, measure: bool = True, scenarios: int | None = None) -> Report:
    """Feed ``inputs`` hostile inputs (deterministic in ``seed``) to restore,
    each into a busy destination, and report what broke.  ``progress(n)``
    is called after every n inputs."""
    if inputs < 0:
        raise UsageError(f"--inputs must be at least 0, not {inputs}")
    rng = random.Random(seed)
    pool = seeds(root, scenarios)
    texts = trace_seeds(root)
    whole = real_seeds(root)
    # Busy destinations (copies), by destination_of; a restore that
    # succeeds rightly changes one, and it serves on as the machine that
    # stream describes.
    live: dict[tuple, tuple] = {}
    report = Report()
    started = time.perf_counter()
    warm = None
    # Traced throughout rather than per input: starting and stopping
    # tracemalloc for each restore is slower, and fragments the heap so
    # that the process grows for reasons of its own.
    tracing = measure and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        for n in range(inputs):
            s = rng.randrange(len(pool))
            source = pool[s]
            kind = rng.randrange(100)
            if kind < SNAPSHOTS:
                name, data = hostile_snapshot(rng, source)
                out = probe_snapshot(data, measure=measure)
            elif kind < SNAPSHOTS + TRACES:
                name, data = hostile_trace(rng, texts)
                out = probe_trace(data, measure=measure)
            elif kind < SNAPSHOTS + TRACES + REAL and whole:
                name, data, real = hostile_real(rng, whole)
                out = probe_real(data, real.clock, measure=measure)
                if out.error is not None and out.violation is None:
                    keep(report, out.error, real, name, data, {"clock": real.clock}, real.data)
            else:
                name, data = mutate(rng, source, pool)
                d = destination_of(pool, s)
                if d not in live:
                    live[d] = pool[d[1]].machine.clone(), None
                dest, before = live[d]
                if before is None:
                    before = snapshot(dest)
                    live[d] = dest, before
                out = probe(data, dest, before, clock=source.clock, measure=measure, offsets=source.offsets_in(data))
                if out.violation == "destination changed" or out.error is None:
                    live[d] = dest, None
            report.inputs += 1
            report.mutations[name] = report.mutations.get(name, 0) + 1
            report.peak = max(report.peak, out.peak)
            kind = input_kind(name)
            report.peaks[kind] = max(report.peaks.get(kind, 0), out.peak)
            report.slowest = max(report.slowest, out.seconds)
            if out.violation is not None:
                report.findings.append(Finding(out.violation, out.detail, source.name, name, data))
            if out.error is None:
                report.restored += 1
            else:
                label = type(out.error).__name__
                report.refused[label] = report.refused.get(label, 0) + 1
                if out.violation is None and not name.startswith("qemu-"):
                    keep(report, out.error, source, name, data)
            if measure and n + 1 == WARM_UP:
                gc.collect()
                warm = tracemalloc.get_traced_memory()[0]
            if progress is not None:
                progress(1)
        if warm is not None:
            gc.collect()
            report.retained = tracemalloc.get_traced_memory()[0] - warm
            if report.retained > RETAINED_BOUND:
                report.findings.append(Finding(
                    "retained memory", f"Python holds {report.retained} bytes more than after the first "
                    f"{WARM_UP} inputs (bound {RETAINED_BOUND})", "all", "all", b""))
    finally:
        if tracing:
            tracemalloc.stop()
        report.seconds = time.perf_counter() - started
    return report


def run(inputs: int, seed: int, out: Path | None, as_json: bool) -> Report:
    """``vmstate hostile``: the campaign with a progress bar (on a terminal),
    then its report (and the corpus and violating inputs in ``out``)."""
    clock = time.perf_counter()
    with Progress("hostile streams", inputs, ("{task.fields[rate]}/s",), {"rate": "-"}) as bar:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if done % 50 == 0 or done == inputs:
                elapsed = time.perf_counter() - clock
                bar.update(done, rate=f"{done / elapsed:.0f}" if elapsed else "-")

        report = campaign(inputs, seed, advance)
    summary = report.to_json()
    if out is not None:
        summary["corpus_written"] = len(write_corpus(report, out))
        if report.findings:
            bad = out / "violations"
            bad.mkdir(parents=True, exist_ok=True)
            for i, finding in enumerate(report.findings):
                (bad / f"{i:03d}-{finding.violation.replace(' ', '-')}.bin").write_bytes(finding.data)
    if as_json:
        print(json.dumps(summary))
    else:
        _render(summary, console())
    return report


def _render(summary: dict, console) -> None:
    from rich.table import Table  # imported when something is drawn (27 ms at start-up otherwise)

    table = Table(title=f"{summary['inputs']} hostile inputs in {summary['seconds']} s "
                        f"({summary['inputs_per_second']} inputs/s)")
    table.add_column("outcome")
    table.add_column("inputs", justify="right")
    table.add_row("restored (still valid)", str(summary["restored"]))
    for name, count in summary["refused"].items():
        table.add_row(f"refused: {name}", str(count))
    console.print(table)
    console.print(f"largest allocation peak {summary['peak_bytes']} bytes (bound {summary['allocation_bound']}); "
                  f"slowest restore {summary['slowest_seconds']} s (deadline {summary['deadline_seconds']} s)")
    if summary["retained_bytes"] is not None:
        console.print(f"memory held grew by {summary['retained_bytes']} bytes after warm-up "
                      f"(bound {summary['retained_bound']})")
    if "corpus_written" in summary:
        console.print(f"corpus: {summary['corpus_written']} inputs written")
    for v in summary["violations"][:20]:
        console.print(f"[bold red]{v['violation']}[/] ({v['mutation']} of {v['seed']}, {v['length']} bytes): "
                      f"{v['detail'].strip().splitlines()[-1] if v['detail'].strip() else ''}")
    console.print("[bold green]clean[/]" if summary["clean"] else
                  f"[bold red]{len(summary['violations'])} violation(s)[/]")
