"""A verdict as a picture: both runs on one virtual-time line.

A list of events says where the runs part; a picture shows how: an interrupt
that comes a little late, a second that restarts, a line that stays up.  The
straight run is drawn above the migrated one, one lane per interrupt line and
per port or address read, with the migrations and the first difference
marked.  matplotlib is an optional extra (``vmstate[plot]``), imported only
when a picture is asked for.
"""
from __future__ import annotations

from pathlib import Path

from vmstate.check.checker import Verdict
from vmstate.check.report import describe_event
from vmstate.core.errors import UsageError
from vmstate.core.observe import Edge, Observations, Read

FORMATS = (".svg", ".png")
DIVERGENCE_GID = "divergence"
NS_PER_MS = 1_000_000


class PlotUnavailable(UsageError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("drawing needs matplotlib: pip install 'vmstate[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def check_path(path: Path) -> None:
    """Refuse a file the picture cannot be written as before running anything."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"{path}: a picture is written as {' or '.join(FORMATS)}")


def _lane(event) -> str:
    if isinstance(event, Edge):
        return f"IRQ {event.line}"
    return f"{event.space} {event.addr:#x}"


def lanes(*runs: Observations) -> list[str]:
    """Interrupt lines first, then what was read, in the order seen, so that
    both runs share the same rows."""
    edges, reads = [], []
    for run in runs:
        for event in run.events:
            if isinstance(event, (Edge, Read)):
                group = edges if isinstance(event, Edge) else reads
                if _lane(event) not in group:
                    group.append(_lane(event))
    return sorted(edges, key=lambda name: int(name.split()[1])) + reads


def migration_times(verdict: Verdict) -> list[int]:
    """Virtual time at each migration: only clock commands move the clock and
    each is observed, so it is the latest time seen before the migrate line."""
    times = []
    for record in verdict.migrations:
        seen = [e.time for e in verdict.straight.events if e.op < record.point.line]
        times.append(max(seen, default=0))
    return times


def _draw_run(axes, run: Observations, rows: list[str], end: int, title: str) -> None:
    y = {name: i for i, name in enumerate(rows)}
    levels: dict[str, list[tuple[int, int]]] = {}
    stacked: dict[tuple[str, int], int] = {}
    for event in run.events:
        if isinstance(event, Edge):
            levels.setdefault(_lane(event), [(0, 0)]).append((event.time, event.level))
        elif isinstance(event, Read):
            row = y[_lane(event)]
            # reads at one instant are stacked, not drawn over each other
            above = stacked[_lane(event), event.time] = stacked.get((_lane(event), event.time), -1) + 1
            axes.plot(event.time / NS_PER_MS, row, marker="o", markersize=3, color="tab:blue")
            axes.annotate(f"{event.value:#x}", (event.time / NS_PER_MS, row), xytext=(2, 4 + 7 * above),
                          textcoords="offset points", fontsize=6)
    for name, steps in levels.items():
        steps.append((end, steps[-1][1]))
        axes.step([t / NS_PER_MS for t, _ in steps], [y[name] + 0.7 * level for _, level in steps],
                  where="post", color="tab:green", linewidth=1)
    axes.set_yticks(range(len(rows)), rows)
    axes.set_ylim(-0.5, max(len(rows), 1) - 0.2)
    axes.set_title(title, fontsize=9, loc="left")


def _event_time(verdict: Verdict) -> int | None:
    d = verdict.divergence
    if d is None:
        return None
    return min(e.time for e in (d.straight, d.migrated) if e is not None)


def draw(verdict: Verdict, path: Path) -> Path:
    """Write the picture of ``verdict`` to ``path`` (.svg or .png)."""

    check_path(path)
    pyplot = _pyplot()
    rows = lanes(verdict.straight, verdict.migrated)
    every = verdict.straight.events + verdict.migrated.events
    end = max((e.time for e in every), default=0) or 1
    figure, (above, below) = pyplot.subplots(2, 1, sharex=True, figsize=(11, 2.2 + 0.5 * len(rows) * 2))
    _draw_run(above, verdict.straight, rows, end, "straight run")
    _draw_run(below, verdict.migrated, rows, end, "migrated run")
    for at in migration_times(verdict):
        for axes in (above, below):
            axes.axvline(at / NS_PER_MS, color="grey", linestyle=":", linewidth=1)
    headline = f"vmstate check: {verdict.status}"
    at = _event_time(verdict)
    if at is not None:
        d = verdict.divergence
        for axes, event in ((above, d.straight), (below, d.migrated)):
            axes.axvline(at / NS_PER_MS, color="red", linestyle="--", linewidth=1.5, gid=DIVERGENCE_GID)
            if isinstance(event, (Edge, Read)):
                axes.plot(event.time / NS_PER_MS, rows.index(_lane(event)), marker="o", markersize=9,
                          markerfacecolor="none", markeredgecolor="red")
        headline += (f" at line {d.line}: straight {describe_event(d.straight)}, "
                     f"migrated {describe_event(d.migrated)}")
    elif verdict.refusal is not None:
        headline += f" at line {verdict.refused_at}: {type(verdict.refusal).__name__}"
    figure.suptitle(headline, fontsize=9, color="red" if verdict.status != "equivalent" else "black")
    below.set_xlim(left=0)
    below.set_xlabel("virtual time (ms); dotted: migrations, dashed red: the first difference")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None
    finally:
        pyplot.close(figure)
    return Path(path)
