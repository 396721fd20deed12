"""Whole streams as QEMU 7.2 writes them (fixtures/streams/*.mig.xz, of
pc-i440fx-7.2, 2.11 and 1.7 and pc-q35-7.2, from the qtest build and from
Debian's TCG binary): read in one pass, every section by its schema or its
description, written back identically, shown in units, compared, restored;
and hand-made streams that break each rule of the RAM records, the
configuration section and the JSON description."""
from __future__ import annotations

import io
import json
import lzma
import struct
import tracemalloc

import pytest
from click.testing import CliRunner

from vmstate.cli import main
from vmstate.core.errors import MalformedStream, StreamError, TruncatedStream
from vmstate.core.paths import FIXTURES
from vmstate.machine import qemu_streams
from vmstate.machine.pc import PcMachine
from vmstate.trace.load import load_trace
from vmstate.trace.qtest import Runner
from vmstate.wire import qemu_stream

STREAMS = sorted((FIXTURES / "streams").glob("*.mig.xz"))
TIMERS = ("timer", "hpet", "mc146818rtc", "i8254")


def stream_of(name: str) -> bytes:
    return lzma.decompress((FIXTURES / "streams" / f"{name}.mig.xz").read_bytes())


def machine_after(name: str) -> PcMachine:
    """Our machine after the trace QEMU ran before writing the stream."""
    commands, options = load_trace((FIXTURES / "streams" / f"{name}.trace").read_text())
    runner = Runner(PcMachine(**options))
    for command in commands:
        runner.execute(command)
    return runner.machine


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    where = tmp_path_factory.mktemp("real")
    for path in STREAMS:
        (where / path.name[:-3]).write_bytes(lzma.decompress(path.read_bytes()))
    return where


# -- reading whole streams ------------------------------------------------------------------------
@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name[:-7])
def test_every_real_stream_reads_whole_and_its_timers_are_found(path):
    name = path.name[:-7]
    real = qemu_streams.read(io.BytesIO(stream_of(name)), clock=2_510_000_000 if name.startswith("qtest") else None,
                             rtc_base="2010-06-08T01:23:00")
    machine = name.split("-", 1)[1]
    assert real.machine_type == (None if machine == "pc-i440fx-1.7-S" else machine.removesuffix("-S").removesuffix(
        "-hpetfw"))
    assert real.footers is (machine != "pc-i440fx-1.7-S")        # old machine types send none
    names = {p.idstr for p in real.sections()}
    assert set(TIMERS) <= names
    pm = "0000:00:1f.0/ICH9LPC" if "q35" in name else "0000:00:01.3/piix4_pm"
    assert pm in names
    assert all(p.how in ("schema", "description") for p in real.sections())
    assert real.ram.blocks["pc.ram"] == 8 << 20                  # -m 8
    # a complete migration of a stopped or qtest guest sends every page once
    assert real.ram.pages + real.ram.zero_pages == sum(real.ram.blocks.values()) // 4096
    assert real.parts[-1].kind == "eof" and real.description is not None


def test_a_stream_from_a_pipe_reads_in_one_pass_without_its_description():
    """A pipe cannot seek to the description at the end: the timers still
    read by their schemas, every other device is carried to its footer."""
    data = stream_of("qtest-pc-i440fx-7.2")

    class Pipe(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)

        def readinto(self, buffer):
            chunk = self.inner.read(min(len(buffer), 4096))
            buffer[:len(chunk)] = chunk
            return len(chunk)

        def seekable(self):
            return False

        def readable(self):
            return True

    piped = qemu_streams.read(io.BufferedReader(Pipe()), clock=2_510_000_000)
    whole = qemu_streams.read(io.BytesIO(data), clock=2_510_000_000)
    assert [(p.idstr, p.offset) for p in piped.sections()] == [(p.idstr, p.offset) for p in whole.sections()]
    assert {p.how for p in piped.sections() if p.idstr not in qemu_streams.TIMER_SECTIONS} == {"opaque"}
    assert [p.state for p in piped.sections() if p.how == "schema"] == \
        [p.state for p in whole.sections() if p.how == "schema"]


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name[:-7])
def test_inspect_check_writes_every_decoded_section_back_identically(path, files):
    name = path.name[:-3]
    result = cli("inspect", files / name, "--check", "--json", "--clock", 2_510_000_000)
    assert result.exit_code == 0, result.output
    checked = json.loads(result.output)["check"]
    assert checked and all(c["identical"] for c in checked)


def test_qemus_timer_sections_hold_what_our_model_holds_after_the_same_trace():
    """QEMU's own bytes, decoded, against our machine run on the trace QEMU
    ran: every timer device's state is the same (the clock section apart:
    under qtest it is not the virtual clock)."""
    ours = machine_after("qtest-pc-i440fx-7.2")
    real = qemu_streams.read(io.BytesIO(stream_of("qtest-pc-i440fx-7.2")), clock=ours.clock.now, **ours.options)
    decoded = {p.idstr: p.state for p in real.sections() if p.how == "schema" and p.idstr != "timer"}
    assert len(decoded) == 6
    from schemas import by_idstr

    for idstr, state in decoded.items():
        assert state == ours.devices[by_idstr(idstr).device].get_state(), idstr


def test_the_units_spell_out_what_the_trace_left_half_done(files):
    result = cli("inspect", files / "qtest-pc-i440fx-7.2.mig", "--json", "--clock", 2_510_000_000)
    sections = {s["section"]: s for s in json.loads(result.output)["sections"]}
    pit, hpet = sections["i8254"]["units"], sections["hpet"]["units"]
    assert pit["channels[2].count_latched"] == "latched count 0x1234, MSB to read"     # outb 0x43 0x80; inb 0x42
    assert pit["channels[0].write_state"] == "half-written reload: LSB 0x9c written, MSB to come"
    assert pit["channels[1].status_latched"].startswith("status 0x06 latched")        # read-back, mode 3, OUT low
    # timer 0: comparator 0x100000, counter 0xf4240 at 2.51 s: 48,576 ticks of 10 ns to go
    assert hpet["timer[0].qemu_timer"].startswith("fires in 486 us (at 2510485760 ns)")
    assert sections["mc146818rtc"]["units"]["next_alarm_time"].startswith("fires in 2.49 s")   # 01:23:05
    assert sections["0000:00:01.3/piix4_pm"]["fields"]["ar.pm1.evt.sts"] == 1                # TMR_STS
    assert sections["i8254"]["offsets"]["channels[2].latched_count"] > sections["i8254"]["offset"]


def test_the_q35_pm_timer_is_read_from_the_lpc_section(files):
    result = cli("inspect", files / "qtest-pc-q35-7.2.mig", "--json", "--clock", 2_510_000_000)
    lpc = next(s for s in json.loads(result.output)["sections"] if s["section"] == "0000:00:1f.0/ICH9LPC")
    assert lpc["read_by"] == "description"
    assert lpc["fields"]["pm.acpi_regs.tmr.overflow_time"] == 0x800000
    assert "bit 23 toggles at 0x800000 ticks" in lpc["units"]["pm.acpi_regs.tmr.overflow_time"]


def test_a_qtest_stream_judged_at_its_timer_section_says_to_give_the_clock(files):
    out = cli("inspect", files / "qtest-pc-i440fx-7.2.mig", "--json")
    hpet = next(s for s in json.loads(out.output)["sections"] if s["section"] == "hpet")
    assert hpet["read_by"] == "description" and "vmstate's --clock" in hpet["note"]


# -- restore, diff, save --------------------------------------------------------------------------
def test_a_real_stream_restores_and_goes_on_as_our_machine_does(files, tmp_path):
    more = tmp_path / "more.trace"
    more.write_text("clock_step 500000\nreadl 0xfed00020\ninb 0x42\ninb 0x42\ninl 0x608\nclock_step\n")
    result = cli("restore", files / "qtest-pc-i440fx-7.2.mig", more, "--clock", 2_510_000_000,
                 "--rtc-base", "2010-06-08T01:23:00")
    assert result.exit_code == 0, result.output
    ours = machine_after("qtest-pc-i440fx-7.2")
    expected = list(Runner(ours).run(load_trace(more.read_text())[0]))
    assert result.output.splitlines() == expected


def test_diff_names_the_fields_and_pages_that_differ(files, tmp_path):
    same = cli("diff", files / "qtest-pc-i440fx-7.2.mig", files / "qtest-pc-i440fx-7.2.mig", "--json")
    assert same.exit_code == 0 and json.loads(same.output)["identical"]
    data = bytearray((files / "qtest-pc-i440fx-7.2.mig").read_bytes())
    real = qemu_streams.read(bytes(data), clock=2_510_000_000)
    pit = real.section("i8254")
    data[pit.payload[0] + 4 + 3] ^= 0x01          # channels[0].count's low byte
    changed = tmp_path / "changed.mig"
    changed.write_bytes(bytes(data))
    result = cli("diff", files / "qtest-pc-i440fx-7.2.mig", changed, "--json", "--clock", 2_510_000_000)
    assert result.exit_code == 1
    out = json.loads(result.output)
    assert [(s["section"], [c["field"] for c in s["fields"]]) for s in out["sections"]] == \
        [("i8254", ["channels[0].count"])]
    assert out["ram"]["differ"] == 0
    other = cli("diff", files / "tcg-pc-i440fx-7.2-hpetfw.mig", files / "tcg-pc-i440fx-2.11-hpetfw.mig", "--json")
    ram = json.loads(other.output)["ram"]
    assert other.exit_code == 1 and ram["differ"] > 0 and ram["first"]


def test_save_format_qemu_writes_the_raw_stream(tmp_path):
    trace = tmp_path / "t.trace"
    trace.write_text("outb 0x43 0x34\noutb 0x40 0x9c\nclock_step 1000\n")
    assert cli("save", trace, "-o", tmp_path / "s.mig", "--format", "qemu").exit_code == 0
    assert cli("save", trace, "-o", tmp_path / "s.snap").exit_code == 0
    raw = (tmp_path / "s.mig").read_bytes()
    assert raw.startswith(b"QEVM\x00\x00\x00\x03") and raw in (tmp_path / "s.snap").read_bytes()
    result = cli("inspect", tmp_path / "s.mig", "--json")
    units = next(s for s in json.loads(result.output)["sections"] if s["section"] == "i8254")["units"]
    assert units["channels[0].write_state"] == "half-written reload: LSB 0x9c written, MSB to come"


# -- hand-made streams: each rule of the reader ------------------------------------------------------
def _section(kind: int, section_id: int, payload: bytes, idstr: str | None = None, version: int = 4) -> bytes:
    head = struct.pack(">BI", kind, section_id)
    if idstr is not None:
        head += bytes([len(idstr)]) + idstr.encode() + struct.pack(">II", 0, version)
    return head + payload + b"\x7e" + struct.pack(">I", section_id)


def _ram(block: bytes = b"pc.ram", length: int = 4 * 4096, pages: bytes = b"", total: int | None = None,
         configuration: bytes = b"") -> bytes:
    name = bytes([len(block)]) + block
    size = struct.pack(">Q", (length if total is None else total) | 0x04) + name + struct.pack(">Q", length)
    eos = struct.pack(">Q", 0x10)
    machine = b"pc-i440fx-7.2"
    return (b"QEVM\x00\x00\x00\x03" + b"\x07" + struct.pack(">I", len(machine)) + machine + configuration
            + _section(0x01, 1, size + eos, "ram") + _section(0x02, 1, pages + eos) + _section(0x03, 1, eos)
            + b"\x00")


def _page(flags: int, address: int = 0, block: bytes | None = b"pc.ram", body: bytes = b"\x00") -> bytes:
    return struct.pack(">Q", address | flags) + (bytes([len(block)]) + block if block is not None else b"") + body


def test_a_hand_made_ram_stream_reads_with_its_pages_handed_over():
    seen = []
    pages = _page(0x08, 0, body=bytes(range(256)) * 16) + _page(0x02 | 0x20, 4096, None, b"\x00")
    real = qemu_stream.read(_ram(pages=pages), on_page=lambda b, o, d, f: seen.append((b, o, d and d[:2], f)))
    assert seen == [("pc.ram", 0, b"\x00\x01", None), ("pc.ram", 4096, None, 0)]
    assert (real.ram.pages, real.ram.zero_pages, real.ram.blocks) == (1, 1, {"pc.ram": 4 * 4096})


RAM_START = 8 + 5 + len(b"pc-i440fx-7.2")       # the START section's type byte
RAM_PAGES = RAM_START + 5 + 1 + 3 + 8 + 8 + 1 + 6 + 8 + 8 + 5 + 5    # the first page record


@pytest.mark.parametrize("pages, message", [
    (_page(0x40), "XBZRLE"),
    (_page(0x100), "COMPRESS_PAGE"),
    (_page(0x80), "HOOK"),
    (_page(0x02, 4 * 4096), "outside block 'pc.ram'"),
    (_page(0x02, block=b"vga.vram"), "does not list"),
    (_page(0x02 | 0x20, block=None), "no block came before"),
    (_page(0x02 | 0x08), "no combination"),
])
def test_ram_records_qemu_would_not_write_are_refused_at_the_record(pages, message):
    with pytest.raises(MalformedStream, match=message) as err:
        qemu_stream.read(_ram(pages=pages))
    assert (err.value.offset, err.value.path) == (RAM_PAGES, "ram")


def test_block_lengths_that_contradict_the_memory_size_are_refused():
    with pytest.raises(MalformedStream, match="more than the 0x1000 the memory-size record leaves") as err:
        qemu_stream.read(_ram(total=4096))
    assert err.value.path == "ram" and err.value.offset == RAM_START + 5 + 1 + 3 + 8
    with pytest.raises(MalformedStream, match="not whole pages"):
        qemu_stream.read(_ram(length=4096 + 1, total=2 * 4096))


def test_an_unknown_configuration_subsection_is_refused_by_name():
    sub = b"\x05" + bytes([len(b"configuration/bogus")]) + b"configuration/bogus" + struct.pack(">I", 1)
    with pytest.raises(MalformedStream, match="'configuration/bogus'") as err:
        qemu_stream.read(_ram(configuration=sub))
    assert err.value.path == "configuration"
    caps = (b"\x05" + bytes([len(b"configuration/capabilities")]) + b"configuration/capabilities"
            + struct.pack(">II", 1, 1) + b"\x0bx-ignore-sh")
    assert qemu_stream.read(_ram(configuration=caps)).configuration == {"capabilities": ["x-ignore-sh"]}


def _with_description(devices: list, payload: bytes, idstr: str = "mydev") -> bytes:
    body = _ram()[:-1] + _section(0x04, 7, payload, idstr, 1) + b"\x00"
    text = json.dumps({"page_size": 4096, "devices": devices}).encode()
    return body + b"\x06" + struct.pack(">I", len(text)) + text


def test_a_device_is_read_by_the_streams_description_and_a_lie_in_it_is_found():
    entry = {"name": "mydev", "instance_id": 0, "vmsd_name": "mydev", "version": 1, "fields": [
        {"name": "a", "type": "uint16", "size": 2}, {"name": "b", "type": "int32", "size": 4, "array_len": 2},
        {"name": "s", "type": "struct", "size": 1, "struct": {"vmsd_name": "in", "version": 1, "fields": [
            {"name": "c", "type": "uint8", "size": 1}]}}]}
    payload = b"\x12\x34" + struct.pack(">ii", -1, 5) + b"\x07"
    part = qemu_stream.read(_with_description([entry], payload)).section("mydev")
    assert part.how == "description"
    assert [(v.path, v.value) for v in part.values] == [("a", 0x1234), ("b[0]", -1), ("b[1]", 5), ("s.c", 7)]
    entry["fields"][2]["size"] = 2                                        # the struct's size lies
    with pytest.raises(MalformedStream, match="struct 's' is 1 bytes by its fields, 2 by its size") as err:
        qemu_stream.read(_with_description([entry], payload))
    assert err.value.path == "mydev.s"
    entry["fields"][2]["size"] = 1
    entry["fields"][0]["size"] = 3                                        # then the footer is not where it says
    with pytest.raises(StreamError, match="mydev") as err:
        qemu_stream.read(_with_description([entry], payload))
    assert err.value.offset is not None


def test_a_description_nested_deeper_than_any_device_is_refused():
    deep: dict = {"vmsd_name": "in", "version": 1, "fields": [{"name": "c", "type": "uint8", "size": 1}]}
    for _ in range(40):
        deep = {"vmsd_name": "in", "version": 1, "fields": [{"name": "s", "type": "struct", "size": 1,
                                                              "struct": deep}]}
    entry = {"name": "mydev", "instance_id": 0, **deep}
    with pytest.raises(MalformedStream, match="nested deeper"):
        qemu_stream.read(_with_description([entry], b"\x07"))


def test_every_cut_of_a_real_stream_is_one_typed_error_with_an_offset_and_a_place():
    data = stream_of("tcg-pc-i440fx-7.2-hpetfw")
    for cut in list(range(0, 400, 7)) + list(range(len(data) - 120_000, len(data), 997)):
        with pytest.raises(StreamError) as err:
            qemu_stream.read(io.BytesIO(data[:cut]))
        assert err.value.offset is not None and err.value.path, (cut, err.value)


def test_a_stream_much_larger_than_memory_is_read_in_a_window(tmp_path):
    """64 MiB of RAM pages read from a file: the reader holds a window, not
    the stream."""
    pages = 16384
    path = tmp_path / "big.mig"
    with open(path, "wb") as out:
        head = _ram(length=pages * 4096)
        out.write(head[:RAM_PAGES])
        out.write(_page(0x08, 0, body=b"\xaa" * 4096))
        for i in range(1, pages):
            out.write(struct.pack(">Q", i * 4096 | 0x08 | 0x20) + b"\xab" * 4096)
        out.write(head[RAM_PAGES:])
    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            real = qemu_stream.read(handle)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert real.ram.pages == pages
    assert peak < 8 << 20, peak


def test_a_stream_that_is_not_one_is_refused_at_its_magic(files, tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"NOPE" + bytes(20))
    result = cli("inspect", bad)
    assert result.exit_code == 2 and "offset 0x0 (header): magic" in result.output
    with pytest.raises(TruncatedStream):
        qemu_stream.read(b"QEVM")
