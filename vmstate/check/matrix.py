"""The cross-version matrix: every pair of (saved, loading) versions of each
multi-version section, over the scenario library.

A destination that loads an older stream can only be as faithful as the
older format allows, so a cell is judged against the same scenario migrated
at the current versions, not against a run that never migrated: a scenario
that QEMU 7.2 itself gets wrong at the same version (its RTC re-phases the
periodic interrupt on every load) then counts against no pair.  What an old
format cannot carry is written down in ``KNOWN_LIMITS``, read from the
schemas and QEMU 7.2's VMStateDescriptions and post_load hooks, each with
the smallest scenario that makes it visible; a cell that diverges (or is
refused, other than for a version too new) for any other reason is a bug.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from schemas import SECTIONS
from vmstate.check import checker
from vmstate.check.known import KNOWN_LIMITS, Limit, limit_for
from vmstate.check.report import changed_fields, migration_fields
from vmstate.core.errors import UsageError, VersionTooNew
from vmstate.core.paths import SCENARIOS
from vmstate.machine import names
from vmstate.trace.load import expected_divergence

LIBRARY = SCENARIOS


STATUSES = ("equivalent", "refused", "diverges")


@dataclass(frozen=True)
class Cell:
    device: str
    saved: int
    loading: int
    scenario: str
    status: str
    error: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()
    limit: Limit | None = None

    @property
    def direction(self) -> str:
        return "same" if self.saved == self.loading else "forward" if self.saved < self.loading else "backward"

    @property
    def explained(self) -> bool:
        """An older destination refusing a newer stream is the format working
        as meant; anything else short of equivalence needs a known limit."""
        if self.status == "equivalent":
            return True
        if self.status == "refused" and self.error == VersionTooNew.__name__ and self.saved > self.loading:
            return True
        return self.limit is not None


@dataclass
class Matrix:
    cells: list[Cell]
    versions: dict[str, tuple[int, int]]
    scenarios: list[str]
    seconds: float = 0.0
    baseline: dict[str, str] = field(default_factory=dict)
    surprises: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Cell]:
        return [cell for cell in self.cells if not cell.explained]

    @property
    def failed(self) -> bool:
        return bool(self.unexplained or self.surprises)

    def at(self, device: str, saved: int, loading: int) -> list[Cell]:
        return [c for c in self.cells if (c.device, c.saved, c.loading) == (device, saved, loading)]


def multi_version(sections=SECTIONS) -> dict[str, tuple[int, int]]:
    """Each section that can be written at more than one version, by the key
    ``--from``/``--to`` take, with its (oldest, newest) version."""
    out = {}
    for schema in sections:
        low, high = schema.description.minimum, schema.description.version
        if low < high:
            out[schema.device] = (low, high)
    return out


def select(device: str | None = None, sections=SECTIONS) -> dict[str, tuple[int, int]]:
    """The sections a matrix covers: one by name, or all with several versions."""
    versions = multi_version(sections)
    if device is None:
        return versions
    device = names.device(device)
    if device not in versions:
        raise UsageError(f"no multi-version device {device!r}; one of {', '.join(sorted(versions))}")
    return {device: versions[device]}


def pairs(low: int, high: int) -> list[tuple[int, int]]:
    return [(saved, loading) for saved in range(low, high + 1) for loading in range(low, high + 1)]


def library() -> list[Path]:
    found = sorted(LIBRARY.glob("*.trace"))
    if not found:
        raise UsageError(f"no scenarios in {LIBRARY}: run this from a clone of the repository")
    return found


def _as_expected(text: str, verdict: checker.Verdict) -> bool:
    """A same-version check is the reference the cells are judged against,
    so it must itself be right: equivalent, or diverging where the scenario
    says QEMU 7.2 does."""
    if verdict.equivalent:
        return True
    expected = expected_divergence(text)
    return verdict.divergence is not None and expected in changed_fields(verdict.divergence)


def _suspects(verdict: checker.Verdict, baseline: checker.Verdict, index: int) -> tuple[str, ...]:
    """The fields the cross-version migration before the parting event
    changed that the same-version one at that point did not."""
    events = verdict.migrated.events
    line = (events[index] if index < len(events) else baseline.migrated.events[index]).op
    last = max((i for i, record in enumerate(verdict.migrations) if record.point.line < line), default=None)
    if last is None:
        return ()
    changed = migration_fields(verdict.migrations[last])
    usual = set(migration_fields(baseline.migrations[last])) if last < len(baseline.migrations) else set()
    return tuple(path for path in changed if path not in usual) or tuple(changed)


def judge(device: str, saved: int, loading: int, scenario: str, verdict: checker.Verdict,
          baseline: checker.Verdict) -> Cell:
    """One cell from its check and the scenario's same-version check."""
    where = dict(device=device, saved=saved, loading=loading, scenario=scenario)
    if verdict.status == "refused":
        error = type(verdict.refusal).__name__
        return Cell(**where, status="refused", error=error, message=str(verdict.refusal),
                    limit=None if saved > loading and error == VersionTooNew.__name__
                    else limit_for(device, saved, error=error))
    if verdict.equivalent:
        return Cell(**where, status="equivalent")
    index = baseline.migrated.first_divergence(verdict.migrated)
    if index is None:
        return Cell(**where, status="equivalent")
    fields = _suspects(verdict, baseline, index)
    return Cell(**where, status="diverges", fields=fields, limit=limit_for(device, saved, fields))


def build(scenarios: list[Path] | None = None, device: str | None = None, sections=SECTIONS,
          advance: Callable[[str], None] | None = None) -> Matrix:
    """Run every cell; ``advance`` is told of each check as it finishes."""
    versions = select(device, sections)
    paths = library() if scenarios is None else list(scenarios)
    started = time.perf_counter()
    cells: list[Cell] = []
    baselines: dict[str, str] = {}
    surprises: list[str] = []
    for path in paths:
        text = path.read_text()
        baseline = checker.check(text, sections=sections, known=False)
        baselines[path.stem] = baseline.status
        if not _as_expected(text, baseline):
            surprises.append(path.stem)
        for name, (low, high) in versions.items():
            for saved, loading in pairs(low, high):
                verdict = checker.check(text, source_versions={name: saved}, destination_versions={name: loading},
                                        sections=sections, known=False)
                cells.append(judge(name, saved, loading, path.stem, verdict, baseline))
                if advance is not None:
                    advance(f"{path.stem} {name} v{saved}->v{loading}")
    return Matrix(cells, versions, [p.stem for p in paths], time.perf_counter() - started, baselines, surprises)


def checks(versions: dict[str, tuple[int, int]], scenarios: int) -> int:
    """How many checks a matrix runs, for a progress bar."""
    return scenarios * sum(len(pairs(low, high)) for low, high in versions.values())


def summary(cells: list[Cell]) -> str:
    """One grid square: how many scenarios came out each way, with the
    known limit (or the lack of one) behind every cell short of equivalent."""
    groups: dict[tuple, int] = {}
    for cell in cells:
        what = cell.status if cell.error is None else f"{cell.status}: {cell.error}"
        why = "" if cell.status == "equivalent" else cell.limit.key if cell.limit else \
            "" if cell.explained else "UNEXPLAINED"
        groups[(what, why)] = groups.get((what, why), 0) + 1
    order = lambda item: (STATUSES.index(item[0][0].split(":")[0]), item[0])  # noqa: E731
    return ", ".join(f"{n} {what}" + (f" ({why})" if why else "") for (what, why), n in sorted(groups.items(),
                                                                                                key=order))


def _grid(matrix: Matrix, device: str) -> tuple[list[str], list[list[str]]]:
    low, high = matrix.versions[device]
    header = ["saved \\ loading"] + [f"v{v}" for v in range(low, high + 1)]
    rows = [[f"v{saved}"] + [summary(matrix.at(device, saved, loading)) for loading in range(low, high + 1)]
            for saved in range(low, high + 1)]
    return header, rows


def _cell_json(cell: Cell) -> dict:
    return {"device": cell.device, "saved": cell.saved, "loading": cell.loading, "direction": cell.direction,
            "scenario": cell.scenario, "status": cell.status, "error": cell.error, "message": cell.message,
            "fields": list(cell.fields), "limit": cell.limit.key if cell.limit else None,
            "explained": cell.explained}


def _limit_json(limit: Limit) -> dict:
    return {"key": limit.key, "device": limit.device, "versions": list(limit.versions),
            "lacks": list(limit.lacks), "instead": limit.instead, "scenario": limit.scenario,
            "refuses": list(limit.refuses)}


def to_json(matrix: Matrix) -> dict:
    return {"devices": {name: {"oldest": low, "newest": high,
                               "grid": {f"{s}->{l}": summary(matrix.at(name, s, l)) for s, l in pairs(low, high)}}
                        for name, (low, high) in matrix.versions.items()},
            "scenarios": matrix.scenarios, "same_version": matrix.baseline,
            "cells": [_cell_json(cell) for cell in matrix.cells],
            "known_limits": [_limit_json(limit) for limit in KNOWN_LIMITS],
            "unexplained": len(matrix.unexplained), "unexpected_same_version": matrix.surprises,
            "seconds": round(matrix.seconds, 3)}


def _md_row(values: list[str]) -> str:
    return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"


def to_markdown(matrix: Matrix) -> str:
    lines = []
    for device in matrix.versions:
        header, rows = _grid(matrix, device)
        lines += [f"### {device}", "", _md_row(header), _md_row(["---"] * len(header))]
        lines += [_md_row(row) for row in rows] + [""]
    lines += ["### Known limits of old formats", "",
              _md_row(["limit", "section", "versions", "state not carried", "what the destination does",
                       "minimal scenario"]),
              _md_row(["---"] * 6)]
    for limit in KNOWN_LIMITS:
        lines.append(_md_row([limit.key, limit.device, ", ".join(f"v{v}" for v in limit.versions),
                              ", ".join(f"`{path}`" for path in limit.lacks), limit.instead,
                              f"`fixtures/scenarios/{limit.scenario}.trace`"]))
    lines += ["", f"{len(matrix.cells)} cells over {len(matrix.scenarios)} scenarios, "
                  f"{len(matrix.unexplained)} unexplained."]
    if matrix.surprises:
        lines += ["", f"Same-version migration not as expected: {', '.join(matrix.surprises)}."]
    return "\n".join(lines) + "\n"


def render(matrix: Matrix, console) -> None:
    from rich.table import Table  # imported when something is drawn (27 ms at start-up otherwise)

    for device in matrix.versions:
        header, rows = _grid(matrix, device)
        table = Table(*header, title=f"{device}: saved version (rows) loaded by (columns)", show_lines=True)
        for row in rows:
            style = "bold red" if "UNEXPLAINED" in " ".join(row) else None
            table.add_row(*row, style=style)
        console.print(table)
    used = {cell.limit.key for cell in matrix.cells if cell.limit is not None}
    limits = Table("limit", "section", "not carried", "minimal scenario", title="Known limits behind the cells")
    for limit in KNOWN_LIMITS:
        if limit.key in used:
            limits.add_row(limit.key, f"{limit.device} v{', v'.join(map(str, limit.versions))}",
                           ", ".join(limit.lacks), limit.scenario)
    if used:
        console.print(limits)
    for cell in matrix.unexplained:
        console.print(f"[bold red]unexplained[/] {cell.device} v{cell.saved}->v{cell.loading} on {cell.scenario}: "
                      f"{cell.status} {cell.error or ''} {', '.join(cell.fields)}")
    for name in matrix.surprises:
        console.print(f"[bold red]{name}[/] is not as expected across a same-version migration: "
                      f"run `vmstate check` on it")
    console.print(f"{len(matrix.cells)} cells over {len(matrix.scenarios)} scenarios in {matrix.seconds:.1f} s, "
                  f"{len(matrix.unexplained)} unexplained")
