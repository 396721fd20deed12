"""How a verdict is shown: JSON for machines, a rich report for people."""
from __future__ import annotations

from typing import Any

from vmstate.check.checker import Divergence, MigrationRecord, Verdict
from vmstate.check.known import KNOWN_DIVERGENCES
from vmstate.core.observe import Clock, Edge, Read
from vmstate.present import console as make_console
from vmstate.present import event_json


def describe_event(event) -> str:
    if event is None:
        return "(nothing: the run ended)"
    if isinstance(event, Read):
        return f"{event.space} {event.addr:#x}/{event.size} = {event.value:#x} @ {event.time} ns"
    if isinstance(event, Edge):
        return f"IRQ {'raise' if event.level else 'lower'} {event.line} @ {event.time} ns"
    if isinstance(event, Clock):
        return f"clock -> {event.time} ns"
    return str(event)


def _record_json(record: MigrationRecord) -> dict:
    p = record.point
    return {"line": p.line, "from": p.versions, "to": p.highest, "downtime": p.downtime,
            "stream_length": record.stream_length, "state_diff": _plain(record.state_diff),
            "stream_diff": _plain(record.stream_diff)}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def verdict_json(verdict: Verdict) -> dict:
    out: dict = {"status": verdict.status, "events": verdict.events,
                 "migrations": [_record_json(r) for r in verdict.migrations],
                 "as_qemu_does": list(verdict.known)}
    if verdict.divergence is not None:
        d = verdict.divergence
        out["divergence"] = {
            "index": d.index, "line": d.line,
            "straight": event_json(d.straight), "migrated": event_json(d.migrated),
            "before": [[event_json(a), event_json(b)] for a, b in d.before],
            "migration": None if d.migration is None else _record_json(d.migration),
            "suspects": [{"line": line, "fields": fields} for line, fields in suspects(d)],
            "fields": changed_fields(d),
        }
    if verdict.refusal is not None:
        out["refusal"] = {"line": verdict.refused_at, **verdict.refusal.to_json()}
    return out


def suspects(divergence: Divergence) -> list[tuple[int, list[str]]]:
    """Each migration before the runs part that changed a field, latest
    first, with its line and the fields it changed."""
    found = []
    for record in divergence.migrations:
        fields = migration_fields(record)
        if fields:
            found.append((record.point.line, fields))
    return found


def changed_fields(divergence: Divergence) -> list[str]:
    """The state paths the migrations before the runs part changed: the
    suspects, the latest migration's first."""
    paths: list[str] = []
    for _, fields in suspects(divergence):
        paths.extend(f for f in fields if f not in paths)
    return paths


def migration_fields(record: MigrationRecord) -> list[str]:
    """The state paths one migration changed, so that two migrations of the
    same moment (at different versions) can be told apart by field."""
    paths: list[str] = []
    for diff in (record.state_diff, record.stream_diff):
        for kind in ("values_changed", "type_changes", "iterable_item_added", "iterable_item_removed",
                     "dictionary_item_added", "dictionary_item_removed", "attribute_added", "attribute_removed"):
            for path in diff.get(kind, {}):
                clean = str(path).removeprefix("root")
                clean = clean.replace("['", ".").replace("']", "").lstrip(".")
                if clean not in paths:
                    paths.append(clean)
    return paths


def headline(verdict: Verdict) -> str:
    if verdict.known:
        return "diverges exactly as QEMU 7.2 does"
    return verdict.status


def render(verdict: Verdict, console=None) -> None:
    # rich is imported when something is drawn (27 ms at start-up otherwise)
    from rich.panel import Panel
    from rich.table import Table

    console = console or make_console()
    colour = "cyan" if verdict.known else {"equivalent": "green", "diverges": "red", "refused": "yellow"}[verdict.status]
    done = len(verdict.migrations)
    tried = f"{done + 1} migration(s), the last refused" if verdict.refusal is not None else f"{done} migration(s)"
    console.print(Panel(f"[bold {colour}]{headline(verdict)}[/]  ({verdict.events} observed events, {tried})",
                        title="vmstate check"))
    for name in verdict.known:
        console.print(f"[cyan]{name}[/]: {KNOWN_DIVERGENCES[name].why}")
    if verdict.refusal is not None:
        console.print(f"The destination refused the stream at line {verdict.refused_at}: {verdict.refusal}")
        return
    if verdict.divergence is None:
        return
    d = verdict.divergence
    table = Table("#", "straight run", "migrated run", title=f"The runs part at line {d.line}")
    start = d.index - len(d.before)
    for offset, (a, b) in enumerate(d.before):
        table.add_row(str(start + offset), describe_event(a), describe_event(b))
    table.add_row(str(d.index), describe_event(d.straight), describe_event(d.migrated), style="bold red")
    console.print(table)
    if d.migration is not None:
        p = d.migration.point
        console.print(f"Last migration before it: line {p.line}, from {p.versions or 'current'} "
                      f"to {p.highest or 'current'}, downtime {p.downtime} ns")
    found = suspects(d)
    if found:
        diff = Table("field a migration changed", "migrate line", title="Suspects")
        for line, fields in found:
            for path in fields:
                diff.add_row(path, str(line))
        console.print(diff)
    elif d.migrations:
        console.print("No migration changed a field the stream carries: look for state it does not carry.")
