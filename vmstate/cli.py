"""The ``vmstate`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vmstate.errors import TraceError, VmstateError


def machine_options(func):
    """The options that shape a machine, as QEMU's ``-rtc base=...,clock=...``.
    Given on the command line they override the trace's ``#!`` pragma."""
    func = click.option("--rtc-clock", type=click.Choice(["vm", "host"]), default=None,
                        help="Clock the RTC follows (QEMU's -rtc clock=); default vm.")(func)
    func = click.option("--rtc-base", default=None, metavar="ISO-8601",
                        help="RTC time at virtual time 0 (QEMU's -rtc base=); "
                             "default 2000-01-01T00:00:00 UTC.")(func)
    return func


def _load_trace(trace, rtc_base, rtc_clock):
    """The trace's commands and the machine options it runs with."""
    from vmstate.machine import DEFAULT_RTC_BASE
    from vmstate.qtest import parse_pragmas, parse_trace

    text = trace.read()
    pragmas = parse_pragmas(text)
    commands = parse_trace(text)
    options = {"rtc_base": rtc_base or pragmas.get("rtc-base", DEFAULT_RTC_BASE),
               "rtc_clock": rtc_clock or pragmas.get("rtc-clock", "vm")}
    if options["rtc_clock"] not in ("vm", "host"):
        raise TraceError(f"rtc-clock must be vm or host, not {options['rtc_clock']!r}")
    return commands, options


def _fail(err: VmstateError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(err.to_json()))
    else:
        click.echo(f"vmstate: {err}", err=True)
    sys.exit(err.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Serialize, migrate and check the live state of emulated x86 timer
    devices (i8254 PIT, HPET, MC146818 RTC, ACPI PM timer) on QEMU 7.2's pc
    machine."""


@main.command()
@click.argument("trace", type=click.File("r"))
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print the observation record as JSON.")
def run(trace, rtc_base, rtc_clock, as_json):
    """Run a qtest TRACE (or - for standard input) and print QEMU 7.2's replies.

    The output can be compared line for line with what QEMU prints to a
    qtest client for the same commands."""
    from vmstate.machine import PcMachine
    from vmstate.qtest import Runner

    try:
        commands, options = _load_trace(trace, rtc_base, rtc_clock)
        runner = Runner(PcMachine(**options))
        if as_json:
            for _ in runner.run(commands):
                pass
            events = runner.session.observations.events
            click.echo(json.dumps([{"kind": type(e).__name__.lower(), **e._asdict()} for e in events]))
        else:
            for line in runner.run(commands):
                click.echo(line)
    except VmstateError as err:
        _fail(err, as_json)


@main.group()
def oracle():
    """The QEMU 7.2 reference: build it, run traces on it, compare."""


@oracle.command("build")
def oracle_build():
    """Build the reference (cached; returns at once when already built)."""
    from vmstate import oracle as ref

    try:
        click.echo(ref.build())
    except VmstateError as err:
        _fail(err, False)


def _reference_lines(trace, rtc_base, rtc_clock, keep_streams=None):
    from vmstate.oracle import Reference

    commands, options = _load_trace(trace, rtc_base, rtc_clock)
    return Reference(options["rtc_base"], options["rtc_clock"], keep_streams).run(commands)


def _our_lines(path, rtc_base, rtc_clock):
    from vmstate.machine import PcMachine
    from vmstate.qtest import Runner

    with open(path) as trace:
        commands, options = _load_trace(trace, rtc_base, rtc_clock)
    return list(Runner(PcMachine(**options)).run(commands))


@oracle.command("run")
@click.argument("trace", type=click.File("r"))
@machine_options
@click.option("--keep-streams", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep each migration's stream file in this directory.")
def oracle_run(trace, rtc_base, rtc_clock, keep_streams):
    """Run TRACE on the reference and print its replies."""
    try:
        for line in _reference_lines(trace, rtc_base, rtc_clock, keep_streams):
            click.echo(line)
    except VmstateError as err:
        _fail(err, False)


@oracle.command("record")
@click.argument("traces", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def oracle_record(traces):
    """Write each trace's reference output beside it as NAME.qemu.

    These files are the expected outputs of the differential tests: they come
    from QEMU, never from vmstate."""
    try:
        for path in traces:
            with open(path) as trace:
                lines = _reference_lines(trace, None, None)
            path.with_suffix(".qemu").write_text("".join(f"{line}\n" for line in lines))
            click.echo(f"{path.with_suffix('.qemu')}: {len(lines)} lines")
    except VmstateError as err:
        _fail(err, False)


@oracle.command("diff")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@machine_options
@click.option("--json", "as_json", is_flag=True, help="Print both outputs and the first difference as JSON.")
def oracle_diff(trace, rtc_base, rtc_clock, as_json):
    """Run TRACE on vmstate and on the reference, side by side.

    Exits 0 when the outputs are identical, 1 when they part (the first such
    line is marked), 2 on bad input or a missing reference."""
    from rich.console import Console
    from rich.table import Table

    from vmstate.oracle import first_difference

    try:
        ours = _our_lines(trace, rtc_base, rtc_clock)
        with open(trace) as handle:
            theirs = _reference_lines(handle, rtc_base, rtc_clock)
    except VmstateError as err:
        _fail(err, as_json)
    first = first_difference(ours, theirs)
    if as_json:
        click.echo(json.dumps({"vmstate": ours, "qemu": theirs, "first_difference": first}))
    else:
        table = Table("#", "vmstate", "QEMU 7.2", "")
        for i in range(max(len(ours), len(theirs))):
            a = ours[i] if i < len(ours) else ""
            b = theirs[i] if i < len(theirs) else ""
            mark = "<< first difference" if i == first else ("!=" if a != b else "")
            style = "bold red" if i == first else None
            table.add_row(str(i + 1), a, b, mark, style=style)
        Console().print(table)
        click.echo("identical" if first is None else f"outputs part at output line {first + 1}")
    sys.exit(0 if first is None else 1)
