"""Complete migration checks per second, per core.

Why: fuzzing runs ``checker.check`` once per drawn scenario, so checks per
second is what bounds how much of the state space a fuzzing budget covers.
Target: hundreds of complete checks per second per core for short
scenarios.

A complete check is ``checker.check(trace)``: the scenario parsed, run
straight on a fresh machine, run again migrating at every ``migrate`` line
(save, restore into a fresh machine, go on there), and the two observation
records compared, with a :class:`~vmstate.checker.MigrationRecord` per
migration.  Measured on

- the scenario library (``fixtures/scenarios/*.trace``, each with its own
  ``migrate`` lines and machine pragma), one check of each per round;
- SHORT below: ten operations, one migration with versions, the size of a
  typical fuzzing example;
- SHORT again with every record's diffs read (what a report of a
  divergence does; an equivalent check never reads them).

Time is this process's CPU time (one core), so other processes on the
machine do not count against it.  Run: ``python bench/checks.py [--rounds N]``.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from vmstate.check import checker  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = sorted((ROOT / "fixtures" / "scenarios").glob("*.trace"))

# Ten operations: the PIT programmed and read, the HPET enabled with a
# comparator armed, the RTC's index written, time stepped, one migration
# written at older versions.
SHORT = """\
irq_intercept_in ioapic
outb 0x43 0x34
outb 0x40 0x10
outb 0x40 0x27
writel 0xfed00108 0x00100000
writel 0xfed00010 0x1
clock_step 250000
migrate from=i8254:2,hpet:1 downtime=1000000
inb 0x40
clock_step
readl 0xfed000f0
"""


def rate(fn, rounds: int) -> tuple[float, float]:
    """(best, median) calls per CPU second over ``rounds`` timed calls."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1 / min(times), 1 / statistics.median(times)


def read_diffs(trace: str) -> None:
    for record in checker.check(trace).migrations:
        record.state_diff, record.stream_diff  # noqa: B018 (reading them is the point)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of the library (default 5)")
    parser.add_argument("--short", type=int, default=200, help="timed checks of SHORT (default 200)")
    args = parser.parse_args(argv)
    texts = [path.read_text() for path in LIBRARY]
    assert checker.check(SHORT).equivalent, "SHORT must be an equivalent scenario"
    migrations = sum(len(checker.check(text).migrations) for text in texts)

    def library() -> None:
        for text in texts:
            checker.check(text)

    best, median = rate(library, args.rounds)
    print(f"library: {len(texts)} scenarios, {migrations} migrations; "
          f"{best * len(texts):.0f} checks/s best round, {median * len(texts):.0f} median")
    best, median = rate(lambda: checker.check(SHORT), args.short)
    print(f"short (10 operations, 1 migration): {best:.0f} checks/s best, {median:.0f} median")
    best, median = rate(lambda: read_diffs(SHORT), max(args.short // 4, 1))
    print(f"short, diffs read: {best:.0f} checks/s best, {median:.0f} median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
