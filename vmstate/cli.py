"""The ``vmstate`` command line."""
from __future__ import annotations

import json
import sys

import click

from vmstate.errors import VmstateError


def machine_options(func):
    """The options that shape a machine, as QEMU's ``-rtc base=...,clock=...``."""
    func = click.option("--rtc-clock", type=click.Choice(["vm", "host"]), default="vm",
                        show_default=True, help="Clock the RTC follows (QEMU's -rtc clock=).")(func)
    func = click.option("--rtc-base", default=None, metavar="ISO-8601",
                        help="RTC time at virtual time 0 (QEMU's -rtc base=); "
                             "default 2000-01-01T00:00:00 UTC.")(func)
    return func


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
    from vmstate.machine import DEFAULT_RTC_BASE, PcMachine
    from vmstate.qtest import Runner, parse_trace

    try:
        commands = parse_trace(trace.read())
        machine = PcMachine(rtc_base=rtc_base or DEFAULT_RTC_BASE, rtc_clock=rtc_clock)
        runner = Runner(machine)
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
