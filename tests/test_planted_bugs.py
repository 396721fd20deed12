"""The checker can fail: every planted schema bug (tests/planted.py) is caught.

For each bug there is a scenario on which the real schemas are equivalent and
the broken ones diverge, at the first guest access that can observe the lost
state, with the lost field among the suspects the report names; and the
counterexample the checker writes replays the same verdict through
``vmstate check``.  Each case says why its line is the first that can see the
bug, from the device's behaviour in QEMU 7.2, not from what the checker
printed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import pytest
from click.testing import CliRunner

from differential import SCENARIOS
from vmstate.trace.snippets import pm_bring_up
from planted import PLANTED, drop_field
from schemas import SECTIONS
from schemas.i8254 import PIT_CHANNEL
from vmstate.check import checker
from vmstate.machine import migration
from vmstate.cli import main
from vmstate.wire.table import Field
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Clock, Edge, Read
from vmstate.check.report import changed_fields


def first_after_migrate(command: str, nth: int = 1, migration_number: int = 1) -> Callable[[str], int]:
    """A locator: the line number of the ``nth`` line reading ``command``
    after the ``migration_number``-th ``migrate`` line of a trace."""

    def locate(text: str) -> int:
        migrations, seen = 0, 0
        for number, line in enumerate(text.splitlines(), 1):
            if line.split()[:1] == ["migrate"]:
                migrations += 1
            elif migrations >= migration_number and line.strip() == command:
                seen += 1
                if seen == nth:
                    return number
        raise AssertionError(f"no {command!r} #{nth} after migration {migration_number}")
    return locate


def _library(name: str) -> str:
    return (SCENARIOS / f"{name}.trace").read_text()


@dataclass(frozen=True)
class Case:
    scenario: str
    line: Callable[[str], int]
    events: Callable[[object, object], bool] = lambda straight, migrated: True


def _read(value: int | None = None) -> Callable[[object], bool]:
    return lambda e: isinstance(e, Read) and (value is None or e.value == value)


def _edge(line: int, level: int = 1, time: int | None = None) -> Callable[[object], bool]:
    return lambda e: isinstance(e, Edge) and (e.line, e.level) == (line, level) and time in (None, e.time)


HPET_ENABLED_MID_TICK = """\
# The HPET is enabled at 1 ms (offset -1 ms) and migrated 7 ns into a tick.
clock_step 1000000
writel 0xfed00010 0x1
clock_step 500007
migrate
readl 0xfed000f0
clock_step 3
readl 0xfed000f0
"""

CASES: dict[str, Case] = {
    # Latch (line 9) then one read (line 10): the low byte of the latch is
    # gone and count_latched says the high byte is next.  The next read of
    # port 0x40 is the first that consults count_latched; without it the
    # destination reads the live count's low byte.  Latched at 1,234,567 ns:
    # 1473 PIT periods of 0x1234, so 3187 = 0x0c73 and the high byte is 0x0c.
    "pit-count-latched-dropped": Case(
        _library("pit-between-latched-count-bytes"), first_after_migrate("inb 0x40"),
        lambda s, m: _read(0x0C)(s) and _read()(m)),
    # A live lo/hi read is half done (read_state 4: high byte next) when the
    # latch arrives.  The latch is returned whole first (two reads that do
    # not look at read_state); the third read after the migration finishes
    # the live read and is the first that does.
    "pit-read-state-dropped": Case(
        _library("pit-latch-during-live-read"), first_after_migrate("inb 0x40", nth=3)),
    # Channel 2's reload low byte 0x10 is pending when the machine migrates;
    # the high byte after it loads 0x2010 straight, 0x2000 without
    # write_latch.  Writes are not observed, and mode 0's OUT (port 0x61 bit
    # 5) rises only after ~6.9 ms, so the first observation is the latched
    # count's low byte.
    "pit-write-latch-dropped": Case(
        _library("pit-between-reload-bytes"), first_after_migrate("inb 0x42")),
    # Same scenario: without write_state the high byte is taken as a whole
    # new count (access mode 0), so again the latched count is the first
    # thing the guest can read that shows it.
    "pit-write-state-dropped": Case(
        _library("pit-between-reload-bytes"), first_after_migrate("inb 0x42")),
    # Read-back latched status and count of channels 0 and 1 before the
    # migration; the first read of channel 1 must return its status byte
    # (OUT high, lo/hi, mode 3: 0xb6), and without status_latched it
    # returns the latched count instead.
    "pit-status-latched-dropped": Case(
        _library("pit-readback-status-and-count-pending"), first_after_migrate("inb 0x41"),
        lambda s, m: _read(0xB6)(s) and _read()(m)),
    # The counter is rebuilt as counter * 10 - now, which reproduces the
    # count at the stream's time exactly, so the first read after the
    # migration agrees; the 7 ns lost show when the next tick is due 3 ns
    # later: straight 50001, migrated still 50000.
    "hpet-offset-subsection-never-needed": Case(
        HPET_ENABLED_MID_TICK, first_after_migrate("readl 0xfed000f0", nth=2),
        lambda s, m: _read(50001)(s) and _read(50000)(m)),
    # The destination keeps its own offset (0, never enabled), so the very
    # first counter read shows 1.5 ms of ticks instead of 0.5 ms.
    "hpet-offset-not-rebased": Case(
        HPET_ENABLED_MID_TICK, first_after_migrate("readl 0xfed000f0"),
        lambda s, m: _read(50000)(s) and _read(150000)(m)),
    # Timer 0 periodic, 1 ms: its carried deadline still fires, but a
    # periodic timer fires at the match and again one tick later while the
    # accumulator catches up, and with period 0 hpet_timer does not re-arm.
    # The first thing that can show the period is that second interrupt, in
    # the clock_step right after the migration.
    "hpet-period-dropped": Case(
        _library("hpet-periodic-mid-period"), first_after_migrate("clock_step 3000000"),
        lambda s, m: _edge(2)(s) and isinstance(m, Clock)),
    # Timer 2's level interrupt is unacknowledged at the migration; the first
    # read of the status register after it shows bit 2 straight, 0 migrated.
    "hpet-isr-dropped": Case(
        _library("hpet-level-interrupt-unacknowledged"), first_after_migrate("readl 0xfed00020"),
        lambda s, m: _read(0x4)(s) and _read(0x0)(m)),
    # The one-shot (300000 ticks = 3 ms) is armed only in its qemu_timer:
    # the counter read after the migration cannot show it, the clock_step to
    # the next deadline can: straight it stops at 3 ms with an edge on GSI 2,
    # migrated it runs on to the PIT's deadline.
    "hpet-timer-expire-dropped": Case(
        _library("hpet-oneshot-armed-64bit"), first_after_migrate("clock_step"),
        lambda s, m: _edge(2, time=3_000_000)(s) and not _edge(2)(m)),
    # Legacy replacement holds the RTC's line back from GSI 8; the RTC raises
    # it at the 1 s update (UIE).  Only leaving legacy mode passes the held
    # level to GSI 8, so that write is the first access that can show it.
    "hpet-rtc-irq-level-never-needed": Case(
        """\
#! rtc-base=2010-06-08T01:23:00 rtc-clock=vm
# Legacy replacement on, update-ended interrupts raise the RTC's line under it.
irq_intercept_in ioapic
writel 0xfed00010 0x3
outb 0x70 0x0b
outb 0x71 0x12
clock_step 1500000000
migrate
writel 0xfed00010 0x1
outb 0x70 0x0c
inb 0x71
""", first_after_migrate("writel 0xfed00010 0x1"), lambda s, m: _edge(8)(s)),
    # UIE on, migrated half a second before the first update: nothing reads
    # the RTC in between, so the first observation of the update timer is
    # its interrupt at 1 s, inside the clock_step after the migration.
    "rtc-update-timer-not-rearmed": Case(
        """\
#! rtc-base=2010-06-08T01:23:00 rtc-clock=vm
# Update-ended interrupts on; migrated before the first update.
irq_intercept_in ioapic
outb 0x70 0x0b
outb 0x71 0x12
clock_step 500000000
migrate
clock_step 1000000000
outb 0x70 0x0c
inb 0x71
""", first_after_migrate("clock_step 1000000000"), lambda s, m: _edge(8, time=1_000_000_000)(s)),
    # SET is on while the guest writes 13:45:30; clearing SET (line 16)
    # applies whatever the time bytes hold, which is a write, not observed.
    # The first read of the seconds is: 30 + 0.7 + 1.5 s = 0x32 straight;
    # from the destination's own 01:23:00 it is 0x02.
    "rtc-set-pending-time-lost": Case(
        _library("rtc-set-time-written-not-applied"), first_after_migrate("inb 0x71"),
        lambda s, m: _read(0x32)(s) and _read(0x02)(m)),
    # The guest selects register A, reads it, and the machine migrates
    # inside the update window: the next data-port read, with no index
    # write between, reads register A with UIP (0xa6) straight and CMOS
    # byte 0 (seconds, 0x00) on the destination.
    "rtc-cmos-index-dropped": Case(
        _library("rtc-inside-update-window"), first_after_migrate("inb 0x71"),
        lambda s, m: _read(0xA6)(s) and _read(0x00)(m)),
    # UF and IRQF are set at the 1 s update and left unread; register C is
    # selected before the migration and read right after it: IRQF|UF (0x90)
    # straight, 0 migrated.
    "rtc-register-c-cleared": Case(
        """\
#! rtc-base=2010-06-08T01:23:00 rtc-clock=vm
# Update-ended interrupt flags pending in register C across the migration.
irq_intercept_in ioapic
outb 0x70 0x0b
outb 0x71 0x12
clock_step 1500000000
outb 0x70 0x0c
migrate
inb 0x71
""", first_after_migrate("inb 0x71"), lambda s, m: _read(0x90)(s) and _read(0x00)(m)),
    # Acknowledging the reset's TMR_STS puts the overflow time at bit 23's
    # first toggle (2.34 s).  At 1 s a PM1 status read compares the clock
    # with it: clear straight; set migrated, where the overflow time is 0.
    # The timer value read before it does not depend on the overflow time.
    "pm-overflow-time-dropped": Case(
        """\
# The PM timer armed for bit 23's first toggle; migrated at 1 s.
irq_intercept_in ioapic
{PM_BRING_UP}
clock_step 1000000000
migrate
inl 0x608
inw 0x600
""".format(PM_BRING_UP="\n".join(pm_bring_up())), first_after_migrate("inw 0x600"), lambda s, m: _read(0x0)(s) and _read(0x1)(m)),
    # 0xcf8 holds PMREGMISC's address at the second migration; the 0xcfc
    # write after it (re-enabling the PM I/O space) goes nowhere without it,
    # and the first access that can tell is the read of the moved PM block,
    # which nothing decodes on the destination (0xffff).
    "pcihost-config-reg-dropped": Case(
        _library("pm-block-moved-while-armed"), first_after_migrate("inw 0xb000", migration_number=2),
        lambda s, m: _read()(s) and _read(0xFFFF)(m)),
    # Port 0x61 was written 0x03 before the migration; its first read after
    # shows the data bit (bit 1) straight and not migrated.
    "pcspk-data-on-dropped": Case(
        _library("pit-speaker-gate-toggling"), first_after_migrate("inb 0x61"),
        lambda s, m: isinstance(s, Read) and isinstance(m, Read) and s.value ^ m.value == 0x02),
}


def test_at_least_ten_planted_bugs_and_each_has_a_case():
    assert len(PLANTED) >= 10
    assert set(CASES) == set(PLANTED)


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_bug_replaces_one_section_and_leaves_the_real_ones_alone(name):
    """A variant must differ from SECTIONS in its device's section only,
    name a field of that device, and be derived without touching the real
    descriptions (which every other test uses)."""
    bug = PLANTED[name]
    assert bug.device in PcMachine().devices
    assert bug.field.startswith(bug.device + ".")
    assert bug.why and bug.name == name
    assert [s.idstr for s in bug.sections] == [s.idstr for s in SECTIONS]
    changed = [planted.device for planted, real in zip(bug.sections, SECTIONS)
               if planted.description is not real.description]
    assert changed == [bug.device]


def test_deriving_a_variant_does_not_mutate_the_real_description():
    before = [type(e).__name__ for e in PIT_CHANNEL.fields], len(PIT_CHANNEL.checks)
    broken = drop_field(PIT_CHANNEL, "read_state")
    assert any(isinstance(e, Field) and e.name == "read_state" for e in PIT_CHANNEL.fields)
    assert ([type(e).__name__ for e in PIT_CHANNEL.fields], len(PIT_CHANNEL.checks)) == before
    assert broken.size(2) == PIT_CHANNEL.size(2)
    assert not any(isinstance(e, Field) and e.name == "read_state" for e in broken.fields)


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_checker_catches_the_planted_bug_where_the_guest_first_can_see_it(name):
    bug, case = PLANTED[name], CASES[name]
    assert checker.check(case.scenario).status == "equivalent"
    verdict = checker.check(case.scenario, sections=bug.sections)
    assert verdict.status == "diverges", verdict.refusal
    d = verdict.divergence
    assert d.line == case.line(case.scenario)
    assert case.events(d.straight, d.migrated), (d.straight, d.migrated)
    assert bug.field in changed_fields(d), changed_fields(d)


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_the_counterexample_replays_the_verdict_through_vmstate_check(name, tmp_path, monkeypatch):
    """``vmstate check`` has no option to pick schemas, but checker.check
    takes ``migration.SECTIONS`` when given none: patching it stands for a
    build of vmstate with the broken device.  The same file checked with
    the real schemas must pass, or the trace rather than the schema would
    be what fails."""
    bug, case = PLANTED[name], CASES[name]
    verdict = checker.check(case.scenario, sections=bug.sections)
    path = tmp_path / f"{name}.trace"
    path.write_text(checker.counterexample(case.scenario, verdict))

    real = CliRunner().invoke(main, ["check", "--json", str(path)])
    assert real.exit_code == 0, real.output

    monkeypatch.setattr(migration, "SECTIONS", bug.sections)
    result = CliRunner().invoke(main, ["check", "--json", str(path)])
    assert result.exit_code == 1, result.output
    replayed = json.loads(result.output)
    assert replayed["status"] == "diverges"
    assert bug.field in replayed["divergence"]["fields"]
    original = case.scenario.splitlines()[verdict.divergence.line - 1]
    assert path.read_text().splitlines()[replayed["divergence"]["line"] - 1] == original
    d = verdict.divergence
    for side, event in (("straight", d.straight), ("migrated", d.migrated)):
        shown = replayed["divergence"][side]
        assert shown["kind"] == type(event).__name__.lower()
        assert {k: v for k, v in shown.items() if k not in ("kind", "op")} == \
            {k: v for k, v in event._asdict().items() if k != "op"}
