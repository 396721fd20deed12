"""Traces and snapshots: ``run``, ``save``, ``restore``."""
from __future__ import annotations

import json

import click

from vmstate.cli.group import (budget_option, clock_option, event_budget, events_json, fail, load_trace_file,
                               machine_options, main, trace_argument)
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
              help="File to write (atomically), or - for standard output.")
@click.option("--format", "form", type=click.Choice(["snapshot", "qemu"]), default="snapshot", show_default=True,
              help="A vmstate snapshot (the stream and what it needs beside it), or the raw stream alone, "
                   "which QEMU 7.2 loads with -incoming.")
@_versions_option
@machine_options
@budget_option
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot's header as JSON.")
def save(trace, output, form, versions, rtc_base, rtc_clock, max_events, as_json):
    """Run TRACE on a fresh machine, then save its device state to a snapshot.

    The snapshot holds a QEMU 7.2 migration stream and, beside it, the
    machine options, versions and clocks it needs; a checksum covers it all.
    With --format qemu the stream alone is written: the configuration
    section, the timer devices' sections, EOF and the JSON description,
    which an unmodified QEMU 7.2 loads (-incoming "exec:cat FILE") and goes
    on from; the sections it leaves out (RAM, CPUs, other devices) keep
    their reset state there.  Written to standard output, the summary goes
    to standard error."""
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
        data = snapshot.encode(stream, header) if form == "snapshot" else stream
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


@main.command()
@click.argument("stream_file", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=True))
@trace_argument(required=False)
@clock_option
@machine_options
@budget_option
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def restore(stream_file, trace, clock, rtc_base, rtc_clock, max_events, as_json):
    """Restore FILE (a vmstate snapshot, or a migration stream QEMU wrote)
    into a fresh machine and run TRACE from there.

    The replies are what the saved machine would have answered had it gone
    on; without TRACE, only the restored virtual time is printed.  A raw
    stream's machine comes from its configuration section and the options
    given (the RTC's base and clock are not in a stream), its time from its
    timer section or --clock."""
    from vmstate.machine import qemu_streams
    from vmstate.trace.qtest import Runner, iter_commands

    try:
        if trace == "-" and stream_file == "-":
            raise UsageError("FILE and TRACE cannot both be standard input")
        text = load_trace_file(trace, None, None)[0] if trace is not None else ""
        opened = qemu_streams.open_stream(stream_file, clock, rtc_base=rtc_base, rtc_clock=rtc_clock)
    except VmstateError as err:
        fail(err, as_json, stream_file)
    try:
        with event_budget(max_events) as budget:
            machine = qemu_streams.restore(opened.stream, clock, **opened.options, budget=budget)
    except VmstateError as err:
        fail(err, as_json, stream_file)
    try:
        with event_budget(max_events) as budget:
            machine.clock.budget = budget
            runner = Runner(machine)
            if as_json:
                for _ in runner.run(iter_commands(text)):
                    pass
                click.echo(events_json(runner))
                return
            runner.session.observations = None
            if trace is None:
                click.echo(f"restored {stream_file} at virtual time {machine.clock.now} ns")
            for line in runner.run(iter_commands(text)):
                click.echo(line)
    except VmstateError as err:
        fail(err, as_json, trace)

