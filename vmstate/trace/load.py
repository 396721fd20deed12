"""A trace file as a whole: its pragmas, its commands, the machine it runs on.

A trace says on which machine it means what it says: ``#!`` lines before its
first command carry machine options (``#! rtc-base=2010-06-08T01:23:00
rtc-clock=vm``), as QEMU's command line would.  Options given on vmstate's
command line override them.  :func:`load_trace` is the one place that turns
a trace's text and those overrides into commands and machine options.
"""
from __future__ import annotations

from vmstate.core.errors import TraceError, UsageError
from vmstate.machine.pc import DEFAULT_OPTIONS, RTC_CLOCKS, PcMachine, parse_rtc_base
from vmstate.trace.qtest import Command, Runner, parse_trace

#: pragma key -> machine option
PRAGMAS = {"rtc-base": "rtc_base", "rtc-clock": "rtc_clock"}


def parse_pragmas(text: str) -> dict[str, tuple[str, int]]:
    """The ``#!`` options before the first command, each with its line."""
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.startswith("#!"):
            if line.strip() and not line.lstrip().startswith("#"):
                break
            continue
        for word in line[2:].split():
            key, sep, value = word.partition("=")
            if not sep or key not in PRAGMAS:
                raise TraceError(f"unknown pragma {word!r} (known: {', '.join(PRAGMAS)})", number, line)
            found[key] = (value, number)
    return found


def _check(option: str, value: str) -> str:
    """A machine option's value, or ValueError saying what it should be."""
    if option == "rtc_clock" and value not in RTC_CLOCKS:
        raise ValueError(f"rtc-clock must be one of {', '.join(RTC_CLOCKS)}, not {value!r}")
    if option == "rtc_base":
        try:
            parse_rtc_base(value)
        except UsageError:
            raise ValueError(f"rtc-base {value!r} is not an ISO-8601 date and time") from None
    return value


def machine_options(pragmas: dict[str, tuple[str, int]] | None = None, **given: str | None) -> dict:
    """The options a machine is built with: ``given`` (the command line's,
    None for not given) over the pragmas over the defaults, each checked
    where it came from."""
    options = dict(DEFAULT_OPTIONS)
    for key, (value, line) in (pragmas or {}).items():
        option = PRAGMAS[key]
        try:
            options[option] = _check(option, value)
        except ValueError as err:
            raise TraceError(str(err), line, f"#! {key}={value}") from None
    for option, value in given.items():
        if value is not None:
            try:
                options[option] = _check(option, value)
            except ValueError as err:
                raise UsageError(f"--{option.replace('_', '-')}: {err}") from None
    return options


def load_trace(text: str, rtc_base: str | None = None, rtc_clock: str | None = None) -> tuple[list[Command], dict]:
    """A trace's commands and the machine options it runs with."""
    return parse_trace(text), machine_options(parse_pragmas(text), rtc_base=rtc_base, rtc_clock=rtc_clock)


def expected_divergence(text: str) -> str | None:
    """The field a scenario's ``# expect: diverges FIELD`` line says QEMU 7.2
    itself changes across a same-version migration, or None."""
    for line in text.split("\n"):
        if line.startswith("# expect: diverges "):
            return line.split()[3]
    return None


def run_to_first_migrate(text: str) -> PcMachine:
    """A fresh machine, on the trace's pragmas, after the trace's commands
    before its first ``migrate`` line: the machine a scenario migrates."""
    commands, options = load_trace(text)
    runner = Runner(PcMachine(**options))
    for command in commands:
        if command.name == "migrate":
            break
        runner.execute(command)
    return runner.machine
