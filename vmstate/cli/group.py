"""The ``vmstate`` command line: the group, and what every command shares.

Each command imports what it needs when it runs, not at start-up: a
``vmstate run`` of a short trace should not wait for construct, deepdiff,
rich or hypothesis (30 to 120 ms each), which other commands use."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click

from vmstate.core.errors import EventBudgetExceeded, VmstateError

#: ``vmstate check``'s exit status for a divergence that is exactly QEMU 7.2's own.
KNOWN_DIVERGENCE_EXIT = 3
#: Timer events one command may run: about half a minute of busy devices
#: here; idle periodic timers cost none, being advanced in closed form.
DEFAULT_MAX_EVENTS = 10_000_000


def machine_options(func):
    """The options that shape a machine, as QEMU's ``-rtc base=...,clock=...``.
    Given on the command line they override the trace's ``#!`` pragma."""
    func = click.option("--rtc-clock", type=click.Choice(["vm", "host"]), default=None,
                        help="Clock the RTC follows (QEMU's -rtc clock=); default vm.")(func)
    func = click.option("--rtc-base", default=None, metavar="ISO-8601",
                        help="RTC time at virtual time 0 (QEMU's -rtc base=); "
                             "default 2000-01-01T00:00:00 UTC.")(func)
    return func


def clock_option(func):
    """``--clock``: the virtual time of a stream that does not carry it."""
    return click.option("--clock", type=click.IntRange(min=0), default=None, metavar="NS",
                        help="The virtual time the stream was saved at, where it does not carry it "
                             "(QEMU under qtest: its clock is not the timer section's).")(func)


def budget_option(func):
    """``--max-events``: the bound on the work any input can make a command do."""
    return click.option("--max-events", default=DEFAULT_MAX_EVENTS, show_default=True, metavar="N",
                        type=click.IntRange(min=1),
                        help="Timer events the command may run before it stops with an error "
                             "naming the timer (a step of virtual days of a busy device needs more).")(func)


@contextmanager
def event_budget(limit: int):
    """An event budget of ``limit`` for one command, drawing a progress bar
    on a terminal once the work has run long enough to be noticed."""
    from vmstate.core.clock import EventBudget
    from vmstate.present import Progress, on_terminal

    bar = None

    def tell(spent: int) -> None:
        nonlocal bar
        if bar is None:
            bar = Progress("timer events of --max-events", limit).__enter__()
        bar.update(completed=spent)

    try:
        yield EventBudget(limit, tell if on_terminal() else None)
    except EventBudgetExceeded as err:
        raise EventBudgetExceeded(f"{err.message}; --max-events raises the bound",
                                  err.timer).located(err.line, err.source) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def trace_argument(name: str = "trace", required: bool = True):
    """A trace given by path or as ``-`` for standard input; read by
    :func:`load_trace_file`, which bounds it and refuses what is not a file."""
    return click.argument(name, type=click.Path(dir_okay=False, allow_dash=True), required=required)


def load_trace_file(path, rtc_base, rtc_clock):
    """The trace's text, checked whole (every line parses, the pragmas
    hold), and the machine options it runs with.  Nothing runs on a trace
    that cannot run."""
    from vmstate.trace.load import check_trace, read_trace, source_name

    text = read_trace(path)
    try:
        return text, check_trace(text, rtc_base, rtc_clock)
    except VmstateError as err:
        if err.line is not None:
            err.located(source=source_name(path))
        raise


def events_json(runner) -> str:
    from vmstate.present import event_json

    return json.dumps([event_json(e) for e in runner.session.observations.events])


def printable(text: str) -> str:
    """A message as a terminal should show it: control characters (a NUL
    in a section name, an escape sequence in a trace) escaped."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def fail(err: VmstateError, as_json: bool, source: str | None = None) -> None:
    """Report ``err`` (placed in ``source``, the file, when it names a line
    of it or a place in it) and exit with its status."""
    if source is not None and (err.line is not None or getattr(err, "offset", None) is not None):
        from vmstate.trace.load import source_name

        err.located(source=source_name(source))
    if as_json:
        click.echo(json.dumps(err.to_json()))
    else:
        click.echo(f"vmstate: {printable(str(err))}", err=True)
    sys.exit(err.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(package_name="vmstate", prog_name="vmstate")
@click.pass_context
def main(ctx) -> None:
    """Serialize, migrate and check the live state of emulated x86 timer
    devices (i8254 PIT, HPET, MC146818 RTC, ACPI PM timer) on QEMU 7.2's pc
    machine."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
