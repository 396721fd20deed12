"""Traces and snapshots: ``run``, ``save``, ``restore``, ``inspect``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vmstate.cli.group import events_json, fail, load_trace_file, machine_options, main
from vmstate.core.errors import UsageError, VmstateError


@main.command()
@click.argument("trace", type=click.File("r"))
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def run(trace, rtc_base, rtc_clock, as_json):
    """Run a qtest TRACE (or - for standard input) and print QEMU 7.2's replies.

    The output can be compared line for line with what QEMU prints to a
    qtest client for the same commands."""
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner

    try:
        commands, options = load_trace_file(trace, rtc_base, rtc_clock)
        runner = Runner(PcMachine(**options))
        if as_json:
            for _ in runner.run(commands):
                pass
            click.echo(events_json(runner))
        else:
            for line in runner.run(commands):
                click.echo(line)
    except VmstateError as err:
        fail(err, as_json)


def _versions_option(func):
    return click.option("--versions", default="", metavar="DEVICE=N,...",
                        help="Section versions to write, e.g. i8254=2,hpet=1 (default: current).")(func)


@main.command()
@click.argument("trace", type=click.File("r"))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Snapshot file to write (atomically).")
@_versions_option
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot's header as JSON.")
def save(trace, output, versions, rtc_base, rtc_clock, as_json):
    """Run TRACE on a fresh machine, then save its device state to a snapshot.

    The snapshot holds a QEMU 7.2 migration stream and, beside it, the
    machine options, versions and clocks it needs; a checksum covers it all."""
    from vmstate.machine import migration
    from vmstate.machine.names import parse_versions
    from vmstate.machine.pc import PcMachine
    from vmstate.trace.qtest import Runner
    from vmstate.wire import snapshot

    try:
        commands, options = load_trace_file(trace, rtc_base, rtc_clock)
        chosen = parse_versions(versions)
        runner = Runner(PcMachine(**options))
        for _ in runner.run(commands):
            pass
        stream = migration.save(runner.machine, chosen)
        header = snapshot.header_for(runner.machine, chosen)
        snapshot.write_atomically(output, snapshot.encode(stream, header))
    except VmstateError as err:
        fail(err, as_json)
    except OSError as err:
        fail(UsageError(f"{output}: {err.strerror}"), as_json)
    if as_json:
        click.echo(json.dumps({**header, "file": str(output), "stream_length": len(stream)}))
    else:
        click.echo(f"{output}: {len(stream)}-byte stream at virtual time {header['virtual_ns']} ns")


def _read_snapshot(path):
    from vmstate.wire import snapshot

    try:
        return snapshot.decode(Path(path).read_bytes())
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror}") from None


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("trace", type=click.File("r"), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def restore(snapshot_file, trace, as_json):
    """Restore SNAPSHOT into a fresh machine and run TRACE from there.

    The replies are what the saved machine would have answered had it gone
    on; without TRACE, only the restored virtual time is printed."""
    from vmstate.machine import migration
    from vmstate.trace.qtest import Runner, parse_trace

    try:
        snap = _read_snapshot(snapshot_file)
        machine = migration.restore(snap.stream, **snap.machine_options)
        commands = parse_trace(trace.read()) if trace is not None else []
        runner = Runner(machine)
        lines = list(runner.run(commands))
    except VmstateError as err:
        fail(err, as_json)
    if as_json:
        click.echo(events_json(runner))
        return
    if trace is None:
        click.echo(f"restored {snapshot_file} at virtual time {machine.clock.now} ns")
    for line in lines:
        click.echo(line)


@main.command()
@click.argument("snapshot_file", metavar="SNAPSHOT", type=click.Path(dir_okay=False, path_type=Path))
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
        snap = _read_snapshot(snapshot_file)
        loaded = migration.decode(snap.stream, PcMachine(**snap.machine_options))
    except VmstateError as err:
        fail(err, as_json)
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
