"""Helpers shared by the differential tests: the trace corpus and its
reference outputs."""
from __future__ import annotations

from pathlib import Path

from vmstate.machine import migration
from vmstate.machine.pc import DEFAULT_RTC_BASE, PcMachine
from vmstate.trace.qtest import Command, Runner, parse_pragmas, parse_trace

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRACES = FIXTURES / "traces"
SCENARIOS = FIXTURES / "scenarios"
COUNTEREXAMPLES = FIXTURES / "counterexamples"


def corpus() -> list[Path]:
    return sorted(TRACES.glob("*.trace"))


def scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.trace"))


def load(path: Path) -> tuple[list[Command], dict]:
    text = path.read_text()
    pragmas = parse_pragmas(text)
    return parse_trace(text), {"rtc_base": pragmas.get("rtc-base", DEFAULT_RTC_BASE),
                               "rtc_clock": pragmas.get("rtc-clock", "vm")}


def ours(path: Path, migrate=None) -> list[str]:
    """vmstate's output; ``migrate`` decides what a migrate line does (by
    default a migration through the bytes, performed as the reference
    harness performs it on QEMU, so that the two are comparable)."""
    commands, options = load(path)
    if migrate is None:
        migrate = lambda machine, command: migration.migrate_as_the_reference_does(machine)  # noqa: E731
    runner = Runner(PcMachine(**options), migrate=migrate)
    return list(runner.run(commands))


def expected_divergence(path: Path) -> str | None:
    """The field a scenario declares QEMU 7.2 itself gets wrong across a
    migration (a ``# expect: diverges FIELD`` line), or None."""
    for line in path.read_text().splitlines():
        if line.startswith("# expect: diverges "):
            return line.split()[3]
    return None


def recorded(path: Path) -> list[str]:
    """The reference's output, recorded from QEMU 7.2 by `vmstate oracle record`."""
    return path.with_suffix(".qemu").read_text().splitlines()
