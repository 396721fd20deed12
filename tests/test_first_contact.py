"""What a new user meets on the command line, bad input first: one typed
error naming the file and the line (or the byte offset and the field), exit
status 2, no traceback, nothing half done, and no work before an output
path is known to be writable."""
import json
import os
import stat
import struct
import subprocess
import sys
import zlib

import pytest
from click.testing import CliRunner

from vmstate.cli import main
from vmstate.core import inputs
from vmstate.core.clock import MAX_VIRTUAL_NS
from vmstate.core.outputs import PARTIAL, write_atomically
from vmstate.machine.pc import FIRST_RTC_BASE_TEXT, LAST_RTC_BASE_TEXT
from vmstate.wire import snapshot

PIT_BUSY = "irq_intercept_in ioapic\noutb 0x43 0x34\noutb 0x40 0x02\noutb 0x40 0x00\n"


def cli(args, stdin=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=stdin)


def refused(result, *words):
    """A refusal as the brief promises it: exit 2, our own message, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)
    return result.output


@pytest.fixture
def snap(tmp_path):
    trace = tmp_path / "busy.trace"
    trace.write_text(PIT_BUSY + "clock_step 1000\n")
    out = tmp_path / "busy.snap"
    assert cli(["save", trace, "-o", out]).exit_code == 0
    return out


# -- the command itself -------------------------------------------------------------------
def test_bare_vmstate_shows_the_help_and_exits_0():
    result = cli([])
    assert result.exit_code == 0 and "Commands:" in result.output and "check" in result.output


def test_version():
    result = cli(["--version"])
    assert result.exit_code == 0 and result.output.startswith("vmstate, version ")


def test_python_dash_m_vmstate_is_the_same_command():
    done = subprocess.run([sys.executable, "-m", "vmstate", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("vmstate, version ")


# -- traces that are not text, or not files ----------------------------------------------
NOT_UTF8 = b"outb 0x43 0x34\nclock_step 10\ninb 0x40 \xff\xfe\n"


@pytest.mark.parametrize("command", [["run"], ["check"], ["save", "-o", "{tmp}/x.snap"], ["restore", "{snap}"],
                                     ["oracle", "run"], ["oracle", "diff"]])
def test_a_trace_that_is_not_utf8_is_refused_naming_the_file_line_and_column(command, tmp_path, snap):
    trace = tmp_path / "bad.trace"
    trace.write_bytes(NOT_UTF8)
    args = [a.format(tmp=tmp_path, snap=snap) for a in command] + [trace]
    refused(cli(args), f"{trace}: line 3:", "not UTF-8", "0xff at column 10")
    assert not (tmp_path / "x.snap").exists()


def test_a_stream_given_as_a_trace_is_refused_as_a_trace(tmp_path, snap):
    refused(cli(["run", snap]), f"{snap}: line 1:")


def test_device_files_and_fifos_are_refused_without_reading(tmp_path):
    refused(cli(["run", "/dev/zero"]), "/dev/zero: not a regular file")
    refused(cli(["inspect", "/dev/zero"]), "/dev/zero: not a regular file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    refused(cli(["run", fifo]), "not a regular file")


def test_a_file_larger_than_any_trace_is_refused_with_its_size(tmp_path):
    huge = tmp_path / "huge.trace"
    with open(huge, "wb") as handle:
        handle.truncate(inputs.MAX_INPUT + 1)
    refused(cli(["run", huge]), f"{inputs.MAX_INPUT + 1} bytes", "more than any trace")


# -- errors name the line, and nothing runs before they are found ------------------------------
def test_a_bad_migrate_line_stops_the_run_before_anything_runs(tmp_path):
    out = refused(cli(["run", "-"], "inb 0x61\nclock_step 5\nmigrate from=i8254:²\n"),
                  "standard input: line 3:", "'i8254:²'")
    assert "OK" not in out


@pytest.mark.parametrize("text, words", [
    ("inb 0x61\n#! rtc-base=garbage\n", ["line 2:", "pragma after the first command"]),
    ("#! rtc-base=garbage\ninb 0x61\n", ["line 1:", "rtc-base: 'garbage' is not an ISO-8601 date"]),
    ("#! rtc-clock=bogus\n", ["line 1:", "rtc-clock: 'bogus' is not one of vm, host"]),
    ("migrate to=bogus:1\n", ["line 1:", "no device 'bogus'"]),
    ("migrate to=i8524:2\n", ["line 1:", "no device 'i8524'"]),
    ("inb 0x61\x00\n", ["line 1:", "NUL"]),
])
def test_every_trace_error_names_its_line(text, words):
    for command in (["run", "-"], ["check", "-"]):
        refused(cli(command, text + "migrate\n"), *words)


def test_options_are_spelt_as_given_and_not_blamed_on_the_file():
    out = refused(cli(["run", "--rtc-base", "garbage", "-"], "inb 0x61\n"), "--rtc-base: 'garbage'")
    assert "standard input" not in out


def test_an_unprintable_name_is_escaped_in_the_message(tmp_path):
    out = refused(cli(["run", "-"], "irq_intercept_in io\x01apic\nmigrate to=pi\x1bt:1\n"), "line 2:")
    assert "\x1b" not in out and "\\x1b" in out


# -- the end of time, and the RTC's range ---------------------------------------------------
@pytest.mark.parametrize("line", [f"clock_step {2**63 - 1}", f"clock_set {MAX_VIRTUAL_NS}",
                                  f"clock_step {MAX_VIRTUAL_NS - 1}\nclock_step 1"])
def test_time_past_the_end_is_refused_at_its_line(line):
    out = refused(cli(["run", "-"], f"inb 0x61\n{line}\n"), "past the end of time")
    assert f"line {line.count(chr(10)) + 2}:" in out


def test_the_last_moment_can_be_saved_and_restored(tmp_path):
    trace = tmp_path / "late.trace"
    trace.write_text(f"#! rtc-base={LAST_RTC_BASE_TEXT}\nclock_step {MAX_VIRTUAL_NS - 1}\nmigrate\ninb 0x71\n")
    assert cli(["run", trace]).exit_code == 0
    assert cli(["save", trace, "-o", tmp_path / "late.snap"]).exit_code == 0
    assert cli(["restore", tmp_path / "late.snap"]).exit_code == 0


@pytest.mark.parametrize("base", ["1969-12-31T23:59:59", "1900-01-01T00:00:00", "2200-01-01T00:00:00"])
def test_an_rtc_base_outside_what_the_rtc_section_carries_is_refused_where_it_enters(base):
    refused(cli(["run", "--rtc-base", base, "-"], "inb 0x71\n"), "--rtc-base:", FIRST_RTC_BASE_TEXT)
    refused(cli(["run", "-"], f"#! rtc-base={base}\ninb 0x71\n"), "line 1:", LAST_RTC_BASE_TEXT)


def test_a_pause_beyond_what_the_host_clock_carries_is_refused_at_its_line():
    refused(cli(["run", "-"], f"clock_step 10\nmigrate downtime={2**63 - 1}\n"), "line 2:", "host clock")


# -- an event budget for every command -------------------------------------------------------
def test_a_command_over_its_event_budget_stops_naming_the_timer_line_and_option():
    """Channel 0 in mode 2 with a count of 2 interrupts every 1.676 us, and
    the interrupts are watched: a millisecond is 597 periods, each two
    events of the PIT's interrupt timer (the output's fall and rise)."""
    text = PIT_BUSY + "clock_step 1000000\n"
    assert cli(["run", "--max-events", 1200, "-"], text).exit_code == 0
    out = refused(cli(["run", "--max-events", 100, "-"], text),
                  "line 5:", "more than 100 timer events", "pit-irq", "--max-events")
    assert "IRQ" not in out.split("vmstate:")[-1]
    refused(cli(["check", "--max-events", 100, "-"], text + "migrate\n"), "line 5:", "--max-events")


def test_a_flipped_bit_in_the_clock_costs_no_events_while_nothing_is_watched(tmp_path, snap):
    """The PIT's reset square wave is skipped in closed form when no one
    watches its interrupt: 2^56 ns of it do not spend the budget."""
    data = bytearray(snap.read_bytes())
    header = struct.unpack_from(">I", data, 8)[0]
    at = 12 + header + bytes(data[12 + header:]).index(b"\x05timer") + 6 + 8 + 8 + 8
    data[at] ^= 1                                  # bit 56 of cpu_clock_offset
    body = bytes(data[:-4])
    flipped = tmp_path / "flipped.snap"
    flipped.write_bytes(body + struct.pack(">I", zlib.crc32(body)))
    result = cli(["restore", flipped, "-", "--max-events", 1000], "inb 0x61\nclock_step 1000000\ninb 0x61\n")
    assert result.exit_code == 0, result.output


# -- snapshot files whose header is not what vmstate writes ----------------------------------------
def _sealed(path, header: dict, stream: bytes):
    text = json.dumps(header).encode().replace(b'"@deep"', b"[" * 5000 + b"]" * 5000)
    body = snapshot.MAGIC + struct.pack(">I", len(text)) + text + stream
    path.write_bytes(body + struct.pack(">I", zlib.crc32(body)))


@pytest.mark.parametrize("change, words", [
    (lambda h: h["machine"].update(speed="fast"), ["header.machine.speed", "not a machine option"]),
    (lambda h: h["machine"].update(rtc_base=5), ["header.machine.rtc_base", "5 is not a string"]),
    (lambda h: h["machine"].update(rtc_base="garbage"), ["header.machine.rtc_base", "'garbage' is not an ISO"]),
    (lambda h: h.pop("virtual_ns"), ["header.virtual_ns", "missing"]),
    (lambda h: h.update(versions={"i8254": "two"}), ["header.versions.i8254"]),
    (lambda h: h.update(machine="@deep"), ["header", "nested deeper"]),
])
def test_a_snapshot_header_is_judged_key_by_key(change, words, snap, tmp_path):
    good = snapshot.decode(snap.read_bytes())
    header = json.loads(json.dumps(good.header))
    change(header)
    bad = tmp_path / "bad.snap"
    _sealed(bad, header, good.stream)
    for command in (["inspect", bad], ["restore", bad]):
        out = refused(cli(command), f"{bad}: offset 0xc", *words)
        assert "--rtc-base" not in out


def test_an_error_in_a_snapshots_stream_is_at_its_offset_in_the_file(snap, tmp_path):
    data = bytearray(snap.read_bytes())
    header = struct.unpack_from(">I", data, 8)[0]
    at = bytes(data).index(b"QEVM")
    assert at == 12 + header
    data[at + 7] = 9                                 # the stream's format version
    body = bytes(data[:-4])
    bad = tmp_path / "bad.snap"
    bad.write_bytes(body + struct.pack(">I", zlib.crc32(body)))
    refused(cli(["restore", bad]), f"offset {at + 4:#x} (header): stream format version")


# -- output paths ------------------------------------------------------------------------------
def test_an_unwritable_counterexample_path_is_refused_before_the_check(tmp_path):
    scenario = tmp_path / "s.trace"
    scenario.write_text(PIT_BUSY + "clock_step 1000\nmigrate\ninb 0x40\n")
    refused(cli(["check", "--counterexample", "/nonexistent/x.trace", scenario]), "--counterexample",
            "/nonexistent")
    result = cli(["check", "--counterexample", tmp_path / "c.trace", scenario])
    assert result.exit_code == 0 and "no counterexample written" in result.output
    assert not (tmp_path / "c.trace").exists()


def test_save_to_standard_output_writes_the_snapshot_there(tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text(PIT_BUSY + "clock_step 1000\n")
    done = subprocess.run([sys.executable, "-m", "vmstate", "save", str(trace), "-o", "-"], capture_output=True)
    assert done.returncode == 0
    assert snapshot.decode(done.stdout).header["virtual_ns"] == 1000
    assert b"standard output" in done.stderr and not (tmp_path / "-").exists()


def test_a_replaced_snapshot_keeps_its_mode_and_a_new_one_takes_the_umask(tmp_path):
    target = tmp_path / "s.snap"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomically(target, b"new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_bytes() == b"new"
    fresh = tmp_path / "fresh.snap"
    old = os.umask(0o027)
    try:
        write_atomically(fresh, b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_a_killed_writers_partial_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f".s.snap.{dead.stdout.strip()}.k3j2{PARTIAL}"
    abandoned.write_bytes(b"half")
    live = tmp_path / f".s.snap.{os.getpid()}.a1b2{PARTIAL}"
    live.write_bytes(b"being written")
    write_atomically(tmp_path / "s.snap", b"whole")
    assert not abandoned.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "s.snap"])


# -- one set of names, and small things ---------------------------------------------------------
SCENARIO = "fixtures/scenarios/pit-between-latched-count-bytes.trace"


def test_devices_are_named_alike_in_every_option(tmp_path):
    from vmstate.core.paths import REPO

    scenario = REPO / SCENARIO
    refused(cli(["check", "--to", "bogus:1", scenario]), "no device 'bogus'")
    refused(cli(["check", "--to", "i8524:2", scenario]), "no device 'i8524'")
    refused(cli(["check", "--from", "bogus:1", scenario]), "no device 'bogus'")
    assert cli(["save", scenario, "-o", tmp_path / "a.snap", "--versions", "pit=2"]).exit_code == 0
    header = snapshot.decode((tmp_path / "a.snap").read_bytes()).header
    assert header["versions"] == {"i8254": 2}
    result = cli(["matrix", "--device", "pit", "--json", scenario])
    assert result.exit_code == 0 and list(json.loads(result.output)["devices"]) == ["i8254"]


def test_matrix_json_and_markdown_together_is_a_usage_error():
    refused(cli(["matrix", "--json", "--markdown"]), "--json and --markdown")


def test_a_refused_check_counts_the_migration_it_refused():
    out = cli(["check", "-"], "outb 0x43 0x34\nmigrate from=mc146818rtc:3 to=mc146818rtc:2\n").output
    assert "1 migration(s), the last refused" in out and "0 migration(s)" not in out


def test_fuzz_leaves_nothing_in_the_current_folder_when_it_finds_nothing(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    env = {**os.environ, "VMSTATE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "vmstate", "fuzz", "--examples", "3", "--seed", "1"], cwd=here,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(here.iterdir()) == []


def test_a_check_imports_deepdiff_only_when_a_report_reads_a_diff():
    code = ("import sys; from vmstate.check import checker; "
            "v = checker.check(open(%r).read()); assert v.equivalent; print('deepdiff' in sys.modules)")
    from vmstate.core.paths import REPO

    done = subprocess.run([sys.executable, "-c", code % str(REPO / SCENARIO)], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
