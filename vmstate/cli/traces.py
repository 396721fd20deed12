"""Traces and snapshots: ``run``, ``save``, ``restore``, ``inspect``."""
from __future__ import annotations

import json

import click

from vmstate.cli.group import (budget_option, event_budget, events_json, fail, load_trace_file, machine_options,
                               main, trace_argument)
from vmstate.core.errors import UsageError, VmstateError


@main.command()
@trace_argument()
@machine_options
@budget_option
@click.option("--json", "as_json", is_flag=True,
              help="Print every command with its reply lines, and the observation record, as JSON.")
def run(trace, rtc_base, rtc_clock, max_events, as_json):
    """Run a qtest TRACE (or - for standard input) and print QEMU 7.2's replies.

    The output can be compared line for line with what QEMU prints to a
    qtest client for the same commands.  The whole trace is parsed before
    any of it runs; it then runs as it is read, holding no record of what
    the guest saw unless --json asks for it."""
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner, iter_commands

    try:
        text, options = load_trace_file(trace, rtc_base, rtc_clock)
        with event_budget(max_events) as budget:
            runner = Runner(PcMachine(**options, budget=budget))
            if as_json:
                replies = [{"line": c.line, "command": c.text, "reply": runner.execute(c)}
                           for c in iter_commands(text)]
                click.echo(json.dumps({"replies": replies, "events": json.loads(events_json(runner))}))
                return
            runner.session.observations = None
            for line in runner.run(iter_commands(text)):
                click.echo(line)
    except VmstateError as err:
        fail(err, as_json, trace)


def _versions_option(func):
    return click.option("--versions", default="", metavar="DEVICE=N,...",
                        help="Section versions to write, e.g. i8254=2,hpet=1 (default: current).")(func)


@main.command()
@trace_argument()
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Snapshot file to write (atomically), or - for standard output.")
@_versions_option
@machine_options
@budget_option
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot's header as JSON.")
def save(trace, output, versions, rtc_base, rtc_clock, max_events, as_json):
    """Run TRACE on a fresh machine, then save its device state to a snapshot.

    The snapshot holds a QEMU 7.2 migration stream and, beside it, the
    machine options, versions and clocks it needs; a checksum covers it all.
    Written to standard output, the summary goes to standard error."""
    from vmstate.machine import migration
    from vmstate.machine.names import parse_versions
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner, iter_commands
    from vmstate.core.outputs import check_output, write_atomically
    from vmstate.wire import snapshot

    try:
        if output != "-":
            check_output(output, "--output")
        text, options = load_trace_file(trace, rtc_base, rtc_clock)
        chosen = parse_versions(versions)
        with event_budget(max_events) as budget:
            runner = Runner(PcMachine(**options, budget=budget))
            runner.session.observations = None
            for _ in runner.run(iter_commands(text)):
                pass
        stream = migration.save(runner.machine, chosen)
        header = snapshot.header_for(runner.machine, chosen)
        data = snapshot.encode(stream, header)
        if output == "-":
            click.get_binary_stream("stdout").write(data)
        else:
            write_atomically(output, data)
    except VmstateError as err:
        fail(err, as_json, trace)
    except OSError as err:
        fail(UsageError(f"{output}: {err.strerror}"), as_json)
    shown = "standard output" if output == "-" else output
    if as_json:
        click.echo(json.dumps({**header, "file": shown, "stream_length": len(stream)}), err=output == "-")
    else:
        click.echo(f"{shown}: {len(stream)}-byte stream at virtual time {header['virtual_ns']} ns",
                   err=output == "-")


def _read_snapshot(path):
    """A snapshot file's stream and header, its header checked as the
    machine it names would be built (errors name the header key)."""
    from vmstate.core.inputs import read_input
    from vmstate.machine.migration import snapshot_options
    from vmstate.wire import snapshot

    snap = snapshot.decode(read_input(path, "snapshot"))
    return snap, snapshot_options(snap)


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, allow_dash=True))
@trace_argument(required=False)
@budget_option
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def restore(snapshot_file, trace, max_events, as_json):
    """Restore SNAPSHOT into a fresh machine and run TRACE from there.

    The replies are what the saved machine would have answered had it gone
    on; without TRACE, only the restored virtual time is printed."""
    from vmstate.machine import migration
    from vmstate.trace.qtest import Runner, iter_commands

    try:
        if trace == "-" and snapshot_file == "-":
            raise UsageError("SNAPSHOT and TRACE cannot both be standard input")
        text = load_trace_file(trace, None, None)[0] if trace is not None else ""
        snap, options = _read_snapshot(snapshot_file)
    except VmstateError as err:
        fail(err, as_json, snapshot_file)
    try:
        with event_budget(max_events) as budget:
            with snap.in_the_file():
                machine = migration.restore(snap.stream, **options, budget=budget)
            runner = Runner(machine)
            if as_json:
                for _ in runner.run(iter_commands(text)):
                    pass
                click.echo(events_json(runner))
                return
            runner.session.observations = None
            if trace is None:
                click.echo(f"restored {snapshot_file} at virtual time {machine.clock.now} ns")
            for line in runner.run(iter_commands(text)):
                click.echo(line)
    except VmstateError as err:
        fail(err, as_json, trace)


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the decoded sections as JSON.")
def inspect(snapshot_file, as_json):
    """Decode and validate SNAPSHOT and show every section's fields."""
    from rich.console import Console
    from rich.table import Table

    from vmstate.machine import migration
    from vmstate.machine.pc import PcMachine
    from vmstate.present import flatten, jsonable, shown
    from vmstate.wire.table import to_container

    try:
        snap, options = _read_snapshot(snapshot_file)
        with snap.in_the_file():
            loaded = migration.decode(snap.stream, PcMachine(**options))
    except VmstateError as err:
        fail(err, as_json, snapshot_file)
    decoded = [{"section": s.idstr, "version": s.version,
                "fields": to_container(s.description, s.version, s.state)} for s in loaded.sections]
    if as_json:
        click.echo(json.dumps({"header": snap.header, "sections": decoded}, default=jsonable))
        return
    console = Console()
    console.print(f"[bold]{snapshot_file}[/]: machine {snap.header['machine']}, "
                  f"virtual time {snap.header['virtual_ns']} ns")
    for item in decoded:
        table = Table(title=f"{item['section']} (version {item['version']})", show_header=True)
        table.add_column("field")
        table.add_column("value")
        for name, value in flatten(item["fields"]):
            table.add_row(name, shown(value))
        console.print(table)
