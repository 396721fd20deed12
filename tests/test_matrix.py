"""The cross-version matrix: which old formats lose what, and that nothing
else is lost.  Most tests run a few scenarios; the whole library runs once."""
import dataclasses
import json

import pytest
from click.testing import CliRunner

from differential import SCENARIOS
from schemas import SECTIONS, SectionSchema
from schemas.i8254 import I8254
from vmstate.check import checker
from vmstate.check import known, matrix
from vmstate.cli import main
from vmstate.core.errors import UsageError, VersionTooNew
from vmstate.core.observe import Clock, Read

LIMITS = {limit.key: limit for limit in known.KNOWN_LIMITS}
SAMPLE = [SCENARIOS / f"{name}.trace" for name in (
    "pit-interrupt-disabled-by-hpet-legacy",   # i8254 v2 shows its limit
    "rtc-half-way-through-a-second",           # mc146818rtc v1/v2 show theirs
    "rtc-periodic-coalesced",                  # QEMU diverges at the same version
    "hpet-periodic-mid-period",                # an enabled HPET: timer v1 is refused
)]


@pytest.fixture(scope="module")
def sample():
    return matrix.build(SAMPLE)


def test_the_multi_version_sections_are_qemu_72s():
    # version_id / minimum_version_id in cpu-timers.c, hpet.c, mc146818rtc.c, i8254_common.c
    assert matrix.multi_version() == {"timer": (1, 2), "hpet": (1, 2), "mc146818rtc": (1, 3), "i8254": (2, 3)}


def test_every_pair_is_a_cell_forward_and_backward(sample):
    for device, (low, high) in sample.versions.items():
        for saved in range(low, high + 1):
            for loading in range(low, high + 1):
                assert len(sample.at(device, saved, loading)) == len(SAMPLE), (device, saved, loading)
    directions = {cell.direction for cell in sample.cells}
    assert directions == {"same", "forward", "backward"}


def test_same_version_cells_at_the_current_version_are_equivalent(sample):
    for device, (_, high) in sample.versions.items():
        assert {c.status for c in sample.at(device, high, high)} == {"equivalent"}, device


def test_a_newer_stream_into_an_older_destination_is_refused_with_version_too_new(sample):
    backward = [cell for cell in sample.cells if cell.saved > cell.loading]
    assert backward
    for cell in backward:
        assert (cell.status, cell.error) == ("refused", "VersionTooNew"), cell
        assert cell.explained and cell.limit is None
    text = SAMPLE[0].read_text()
    verdict = checker.check(text, source_versions={"mc146818rtc": 3}, destination_versions={"mc146818rtc": 2})
    assert isinstance(verdict.refusal, VersionTooNew) and verdict.refusal.path == "mc146818rtc"


def test_a_scenario_qemu_gets_wrong_at_the_same_version_counts_against_no_pair(sample):
    """rtc-periodic-coalesced diverges even at the same version (the RTC's
    periodic re-phase); an i8254 or HPET pair changes nothing in it."""
    name = "rtc-periodic-coalesced"
    text = (SCENARIOS / f"{name}.trace").read_text()
    assert checker.check(text, source_versions={"i8254": 2}).status == "diverges"
    assert sample.baseline[name] == "diverges" and name not in sample.surprises
    for device in ("i8254", "hpet"):
        cells = [c for c in sample.cells if c.scenario == name and c.device == device and c.saved <= c.loading]
        assert {c.status for c in cells} == {"equivalent"}, device


def test_every_non_equivalent_cell_of_the_sample_is_explained(sample):
    assert sample.unexplained == [] and sample.surprises == []
    for cell in sample.cells:
        if cell.status == "diverges":
            assert cell.limit is not None and set(cell.fields) & set(cell.limit.lacks), cell


# What each minimal scenario shows, from QEMU 7.2's code and the datasheets:
# the straight run's event, then the one a destination of the old format sees.
SHOWN = {
    # clock_step 1000 twice: 2000 ns; without cpu_clock_offset the
    # destination's clock restarts from 0
    "no-virtual-time": (Clock(0, 2000), Clock(0, 1000)),
    # a bare clock_step stops at the RTC's update, one second after the base;
    # re-armed, the PIT's reset mode 3 (65536 counts) has its first OUT
    # transition after 32768 periods of 1.193182 MHz: 27462700 ns
    "no-irq-disabled": (Clock(0, 1_000_000_000), Clock(0, 27_462_700)),
    # seconds at 1.1 s from 01:23:00: 01; re-based at 0.5 s with offset 0,
    # the first update comes at 1.5 s
    "no-time-base": (Read(0, 1_100_000_000, "io", 0x71, 1, 0x01), Read(0, 1_100_000_000, "io", 0x71, 1, 0x00)),
}


@pytest.mark.parametrize("limit", known.KNOWN_LIMITS, ids=lambda limit: limit.key)
def test_each_known_limit_is_shown_by_its_minimal_scenario(limit):
    path = SCENARIOS / f"{limit.scenario}.trace"
    text = path.read_text()
    assert text.startswith(("#", "#!")) and "\n# " in "\n" + text
    baseline = checker.check(text)
    assert baseline.equivalent
    _, newest = matrix.multi_version()[limit.device]
    for saved in limit.versions:
        for loading in range(saved, newest + 1):
            verdict = checker.check(text, source_versions={limit.device: saved},
                                    destination_versions={limit.device: loading})
            cell = matrix.judge(limit.device, saved, loading, path.stem, verdict, baseline)
            assert cell.status == "diverges" and cell.limit is limit, cell
            d = verdict.divergence
            assert (d.straight._replace(op=0), d.migrated._replace(op=0)) == SHOWN[limit.key]
    newer = checker.check(text, source_versions={limit.device: max(limit.versions) + 1})
    assert newer.equivalent


def test_the_minimal_scenarios_are_minimal():
    """Leaving out any one command loses the divergence (or the scenario)."""
    from vmstate.trace.qtest import parse_trace

    for limit in known.KNOWN_LIMITS:
        text = (SCENARIOS / f"{limit.scenario}.trace").read_text()
        pragma = [line for line in text.splitlines() if line.startswith("#!")]
        commands = [c.text for c in parse_trace(text)]
        for skip in range(len(commands)):
            shorter = "\n".join(pragma + commands[:skip] + commands[skip + 1:]) + "\n"
            if not any(c.startswith("migrate") for c in commands[:skip] + commands[skip + 1:]):
                with pytest.raises(UsageError):
                    checker.check(shorter)
                continue
            verdict = checker.check(shorter, source_versions={limit.device: limit.versions[0]})
            assert verdict.status != "diverges", (limit.key, commands[skip])


def test_a_timer_v1_stream_with_the_hpet_enabled_is_refused_by_its_known_limit(sample):
    cells = [c for c in sample.cells if (c.scenario, c.device, c.saved) == ("hpet-periodic-mid-period", "timer", 1)]
    assert cells and all(c.status == "refused" and c.error == "InvalidField" for c in cells)
    assert all(c.limit is LIMITS["no-virtual-time"] for c in cells)


def _forgets_the_load_time_of_v2(pit, version, aux):
    """A planted bug: a v2 stream loses channel 0's count load time, which
    every version carries."""
    I8254.post_load(pit, version, aux)
    if version == 2:
        pit.channels[0].count_load_time += 1000


def test_a_divergence_no_known_limit_explains_is_unexplained():
    broken = dataclasses.replace(I8254, post_load=_forgets_the_load_time_of_v2)
    sections = [SectionSchema("i8254", "i8254", broken) if s.idstr == "i8254" else s for s in SECTIONS]
    result = matrix.build([SCENARIOS / "pit-mode2-rate-generator-mid-period.trace"], "i8254", sections=sections)
    bad = result.unexplained
    assert [(c.saved, c.loading) for c in bad] == [(2, 2), (2, 3)]
    assert all("i8254.channels[0].count_load_time" in c.fields for c in bad)


def test_a_same_version_divergence_the_scenario_does_not_expect_fails_the_matrix(tmp_path):
    scenario = tmp_path / "unexpected.trace"
    scenario.write_text("# the RTC's periodic re-phase, not declared\n" + (SCENARIOS / "rtc-periodic-coalesced.trace")
                        .read_text().replace("# expect: diverges", "# once: diverges"))
    result = matrix.build([scenario], "i8254")
    assert result.surprises == ["unexpected"] and result.failed


def test_the_full_matrix_over_the_library_has_no_unexplained_cell():
    full = matrix.build()
    assert full.scenarios == [p.stem for p in sorted(SCENARIOS.glob("*.trace"))]
    assert full.unexplained == [] and full.surprises == []
    used = {cell.limit.key for cell in full.cells if cell.limit is not None}
    assert used == set(LIMITS), "every known limit explains at least one cell"
    for cell in full.cells:
        if cell.saved > cell.loading:
            assert cell.error == "VersionTooNew"
        if cell.status != "equivalent" and cell.saved <= cell.loading:
            assert cell.saved in cell.limit.versions
    hpet = [c for c in full.cells if c.device == "hpet" and c.saved <= c.loading]
    assert {c.status for c in hpet} == {"equivalent"}, "pc's 3 timers are all a v1 stream lacks"


def _invoke(*args):
    return CliRunner().invoke(main, ["matrix", *args])


def test_cli_json_lists_every_cell_and_the_known_limits():
    result = _invoke("--device", "i8254", "--json", *map(str, SAMPLE[:2]))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["cells"]) == 2 * 4 and out["unexplained"] == 0
    assert {limit["key"] for limit in out["known_limits"]} == set(LIMITS)
    cell = next(c for c in out["cells"] if c["scenario"] == SAMPLE[0].stem and (c["saved"], c["loading"]) == (2, 3))
    assert (cell["status"], cell["limit"], cell["direction"]) == ("diverges", "no-irq-disabled", "forward")
    assert out["devices"]["i8254"]["grid"]["3->2"] == "2 refused: VersionTooNew"


def test_cli_markdown_is_a_table_per_device_and_one_of_limits():
    result = _invoke("--device", "mc146818rtc", "--markdown", str(SAMPLE[1]))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "### mc146818rtc" in lines and "### Known limits of old formats" in lines
    start = lines.index("### mc146818rtc") + 2
    grid = lines[start:start + 5]
    assert all(line.startswith("|") and line.count(" | ") == 3 for line in grid)
    assert grid[0] == "| saved \\ loading | v1 | v2 | v3 |"
    assert grid[2].startswith("| v1 | 1 diverges (no-time-base) |")


def test_cli_exit_codes(monkeypatch):
    assert _invoke("--help").exit_code == 0
    bad = _invoke("--device", "pcspk", str(SAMPLE[0]))
    assert bad.exit_code == 2 and "pcspk" in bad.output
    assert _invoke("--device", "i8254", str(SAMPLE[0])).exit_code == 0
    monkeypatch.setattr(known, "KNOWN_LIMITS", ())
    unexplained = _invoke("--device", "i8254", str(SAMPLE[0]))
    assert unexplained.exit_code == 1 and "unexplained" in unexplained.output
