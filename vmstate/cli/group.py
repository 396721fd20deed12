"""The ``vmstate`` command line: the group, and what every command shares.

Each command imports what it needs when it runs, not at start-up: a
``vmstate run`` of a short trace should not wait for construct, deepdiff,
rich or hypothesis (30 to 120 ms each), which other commands use."""
from __future__ import annotations

import json
import sys

import click

from vmstate.core.errors import VmstateError

#: ``vmstate check``'s exit status for a divergence that is exactly QEMU 7.2's own.
KNOWN_DIVERGENCE_EXIT = 3


def machine_options(func):
    """The options that shape a machine, as QEMU's ``-rtc base=...,clock=...``.
    Given on the command line they override the trace's ``#!`` pragma."""
    func = click.option("--rtc-clock", type=click.Choice(["vm", "host"]), default=None,
                        help="Clock the RTC follows (QEMU's -rtc clock=); default vm.")(func)
    func = click.option("--rtc-base", default=None, metavar="ISO-8601",
                        help="RTC time at virtual time 0 (QEMU's -rtc base=); "
                             "default 2000-01-01T00:00:00 UTC.")(func)
    return func


def load_trace_file(trace, rtc_base, rtc_clock):
    """The trace's commands and the machine options it runs with."""
    from vmstate.trace.load import load_trace

    return load_trace(trace.read(), rtc_base, rtc_clock)


def events_json(runner) -> str:
    from vmstate.present import event_json

    return json.dumps([event_json(e) for e in runner.session.observations.events])


def fail(err: VmstateError, as_json: bool) -> None:
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
