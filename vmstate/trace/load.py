"""A trace file as a whole: its pragmas, its commands, the machine it runs on.

A trace says on which machine it means what it says: ``#!`` lines before its
first command carry machine options (``#! rtc-base=2010-06-08T01:23:00
rtc-clock=vm``), as QEMU's command line would.  Options given on vmstate's
command line override them.  :func:`load_trace` is the one place that turns
a trace's text and those overrides into commands and machine options.
"""
from __future__ import annotations

import os

from vmstate.core.errors import TraceError, UsageError
from vmstate.core.inputs import read_input
from vmstate.machine.pc import DEFAULT_OPTIONS, PcMachine, option_error
from vmstate.trace.qtest import Command, Runner, decode_trace, iter_commands, lines, parse_trace

#: pragma key -> machine option
PRAGMAS = {"rtc-base": "rtc_base", "rtc-clock": "rtc_clock"}


def source_name(source: str | os.PathLike) -> str:
    """How errors name a trace the user gave: its path, or standard input."""
    return "standard input" if str(source) == "-" else str(source)


def read_trace(source: str | os.PathLike) -> str:
    """The text of the trace at ``source`` (a path, or ``-``): read with
    :func:`read_input`'s bounds and decoded as UTF-8, an error naming the
    file."""
    try:
        return decode_trace(read_input(source, "trace"), "the trace")
    except TraceError as err:
        raise err.located(source=source_name(source)) from None


def parse_pragmas(text: str) -> dict[str, tuple[str, int]]:
    """The ``#!`` options before the first command, each with its line.  A
    ``#!`` line after it would be silently a comment: it is refused."""
    found: dict[str, tuple[str, int]] = {}
    commands_began = False
    for number, line in lines(text):
        if not line.startswith("#!"):
            if line.strip() and not line.lstrip().startswith("#"):
                commands_began = True
            continue
        if commands_began:
            raise TraceError("a #! pragma after the first command would change nothing: "
                             "machine options go before it", number, line)
        for word in line[2:].split():
            key, sep, value = word.partition("=")
            if not sep or key not in PRAGMAS:
                raise TraceError(f"unknown pragma {word!r} (known: {', '.join(PRAGMAS)})", number, line)
            found[key] = (value, number)
    return found


def machine_options(pragmas: dict[str, tuple[str, int]] | None = None, **given: str | None) -> dict:
    """The options a machine is built with: ``given`` (the command line's,
    None for not given) over the pragmas over the defaults, each checked
    where it came from."""
    options = dict(DEFAULT_OPTIONS)
    for key, (value, line) in (pragmas or {}).items():
        option = PRAGMAS[key]
        problem = option_error(option, value)
        if problem:
            raise TraceError(f"{key}: {problem}", line, f"#! {key}={value}")
        options[option] = value
    for option, value in given.items():
        if value is not None:
            problem = option_error(option, value)
            if problem:
                raise UsageError(f"--{option.replace('_', '-')}: {problem}")
            options[option] = value
    return options


def load_trace(text: str, rtc_base: str | None = None, rtc_clock: str | None = None) -> tuple[list[Command], dict]:
    """A trace's commands and the machine options it runs with."""
    return parse_trace(text), machine_options(parse_pragmas(text), rtc_base=rtc_base, rtc_clock=rtc_clock)


def check_trace(text: str, rtc_base: str | None = None, rtc_clock: str | None = None) -> dict:
    """The machine options a trace runs with, once every line of it has
    parsed: a first pass that holds no commands, so that a long trace can
    then run as it is read again (:func:`iter_commands`)."""
    for _ in iter_commands(text):
        pass
    return machine_options(parse_pragmas(text), rtc_base=rtc_base, rtc_clock=rtc_clock)


def expected_divergence(text: str) -> str | None:
    """The field a scenario's ``# expect: diverges FIELD`` line says QEMU 7.2
    itself changes across a same-version migration, or None."""
    for _, line in lines(text):
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
