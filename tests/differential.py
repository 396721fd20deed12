"""Helpers shared by the differential tests: the trace corpus and its
reference outputs."""
from __future__ import annotations

from pathlib import Path

from vmstate.machine import migration
from vmstate.machine.pc import PcMachine
from vmstate.trace.load import expected_divergence as _expected, load_trace
from vmstate.trace.qtest import Command, Runner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRACES = FIXTURES / "traces"
SCENARIOS = FIXTURES / "scenarios"
COUNTEREXAMPLES = FIXTURES / "counterexamples"


def corpus() -> list[Path]:
    return sorted(TRACES.glob("*.trace"))


def scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.trace"))


def load(path: Path) -> tuple[list[Command], dict]:
    return load_trace(path.read_text())


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
    return _expected(path.read_text())


def recorded(path: Path) -> list[str]:
    """The reference's output, recorded from QEMU 7.2 by `vmstate oracle record`."""
    return path.with_suffix(".qemu").read_text().splitlines()
