"""The migration checker on the scenario library: every scenario is
invisible to the guest across a same-version migration, except where QEMU
7.2's own conversions on load make it visible (the scenario says so), every straight run
prints what QEMU 7.2 printed across real migrations, and a migration QEMU
itself gets wrong is caught where it shows."""
import json
import re
import tracemalloc

import pytest
from click.testing import CliRunner

from differential import COUNTEREXAMPLES, expected_divergence, ours, recorded, scenarios
from vmstate.check import checker
from vmstate.cli import main
from vmstate.trace.oracle import first_difference

SCENARIOS = scenarios()
IDS = [p.stem for p in SCENARIOS]
RTC_BUG = COUNTEREXAMPLES / "qemu-rtc-divider-held-time-jumps.trace"


def test_the_library_has_at_least_24_scenarios_each_explained():
    assert len(SCENARIOS) >= 24
    for path in SCENARIOS:
        text = path.read_text()
        assert "migrate" in text and "\n# " in "\n" + text, path.name


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_every_scenario_is_equivalent_across_a_same_version_migration(path):
    verdict = checker.check(path.read_text())
    field = expected_divergence(path)
    if field is None:
        assert verdict.status == "equivalent", verdict.divergence
        assert verdict.migrations and len(verdict.straight) == len(verdict.migrated)
    else:
        from vmstate.check.report import changed_fields
        assert verdict.status == "diverges"
        assert field in changed_fields(verdict.divergence)


def test_qemus_rtc_post_load_rephases_the_periodic_interrupt():
    """rtc_post_load re-arms the periodic timer one period after the load
    whenever its deadline is still ahead (``now < next_periodic_time``),
    which on the virtual clock is always: the next tick comes late, on the
    32 kHz grid counted from the moment of the load."""
    text = "\n".join(["irq_intercept_in ioapic", "outb 0x70 0x0a", "outb 0x71 0x2d", "outb 0x70 0x0b",
                      "outb 0x71 0x42", "clock_step 400000000", "outb 0x70 0x0c", "inb 0x71", "migrate",
                      "clock_step 200000000"]) + "\n"
    verdict = checker.check(text)
    assert verdict.status == "diverges"
    d = verdict.divergence
    # 8 Hz (RS 13): every 4096 cycles of 32768 Hz (125 ms), counted from 0
    # straight; from cycle 13107 (the load, at 400 ms) migrated; +1 ns each
    assert (d.straight.line, d.straight.time) == (8, 500_000_000 + 1)
    late = [e.time for e in verdict.migrated.events[d.index:] if getattr(e, "line", None) == 8]
    assert late[0] == (13107 + 4096) * 10**9 // 32768 + 1


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_every_straight_run_prints_what_qemu_printed_across_real_migrations(path):
    straight = ours(path, migrate=lambda machine, command: machine)
    expected = recorded(path)
    first = first_difference(straight, expected)
    assert first is None, f"line {first + 1}: {straight[first:first + 1]} vs {expected[first:first + 1]}"


@pytest.mark.parametrize("path", SCENARIOS + [RTC_BUG], ids=IDS + [RTC_BUG.stem])
def test_every_migrated_run_prints_what_qemu_printed_across_the_same_migrations(path):
    """Through our bytes, migrated as the harness migrates QEMU (loaded at
    qtest clock 0, then clock_set): the lines QEMU printed, IRQ lines too."""
    got = ours(path)
    expected = recorded(path)
    first = first_difference(got, expected)
    assert first is None, f"line {first + 1}: {got[first:first + 1]} vs {expected[first:first + 1]}"


@pytest.mark.oracle
@pytest.mark.parametrize("path", SCENARIOS + [RTC_BUG], ids=IDS + [RTC_BUG.stem])
def test_the_reference_still_prints_the_recording_across_real_migrations(path):
    """Live: real QEMU 7.2 migrations, including ones taken with an
    interrupt line held high (the harness re-asserts it on the destination)."""
    from differential import load
    from vmstate.trace.oracle import Reference

    commands, options = load(path)
    assert Reference(options["rtc_base"], options["rtc_clock"]).run(commands) == recorded(path)


@pytest.mark.parametrize("path", SCENARIOS, ids=IDS)
def test_a_migrated_run_prints_the_same_as_the_straight_one(path):
    assert ours(path) == ours(path, migrate=lambda machine, command: machine)


def test_the_qemu_rtc_divider_bug_is_caught_at_the_first_read_after_release():
    """QEMU 7.2's pre_save writes the running time into CMOS while the
    divider is held; the reference shows the jump (its recording differs
    from an unmigrated run), and the checker must show it too."""
    text = RTC_BUG.read_text()
    verdict = checker.check(text)
    assert verdict.status == "diverges"
    d = verdict.divergence
    assert d.line == [n for n, line in enumerate(text.splitlines(), 1) if line == "inb 0x71"][0]
    assert (d.straight.value, d.migrated.value) == (0x00, 0x01)
    from vmstate.check.report import changed_fields
    assert any("cmos_data" in path for path in changed_fields(d))
    migrated_reference = recorded(RTC_BUG)
    assert first_difference(ours(RTC_BUG), migrated_reference) is None


def test_downtime_moves_host_time_not_virtual_time():
    text = "clock_step 1000\nmigrate downtime=5000\nclock_step 1000\n"
    verdict = checker.check(text)
    assert verdict.equivalent
    assert [e.time for e in verdict.migrated.events] == [1000, 2000]


def test_a_destination_that_loads_only_older_versions_refuses_with_a_clear_error():
    path = next(p for p in SCENARIOS if p.stem == "pit-between-latched-count-bytes")
    verdict = checker.check(path.read_text(), destination_versions={"i8254": 2})
    assert verdict.status == "refused"
    assert type(verdict.refusal).__name__ == "VersionTooNew" and verdict.refusal.path == "i8254"


def test_cli_check_exit_codes_and_json():
    path = str(next(p for p in SCENARIOS if expected_divergence(p) is None))
    ok = CliRunner().invoke(main, ["check", "--json", path])
    assert ok.exit_code == 0 and json.loads(ok.output)["status"] == "equivalent"
    as_qemu = CliRunner().invoke(main, ["check", "--json", str(RTC_BUG)])
    assert as_qemu.exit_code == 3 and json.loads(as_qemu.output)["divergence"]["line"] > 0
    assert json.loads(as_qemu.output)["as_qemu_does"] == ["qemu-rtc-divider-held-time-jump"]
    lost = CliRunner().invoke(main, ["check", "--json", "--from", "i8254:2",
                                     str(SCENARIOS[0].parent / "pit-interrupt-disabled-by-hpet-legacy.trace")])
    assert lost.exit_code == 1 and json.loads(lost.output)["as_qemu_does"] == []
    usage = CliRunner().invoke(main, ["check", "--from", "i8254", path])
    assert usage.exit_code == 2


def test_a_counterexample_file_replays_the_same_verdict(tmp_path):
    out = tmp_path / "cx.trace"
    result = CliRunner().invoke(main, ["check", "--downtime", "7", "--counterexample", str(out), str(RTC_BUG)])
    assert result.exit_code == 3 and out.exists()
    replay = checker.check(out.read_text())
    original = checker.check(RTC_BUG.read_text(), downtime=7)
    assert replay.status == original.status == "diverges"
    same = lambda event: event._replace(op=0)
    assert same(replay.divergence.straight) == same(original.divergence.straight)
    assert same(replay.divergence.migrated) == same(original.divergence.migrated)
    assert "downtime=7" in out.read_text()
    told = int(re.search(r"^# the runs part at line (\d+)", out.read_text(), re.M).group(1))
    assert told == replay.divergence.line
    assert out.read_text().splitlines()[told - 1] == RTC_BUG.read_text().splitlines()[original.divergence.line - 1]
    run = CliRunner().invoke(main, ["run", str(out)])
    assert run.exit_code == 0


# -- in step: long traces in bounded memory ------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_the_runs_in_step_give_the_verdict_the_whole_records_give(path):
    text = path.read_text()
    whole, in_step = checker.check(text), checker.check(text, keep=False)
    assert (in_step.status, in_step.known, in_step.refused_at) == (whole.status, whole.known, whole.refused_at)
    assert in_step.events == (whole.divergence.index if whole.divergence else whole.events)
    if whole.divergence is not None:
        a, b = whole.divergence, in_step.divergence
        assert (b.index, b.line, b.straight, b.migrated, b.before) == (a.index, a.line, a.straight, a.migrated,
                                                                      a.before)
        assert [r.point for r in b.migrations] == [r.point for r in a.migrations]
    assert [r.point for r in in_step.migrations] == [r.point for r in whole.migrations]


def _long_trace(lines: int) -> str:
    body = ["irq_intercept_in ioapic", "outb 0x43 0x34", "outb 0x40 0x00", "outb 0x40 0x10"]
    reads = ["inb 0x40", "clock_step 1000", "inb 0x61", "outb 0x70 0x0a", "inb 0x71", "readl 0xfed000f0"]
    body += [reads[i % len(reads)] for i in range(lines)]
    body.insert(len(body) // 2, "migrate")
    return "\n".join(body) + "\n"


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_long_trace_runs_and_checks_in_memory_that_does_not_grow_with_it(command, tmp_path):
    """50,000 lines (0.6 MB): checked with the whole records held, 25 MB;
    run as they are read, the text, the replies and a window of events."""
    trace = tmp_path / "long.trace"
    trace.write_text(_long_trace(50_000))
    tracemalloc.start()
    try:
        result = CliRunner().invoke(main, [command, str(trace)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert peak < (4 << 20) + 6 * trace.stat().st_size, peak
