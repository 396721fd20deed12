"""The qtest trace runner: QEMU 7.2's reply formats, byte for byte."""
import json

import re

import pytest
from click.testing import CliRunner

from vmstate.cli import main
from vmstate.core.errors import TraceError
from vmstate.machine.pc import PcMachine
from vmstate.trace.load import load_trace, parse_pragmas
from vmstate.trace.numbers import parse_number
from vmstate.trace.qtest import Runner, parse_trace

PM_ON = "outl 0xcf8 0x80000b40\noutl 0xcfc 0x601\noutl 0xcf8 0x80000b80\noutl 0xcfc 0x1\n"


def run(text: str, **options) -> list[str]:
    return list(Runner(PcMachine(**options)).run(parse_trace(text)))


def cli(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin)


def test_port_reads_are_zero_padded_lower_case_hex_of_at_least_four_digits():
    # unassigned I/O reads as all ones of the access width (unassigned_io_ops)
    assert run("inb 0x300\ninw 0x300\ninl 0x300\n") == ["OK 0x00ff", "OK 0xffff", "OK 0xffffffff"]


def test_memory_reads_are_sixteen_hex_digits():
    assert run("writel 0x100000 0xDEADBEEF\nreadq 0x100000\nreadb 0x100003\n") == [
        "OK", "OK 0x00000000deadbeef", "OK 0x00000000000000de"]


def test_writes_and_intercept_answer_ok():
    assert run("outb 0x300 1\noutw 0x300 1\noutl 0x300 1\nwriteb 0 1\nwritew 0 1\nwriteq 0 1\n"
               "irq_intercept_in ioapic\nirq_intercept_in ioapic\n") == ["OK"] * 8


def test_clock_commands_answer_the_time_in_decimal():
    assert run("clock_step 10\nclock_set 1000\nclock_set 5\nclock_step 0x10\n") == [
        "OK 10", "OK 1000", "OK 1000", "OK 1016"]


def test_unknown_commands_fail_as_qemu_does():
    assert run("frobnicate 1 2\nendianness\n") == ["FAIL Unknown command 'frobnicate'", "OK little"]


def test_intercepting_an_unknown_device_fails():
    assert run("irq_intercept_in /machine/nothing\n") == ["FAIL Unknown device"]


def test_irq_lines_come_before_the_reply_of_the_access_that_caused_them():
    out = run("irq_intercept_in ioapic\n" + PM_ON + "outw 0x602 0x1\noutw 0x600 0x1\n")
    # PM1a_STS has TMR_STS set from reset; enabling TMR_EN raises the SCI (GSI 9)
    # and clearing the status lowers it
    assert out[-4:] == ["IRQ raise 9", "OK", "IRQ lower 9", "OK"]


def test_edges_are_not_reported_before_interception():
    assert run(PM_ON + "outw 0x602 0x1\n")[-1] == "OK"
    assert "IRQ" not in " ".join(run(PM_ON + "outw 0x602 0x1\n"))


def test_comments_and_blank_lines_are_skipped_and_lines_end_at_newline_only():
    """As QEMU's qtest reads its socket: a carriage return or a form feed
    is part of the line's last word (a CRLF trace never works on QEMU: a
    command word is unknown, a number makes QEMU abort)."""
    assert run("# a comment\n\n   \ninb 0x300\n") == ["OK 0x00ff"]
    assert run("endianness\r\n") == ["FAIL Unknown command 'endianness\r'"]
    assert run("endianness\fclock_step 5\n") == ["FAIL Unknown command 'endianness\fclock_step'"]
    with pytest.raises(TraceError, match=re.escape("line 2: port '0x300\\r' is not a number")):
        parse_trace("endianness\ninb 0x300\r\n")
    with pytest.raises(TraceError, match="line 1: a NUL byte"):
        parse_trace("endianness\x00\n")


@pytest.mark.parametrize("line, message", [
    ("outb 0x40", "expected outb PORT VALUE"),
    ("inb 0x10000", "out of range"),
    ("inb 0x4g", "not a number"),
    ("inb  0x40", "single spaces"),
    ("readl", "expected readl ADDRESS"),
    ("clock_step 1 2", "expected clock_step"),
    ("clock_set", "expected clock_set NS"),
    ("outb 0x40 -1", "not a number"),
    ("read 0x0 4", "does not model"),
    ("migrate versions", "KEY=VALUE"),
    ("inb 09", "not a number"),
])
def test_malformed_lines_name_their_line(line, message):
    with pytest.raises(TraceError) as caught:
        parse_trace(f"# header\ninb 0x300\n{line}\n")
    assert caught.value.line == 3
    assert message in str(caught.value)
    assert str(caught.value).startswith("line 3: ")


def test_numbers_parse_as_c_strtoul_base_zero():
    assert [parse_number(w) for w in ("0x1F", "017", "0", "42")] == [31, 15, 0, 42]
    assert parse_number("-3", signed=True) == -3


def test_pragmas_set_machine_options_and_unknown_ones_are_refused():
    assert parse_pragmas("#! rtc-base=2010-06-08T01:23:00 rtc-clock=host\ninb 0x70\n") == {
        "rtc-base": ("2010-06-08T01:23:00", 1), "rtc-clock": ("host", 1)}
    assert load_trace("#! rtc-clock=host\ninb 0x70\n", rtc_base="2010-06-08")[1] == {
        "rtc_base": "2010-06-08", "rtc_clock": "host"}
    with pytest.raises(TraceError, match="line 1: unknown pragma"):
        parse_pragmas("#! speed=fast\n")
    with pytest.raises(TraceError, match="line 2: rtc-clock: .bogus. is not one of vm, host"):
        load_trace("# a comment\n#! rtc-clock=bogus\ninb 0x70\n")


def test_migrate_continues_on_a_copy_with_the_same_observations():
    text = PM_ON + "clock_step 1000000\ninl 0x608\nmigrate\nclock_step 1000000\ninl 0x608\n"
    runner = Runner(PcMachine())
    first = runner.machine
    out = list(runner.run(parse_trace(text)))
    assert runner.machine is not first
    # 2 ms at 3,579,545 Hz = 7159 ticks = 0x1bf7
    assert out[-1] == "OK 0x1bf7"
    straight = run(text.replace("migrate\n", ""))
    assert out[6] == "OK" and out[:6] + out[7:] == straight


def test_cli_run_reads_standard_input_and_prints_replies():
    result = cli(["run", "-"], "inb 0x300\nclock_step 5\n")
    assert result.exit_code == 0
    assert result.output == "OK 0x00ff\nOK 5\n"


def test_cli_run_stops_with_a_line_numbered_error_and_nonzero_exit():
    result = cli(["run", "-"], "inb 0x300\nbogus_width 0x40 1 2\noutb 0x40\n")
    assert result.exit_code == 2
    assert "line 3" in result.output
    assert "OK 0x00ff" not in result.output


def test_cli_run_json_gives_every_reply_and_the_observation_record():
    """Writes and FAIL replies are in it too: the JSON says all the text says."""
    result = cli(["run", "--json", "-"], "inb 0x300\noutb 0x80 1\nbogus\nclock_step 7\n")
    out = json.loads(result.output)
    assert out["replies"] == [
        {"line": 1, "command": "inb 0x300", "reply": ["OK 0x00ff"]},
        {"line": 2, "command": "outb 0x80 1", "reply": ["OK"]},
        {"line": 3, "command": "bogus", "reply": ["FAIL Unknown command 'bogus'"]},
        {"line": 4, "command": "clock_step 7", "reply": ["OK 7"]}]
    assert out["events"] == [
        {"kind": "read", "op": 1, "time": 0, "space": "io", "addr": 0x300, "size": 1, "value": 0xFF},
        {"kind": "clock", "op": 4, "time": 7}]


def test_cli_rejects_a_bad_rtc_base():
    result = cli(["run", "--rtc-base", "yesterday", "-"], "inb 0x300\n")
    assert result.exit_code == 2 and "ISO-8601" in result.output
