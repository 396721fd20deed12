"""The reference harness itself: it must catch a wrong expectation, and a
migration on the reference must be invisible to a running PIT count."""
import pytest
from click.testing import CliRunner

from differential import TRACES, ours
from vmstate.cli import main
from vmstate.trace.oracle import Reference, first_difference
from vmstate.trace.qtest import parse_trace

PIT_COUNT = """\
outb 0x61 0x1
outb 0x43 0xb0
outb 0x42 0x00
outb 0x42 0x80
clock_step 5000000
outb 0x43 0x80
inb 0x42
inb 0x42
{migrate}clock_step 3000000
outb 0x43 0x80
inb 0x42
inb 0x42
"""


def test_first_difference_finds_the_first_parting_line():
    assert first_difference(["OK", "OK 1"], ["OK", "OK 1"]) is None
    assert first_difference(["OK", "OK 1", "OK"], ["OK", "OK 2", "OK"]) == 1
    assert first_difference(["OK"], ["OK", "IRQ raise 0"]) == 1


def test_a_deliberately_wrong_expected_output_is_caught(tmp_path):
    """A doctored recording (one reply changed) must fail the comparison at
    exactly that line, without touching any device."""
    source = TRACES / "pm-timer-basic.trace"
    trace = tmp_path / source.name
    trace.write_text(source.read_text())
    lines = source.with_suffix(".qemu").read_text().splitlines()
    doctored = list(lines)
    doctored[5] = "OK 0x0dfc"
    assert first_difference(ours(trace), lines) is None
    assert first_difference(ours(trace), doctored) == 5


@pytest.mark.oracle
def test_oracle_diff_reports_identical_and_exits_zero():
    result = CliRunner().invoke(main, ["oracle", "diff", str(TRACES / "pm-timer-basic.trace")])
    assert result.exit_code == 0, result.output
    assert "identical" in result.output


@pytest.mark.oracle
def test_oracle_diff_marks_the_first_difference_and_exits_one(monkeypatch):
    """Our side's output is doctored (the devices are left alone): the diff
    must name the parting line and fail."""
    from vmstate.cli import reference as cli

    real = cli._our_lines

    def doctored(*args):
        lines = real(*args)
        lines[5] = "OK 0x0dfc"
        return lines

    monkeypatch.setattr(cli, "_our_lines", doctored)
    result = CliRunner().invoke(main, ["oracle", "diff", str(TRACES / "pm-timer-basic.trace")])
    assert result.exit_code == 1
    assert "outputs part at output line 6" in result.output


@pytest.mark.oracle
def test_migrating_the_reference_mid_count_is_invisible(tmp_path):
    commands = parse_trace(PIT_COUNT.format(migrate="migrate\n"))
    straight = Reference("2000-01-01T00:00:00").run(parse_trace(PIT_COUNT.format(migrate="")))
    migrated = Reference("2000-01-01T00:00:00", keep_streams=tmp_path).run(commands)
    assert migrated[:8] == straight[:8] and migrated[8] == "OK" and migrated[9:] == straight[8:]
    stream = next(tmp_path.glob("stream-*.bin")).read_bytes()
    assert stream[:8] == b"QEVM\x00\x00\x00\x03"


# -- migration between implementations ----------------------------------------------------------
from differential import load, recorded, scenarios  # noqa: E402


@pytest.mark.oracle
@pytest.mark.parametrize("first, second", [("qemu", "vmstate"), ("vmstate", "qemu")])
@pytest.mark.parametrize("path", scenarios(), ids=lambda p: p.stem)
def test_the_library_migrates_between_qemu_and_vmstate_as_qemu_migrates_to_itself(path, first, second):
    """Through the real bytes, mid-operation, each migrate line moving the
    machine to the other implementation: the output is QEMU->QEMU's, as
    recorded from the reference."""
    commands, options = load(path)
    assert Reference(options["rtc_base"], options["rtc_clock"]).between(commands, first, second) == recorded(path)


@pytest.mark.oracle
def test_oracle_migrate_finds_a_stream_that_loses_a_field_and_names_it(monkeypatch):
    """vmstate -> QEMU with a schema that drops the PIT's write_state: QEMU
    takes the reload's second byte as a first one, the output parts, and the
    command names the field the two streams sent differ in."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from planted import PLANTED
    from vmstate.machine import migration

    scenario = Path(__file__).parent.parent / "fixtures" / "scenarios" / "pit-between-reload-bytes.trace"
    good = CliRunner().invoke(main, ["oracle", "migrate", str(scenario), "--from", "vmstate", "--to", "qemu"])
    assert good.exit_code == 0, good.output
    save = migration.save
    monkeypatch.setattr(migration, "save", lambda machine, versions=None, sections=None:
                        save(machine, versions, PLANTED["pit-write-state-dropped"].sections))
    bad = CliRunner().invoke(main, ["oracle", "migrate", str(scenario), "--from", "vmstate", "--to", "qemu"])
    assert bad.exit_code == 1
    assert "parts" in bad.output and "i8254.channels[0].write_state" in bad.output
