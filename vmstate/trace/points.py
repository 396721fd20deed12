"""A trace's ``migrate`` lines as migration points.

``migrate from=DEVICE:N,... to=DEVICE:N,... downtime=NS``: the versions the
source writes, the highest the destination loads and the host time the
machine is stopped; what a line leaves out comes from the defaults (a
checker's own arguments).
"""
from __future__ import annotations

from vmstate.core.errors import TraceError, UsageError
from vmstate.machine import migration
from vmstate.machine.names import parse_versions
from vmstate.trace.numbers import parse_number

OPTIONS = ("from", "to", "downtime")


def _versions(text: str, command) -> dict[str, int]:
    try:
        return parse_versions(text)
    except UsageError as err:
        raise TraceError(str(err), command.line, command.text) from None


def point_of(command, versions: dict[str, int] | None = None, highest: dict[str, int] | None = None,
             downtime: int = 0) -> migration.Point:
    """One ``migrate`` line's point, its options overriding the defaults."""
    options = dict(command.args)
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TraceError(f"unknown migrate option {sorted(unknown)[0]!r} (from=, to=, downtime=)",
                         command.line, command.text)
    pause = downtime
    if "downtime" in options:
        try:
            pause = parse_number(options["downtime"])
        except ValueError:
            raise TraceError(f"downtime {options['downtime']!r} is not a number", command.line,
                             command.text) from None
    return migration.Point(
        command.line,
        _versions(options["from"], command) if "from" in options else dict(versions or {}),
        _versions(options["to"], command) if "to" in options else dict(highest or {}),
        pause)


def migration_points(commands, versions: dict[str, int] | None = None, highest: dict[str, int] | None = None,
                     downtime: int = 0) -> dict[int, migration.Point]:
    """Each ``migrate`` line's point, by its line number."""
    return {c.line: point_of(c, versions, highest, downtime) for c in commands if c.name == "migrate"}


def through_the_bytes(machine, command):
    """A ``migrate`` line as a live migration: save to a stream at the
    line's versions, restore into a fresh machine, go on with that one."""
    return migration.migrate(machine, point_of(command))[0]
