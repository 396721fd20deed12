"""`vmstate check --plot`: the picture of both runs, and its optional extra."""
import sys
import xml.etree.ElementTree as ET
from importlib.util import find_spec

import pytest
from click.testing import CliRunner

from differential import SCENARIOS
from vmstate.check import checker
from vmstate.check import plot
from vmstate.cli import main

drawing = pytest.mark.skipif(find_spec("matplotlib") is None, reason="needs the plot extra: pip install -e '.[test,plot]' (CI installs it)")

PERIODIC = SCENARIOS / "rtc-periodic-coalesced.trace"      # diverges: QEMU's periodic re-phase
QUIET = SCENARIOS / "pit-mode3-square-wave-edges.trace"      # equivalent
SVG = "{http://www.w3.org/2000/svg}"


def _ids(path):
    return {element.get("id") for element in ET.parse(path).getroot().iter()}


@drawing
def test_an_svg_marks_the_first_difference(tmp_path):
    verdict = checker.check(PERIODIC.read_text())
    out = plot.draw(verdict, tmp_path / "runs.svg")
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    # one dashed line per run (straight above, migrated below)
    marks = [e for e in root.iter() if (e.get("id") or "").startswith(plot.DIVERGENCE_GID)]
    assert len(marks) == 2


@drawing
def test_an_equivalent_run_has_no_mark(tmp_path):
    out = plot.draw(checker.check(QUIET.read_text()), tmp_path / "runs.svg")
    assert not any((i or "").startswith(plot.DIVERGENCE_GID) for i in _ids(out))


@drawing
def test_a_png_is_written(tmp_path):
    import matplotlib.image

    out = plot.draw(checker.check(PERIODIC.read_text()), tmp_path / "runs.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(out).shape
    assert width > height > 0


def test_lanes_are_one_per_irq_line_then_one_per_port():
    # the RTC interrupts on ISA IRQ 8, register C is read at port 0x71, and
    # the PIT's reset mode 3 toggles IRQ 0
    verdict = checker.check(PERIODIC.read_text())
    assert plot.lanes(verdict.straight, verdict.migrated) == ["IRQ 0", "IRQ 8", "io 0x71"]


def test_migrations_are_placed_at_their_virtual_time():
    verdict = checker.check("clock_step 1000\nmigrate\nclock_step 500\nmigrate downtime=7\ninb 0x61\n")
    assert plot.migration_times(verdict) == [1000, 1500]


@drawing
def test_cli_check_writes_the_picture_and_keeps_its_exit_code(tmp_path):
    out = tmp_path / "runs.svg"
    result = CliRunner().invoke(main, ["check", "--plot", str(out), str(PERIODIC)])
    assert result.exit_code == 3 and out.exists()   # QEMU 7.2's own re-phase
    assert ET.parse(out).getroot().tag == f"{SVG}svg"


def test_cli_refuses_a_format_it_cannot_write_before_running(tmp_path):
    out = tmp_path / "runs.pdf"
    result = CliRunner().invoke(main, ["check", "--plot", str(out), str(QUIET)])
    assert result.exit_code == 2 and not out.exists() and ".svg" in result.output


def test_without_matplotlib_the_error_says_to_install_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(plot.PlotUnavailable, match=r"vmstate\[plot\]"):
        plot.draw(checker.check(QUIET.read_text()), tmp_path / "runs.svg")
    out = tmp_path / "cli.svg"
    result = CliRunner().invoke(main, ["check", "--json", "--plot", str(out), str(QUIET)])
    assert result.exit_code == 2 and not out.exists()
    assert '"error": "PlotUnavailable"' in result.output
