"""How vmstate shows what it found, to people and to programs.

One place for the shapes every command shares: decoded fields flattened to
QEMU's field paths (``channels[1].latched_count``), values written for a
person (hex, long buffers cut) or for JSON (buffers as hex strings), events
as JSON, and progress bars, which are drawn on a terminal only: in a log or
a pipe they would be cut to pieces and cost time.  rich is imported where
something is drawn, not when this module is.
"""
from __future__ import annotations

import sys
from typing import Any, Iterator


def flatten(fields: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """A decoded section's values (as :func:`vmstate.wire.table.to_container`
    gives them) as (field path, raw value) pairs."""
    for name, value in fields.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from flatten(item, f"{prefix}{name}[{i}].")
        else:
            yield f"{prefix}{name}", value


def shown(value: Any) -> str:
    """A raw value as a person reads it: integers in hex (negative ones in
    decimal), buffers in hex, cut after 16 bytes."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if len(value) <= 16 else f"{value[:16].hex()}... ({len(value)} bytes)"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return f"{value:#x}"
    return str(value)


def jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default``: buffers as hex strings."""
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON")


def event_json(event) -> dict | None:
    """An observed event (a read, an interrupt edge, a clock answer)."""
    return None if event is None else {"kind": type(event).__name__.lower(), **event._asdict()}


def on_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """A progress bar on standard error, drawn only on a terminal.

    ``columns`` are rich text-column templates over the task's fields
    (``"{task.fields[rate]:.1f} ex/s"``); ``values`` their starting values.
    ``update`` takes the completed count and new field values."""

    def __init__(self, label: str, total: float | None, columns: tuple[str, ...] = (),
                 values: dict | None = None, enabled: bool | None = None, transient: bool = True):
        self.enabled = on_terminal() if enabled is None else enabled
        self.label, self.total, self.columns = label, total, columns
        self.values = dict(values or {})
        self.transient = transient
        self._bar = self._task = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, \
                TimeElapsedColumn

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            *(TextColumn(column) for column in self.columns), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=self.transient)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, **self.values)
        return self

    def update(self, completed: float | None = None, advance: float | None = None,
               description: str | None = None, **values) -> None:
        if self._bar is None:
            return
        extra = {"description": description} if description is not None else {}
        self._bar.update(self._task, completed=completed, advance=advance, **extra, **values)

    def __exit__(self, *exc) -> bool:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False


def console(stderr: bool = False):
    """A rich console for tables and panels."""
    from rich.console import Console

    return Console(stderr=stderr)
