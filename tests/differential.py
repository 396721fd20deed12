"""Helpers shared by the differential tests: the trace corpus and its
reference outputs."""
from __future__ import annotations

from pathlib import Path

from vmstate.machine import DEFAULT_RTC_BASE, PcMachine
from vmstate.qtest import Command, Runner, parse_pragmas, parse_trace

TRACES = Path(__file__).resolve().parent.parent / "fixtures" / "traces"


def corpus() -> list[Path]:
    return sorted(TRACES.glob("*.trace"))


def load(path: Path) -> tuple[list[Command], dict]:
    text = path.read_text()
    pragmas = parse_pragmas(text)
    return parse_trace(text), {"rtc_base": pragmas.get("rtc-base", DEFAULT_RTC_BASE),
                               "rtc_clock": pragmas.get("rtc-clock", "vm")}


def ours(path: Path) -> list[str]:
    commands, options = load(path)
    return list(Runner(PcMachine(**options)).run(commands))


def recorded(path: Path) -> list[str]:
    """The reference's output, recorded from QEMU 7.2 by `vmstate oracle record`."""
    return path.with_suffix(".qemu").read_text().splitlines()
