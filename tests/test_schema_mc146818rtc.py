"""The ``mc146818rtc`` section (v1, v2, v3, and its subsection): exact round
trips, bytes worked out by hand, QEMU 7.2's own bytes, the version rules and
QEMU's conversions on load, every validation rule broken on its own, and
machines migrated mid-operation.

The layout, from QEMU 7.2's VMSD (hw/rtc/mc146818rtc.c, all big-endian):

      0  cmos_data           128 bytes
    128  cmos_index          u8
    129  unused              28 (v1/v2: current_tm, 7 x int32)
    157  periodic_timer      timer: be64 deadline, -1 when idle
    165  next_periodic_time  int64
    173  unused              24 (v1/v2: next_second_time, second_timer, second_timer2)
    197  -- end of v1 --
    197  irq_coalesced       u32  (v2)
    201  period              u32  (v2)
    205  -- end of v2 --
    205  base_rtc            u64  (v3)
    213  last_update         u64  (v3)
    221  offset              int64 (v3)
    229  update_timer        timer (v3)
    237  next_alarm_time     u64  (v3)
    245  -- end of v3 --
         then, when the count is not 0:
         05 25 "mc146818rtc/irq_reinject_on_ack_count" be32 1, be16 count (45 bytes)
"""
from __future__ import annotations

import copy
import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.mc146818 import RtcState
from realstream import STREAMS, described, real_stream, section
import sectionbytes
from schemas import SECTIONS
from schemas.mc146818rtc import IRQ_REINJECT_ON_ACK_COUNT, MC146818RTC
from vmstate.machine import migration
from vmstate.wire.section import load_section
from vmstate.wire.table import Field, to_container
from vmstate.core.errors import (InvalidField, MalformedStream, TruncatedStream, VersionTooNew, 
                            VersionTooOld)
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Observations
from vmstate.trace.qtest import Runner, parse_trace

NS = 1_000_000_000
RTC_HZ = 32768
SECONDS, SEC_ALARM, MINUTES, MIN_ALARM, HOURS, HOUR_ALARM = range(6)
REG_A, REG_B, REG_C, REG_D = 10, 11, 12, 13
IRQ8 = 8
SIZE = {1: 197, 2: 205, 3: 245}
AT = {"cmos_data": 0, "cmos_index": 128, "periodic_timer": 157, "next_periodic_time": 165,
      "irq_coalesced": 197, "period": 201, "base_rtc": 205, "last_update": 213, "offset": 221,
      "update_timer": 229, "next_alarm_time": 237}
FMT = {"cmos_index": ">B", "periodic_timer": ">q", "next_periodic_time": ">q", "irq_coalesced": ">I",
       "period": ">I", "base_rtc": ">Q", "last_update": ">Q", "offset": ">q", "update_timer": ">q",
       "next_alarm_time": ">Q"}
SUB_NAME = b"mc146818rtc/irq_reinject_on_ack_count"
SUB_SIZE = 1 + 1 + 37 + 4 + 2
SUB_COUNT_AT = 1 + 1 + 37 + 4           # the count, from the subsection's first byte
# 2010-06-08 01:23:00 UTC in epoch seconds: 1970-2009 are 40 years with 10
# leap days (14610 days), then 31+28+31+30+31 days to June and 7 whole days
# of it (158): 14768 days, plus 1 h 23 min.
BASE_2010 = 14768 * 86400 + 3600 + 23 * 60


# -- helpers ---------------------------------------------------------------------------
pack = sectionbytes.pack


def payload_at(data: bytes, idstr: str = "mc146818rtc") -> int:
    return sectionbytes.payload_at(data, idstr)


states = sectionbytes.states


def rd(m, index):
    m.io_write(0x70, 1, index)
    return m.io_read(0x71, 1)


def wr(m, index, value):
    m.io_write(0x70, 1, index)
    m.io_write(0x71, 1, value)


def quiet(m: PcMachine) -> PcMachine:
    """PIT channel 0 to mode 0 without a count: it stops firing every
    27.5 ms, so that clock steps only meet the RTC's timers."""
    m.io_write(0x43, 1, 0x30)
    return m


def machine_2010() -> PcMachine:
    return quiet(PcMachine(rtc_base="2010-06-08T01:23:00"))


def busy() -> PcMachine:
    """At 2010-06-08 01:23:02.3: an alarm set for 01:23:05 (AIE), periodic
    interrupts at 8 Hz (RS 13, PIE), register C unread."""
    m = machine_2010()
    wr(m, SEC_ALARM, 0x05)
    wr(m, MIN_ALARM, 0x23)
    wr(m, HOUR_ALARM, 0x01)
    wr(m, REG_A, 0x2D)
    wr(m, REG_B, 0x62)
    m.clock_step(2_300_000_000)
    return m


def elsewhere() -> PcMachine:
    """A destination in a state of its own (another date, 2 Hz periodic and
    update interrupts, a reinjection count of 7, a latched PCI address), to
    see that a refused stream leaves it as it was and what a load keeps."""
    m = quiet(PcMachine(rtc_base="1999-12-31T23:59:58"))
    m.rtc.set_state(dataclasses.replace(m.rtc.get_state(), irq_reinject_on_ack_count=7))
    wr(m, SEC_ALARM, 0x30)
    wr(m, REG_A, 0x2F)
    wr(m, REG_B, 0x72)
    m.clock_step(3_300_000_000)
    m.io_write(0xCF8, 4, 0x80000B40)
    return m


def _holds(rule, value) -> bool:
    if isinstance(rule, (range, frozenset)):
        return value in rule
    return bool(rule(value))


def broken(state: RtcState, version: int = 3) -> list[str]:
    """Every rule the state breaks, as the field paths the errors name."""
    out = [e.name for e in MC146818RTC.present(version)
           if isinstance(e, Field) and e.valid is not None and not _holds(e.valid, getattr(state, e.path))]
    aux = {"update_timer_carried": version >= 3}
    out += [c.field for c in MC146818RTC.checks if not c.holds(state, aux)]
    if state.irq_reinject_on_ack_count:
        out += ["/irq_reinject_on_ack_count." + e.name for e in IRQ_REINJECT_ON_ACK_COUNT.fields
                if not _holds(e.valid, getattr(state, e.path))]
    return out


def periodic_deadline_from(now: int, period: int) -> int:
    """periodic_timer_update(s, now, period, false) of QEMU 7.2: the next
    tick is one period on the 32 kHz grid counted from ``now`` (truncated to
    a cycle), converted back to ns, truncated, plus 1."""
    cur = now * RTC_HZ // NS
    return (cur + period) * NS // RTC_HZ + 1


# -- sizes, order and QEMU's JSON ---------------------------------------------------------
def test_sizes_agree_with_qemu():
    assert {v: MC146818RTC.size(v) for v in (1, 2, 3)} == SIZE
    assert IRQ_REINJECT_ON_ACK_COUNT.size(1) == 2
    assert len(SUB_NAME) == 37
    for name in ("qemu-7.2-pc-pit-channel2.bin", "qemu-7.2-pc-hpet-armed.bin"):
        version, payload = section(real_stream(name), "mc146818rtc")
        assert (version, len(payload)) == (3, 245)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_fresh_machines_section_has_its_size_then_the_footer(version):
    data = migration.save(PcMachine(), versions={"mc146818rtc": version})
    at = payload_at(data)
    assert struct.unpack_from(">I", data, at - 4) == (version,)
    assert data[at + SIZE[version]] == 0x7E


def test_the_rtc_follows_the_hpet_as_in_qemus_stream():
    names = [s.idstr for s in SECTIONS]
    assert names.index("mc146818rtc") == names.index("hpet") + 1
    assert next(s for s in SECTIONS if s.idstr == "mc146818rtc").description is MC146818RTC


def after_trace(name: str) -> PcMachine:
    """Our machine after the fixture trace's lines before its ``migrate``."""
    commands = parse_trace((STREAMS / name).read_text())
    m = PcMachine()
    list(Runner(m).run(commands[:[c.name for c in commands].index("migrate")]))
    return m


FIXTURES = [("qemu-7.2-pc-pit-channel2", 5_000_000), ("qemu-7.2-pc-hpet-armed", 400_003)]


@pytest.mark.parametrize("fixture", [f for f, _ in FIXTURES])
def test_json_description_is_qemus(fixture):
    qemu = described(real_stream(f"{fixture}.bin"), "mc146818rtc")
    m = after_trace(f"{fixture}.trace")
    assert MC146818RTC.json(3, m.rtc.get_state()) == {k: v for k, v in qemu.items()
                                                       if k not in ("name", "instance_id")}
    assert described(migration.save(m), "mc146818rtc") == qemu


def test_json_names_the_subsection_when_it_is_written():
    """QEMU's vmstate_subsection_save describes each written subsection as
    a nested {vmsd_name, version, fields} under "subsections"."""
    state = dataclasses.replace(PcMachine().rtc.get_state(), irq_reinject_on_ack_count=3)
    assert MC146818RTC.json(3, state)["subsections"] == [{
        "vmsd_name": "mc146818rtc/irq_reinject_on_ack_count", "version": 1,
        "fields": [{"name": "irq_reinject_on_ack_count", "type": "uint16", "size": 2}]}]
    assert "subsections" not in MC146818RTC.json(3, PcMachine().rtc.get_state())


def test_older_versions_describe_only_their_fields():
    names = {v: [f["name"] for f in MC146818RTC.json(v)["fields"]] for v in (1, 2, 3)}
    head = ["cmos_data", "cmos_index", "unused[0]", "periodic_timer", "next_periodic_time", "unused[1]"]
    assert names[1] == head
    assert names[2] == head + ["irq_coalesced", "period"]
    assert names[3] == names[2] + ["base_rtc", "last_update", "offset", "update_timer", "next_alarm_time"]


# -- golden bytes, worked out by hand ------------------------------------------------------
def handmade() -> RtcState:
    """A running RTC at virtual time 50.05 s.  The guest set the clock to
    2010-06-08 01:23:00 at 5 s with a quarter-second phase, so the time is
    01:23:45.3 (a Tuesday: day of week 3).  The next update is 0.7 s on
    (50.75 s); the alarm at 01:23:50 five updates on (54.75 s).  Periodic
    interrupts at 8 Hz (RS 13: 4096 cycles, 125 ms) on the grid from 0: the
    next at 50.125 s + 1 ns.  Register C holds IRQF and PF; three coalesced
    ticks and seven reinjections came with an earlier slew-policy stream.
    Register B: PIE | AIE | 24-hour.  Index 0x0c selected."""
    cmos = bytearray(128)
    cmos[0:14] = bytes([0x45, 0x50, 0x23, 0x23, 0x01, 0x01, 0x03, 0x08, 0x06, 0x10, 0x2D, 0x62, 0xC0, 0x80])
    for index, value in {0x14: 0x06, 0x15: 0x80, 0x16: 0x02, 0x18: 0x1C, 0x31: 0x1C, 0x32: 0x20,
                         0x38: 0x30, 0x3D: 0x12, 0x7F: 0xA5}.items():
        cmos[index] = value
    return RtcState(cmos_data=bytes(cmos), cmos_index=0x0C, periodic_timer=50_125_000_001,
                    next_periodic_time=50_125_000_001, irq_coalesced=3, period=4096,
                    base_rtc=BASE_2010, last_update=5 * NS, offset=NS // 4, update_timer=50_750_000_000,
                    next_alarm_time=54_750_000_000, irq_reinject_on_ack_count=7)


HANDMADE_V1 = bytes.fromhex(
    # cmos_data: 01:23:45, alarm 01:23:50, Tuesday 08.06.10, A 0x2d, B 0x62, C 0xc0, D 0x80
    "45 50 23 23 01 01 03 08 06 10 2d 62 c0 80 00 00"
    # equipment 0x06, base memory 0x0280 KiB, extended 0x1c00 KiB
    "00 00 00 00 06 80 02 00 1c 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    # extended memory again at 0x30, century 0x20 at 0x32, boot order at 0x38 and 0x3d
    "00 1c 20 00 00 00 00 00 30 00 00 00 00 12 00 00"
    + "00" * 16 * 3
    + "00" * 15 + "a5"                                   # the last CMOS byte
    + "0c"                                               # cmos_index
    + "00" * 28                                          # current_tm's place
    + "0000000babaecd41"                                 # periodic_timer: 50,125,000,001
    + "0000000babaecd41"                                 # next_periodic_time
    + "00" * 24)                                         # the old second timers' place
HANDMADE_V2 = HANDMADE_V1 + bytes.fromhex(
    "00000003"                                           # irq_coalesced
    "00001000")                                          # period: 4096 cycles
HANDMADE_V3 = HANDMADE_V2 + bytes.fromhex(
    "000000004c0d9b74"                                   # base_rtc: 1275960180
    "000000012a05f200"                                   # last_update: 5,000,000,000
    "000000000ee6b280"                                   # offset: 250,000,000
    "0000000bd0ef8b80"                                   # update_timer: 50,750,000,000
    "0000000cbf5ab380")                                  # next_alarm_time: 54,750,000,000
HANDMADE_SUB = bytes([0x05, 0x25]) + b"mc146818rtc/irq_reinject_on_ack_count" + bytes.fromhex("00000001" "0007")
HANDMADE = {1: HANDMADE_V1, 2: HANDMADE_V2, 3: HANDMADE_V3}


def test_base_2010_is_the_calendars():
    """Cross-check of the hand count above against the standard library."""
    import calendar
    assert BASE_2010 == calendar.timegm((2010, 6, 8, 1, 23, 0)) == 0x4C0D9B74


def test_handmade_state_is_valid():
    assert broken(handmade()) == []


@pytest.mark.parametrize("version", [1, 2, 3])
def test_golden_bytes_by_hand(version):
    fields = HANDMADE[version]
    assert len(fields) == SIZE[version] and len(HANDMADE_SUB) == SUB_SIZE
    state = handmade()
    assert pack(MC146818RTC, version, state) == fields + HANDMADE_SUB
    assert MC146818RTC.construct(version).build(to_container(MC146818RTC, version, state)) == fields


def test_golden_v3_loads_back_exactly():
    into = copy.deepcopy(elsewhere().rtc.get_state())
    data = HANDMADE_V3 + HANDMADE_SUB
    assert load_section(MC146818RTC, 3, data, 0, into, 50_050_000_000, "mc146818rtc") == len(data)
    assert into == handmade()


@pytest.mark.parametrize("version", [1, 2])
def test_golden_old_versions_load_their_fields_and_keep_the_rest(version):
    """A v1/v2 stream fills the fields it carries; the time base and the
    alarm time (and for v1 the coalesced count and period) stay the
    destination's until the device re-bases them, the update timer is left
    for the device to re-arm, and the state is marked for that re-basing."""
    dest = copy.deepcopy(elsewhere().rtc.get_state())
    into = copy.deepcopy(dest)
    data = HANDMADE[version] + HANDMADE_SUB
    assert load_section(MC146818RTC, version, data, 0, into, 50_050_000_000, "mc146818rtc") == len(data)
    carried = {"cmos_data", "cmos_index", "periodic_timer", "next_periodic_time", "irq_reinject_on_ack_count"}
    if version == 2:
        carried |= {"irq_coalesced", "period"}
    expected = dataclasses.replace(dest, **{name: getattr(handmade(), name) for name in carried},
                                   update_timer=-1, time_from_cmos=True)
    assert into == expected
    assert dest.update_timer != -1 and dest.base_rtc != BASE_2010


def test_golden_fresh_rtc_by_hand():
    """A fresh pc machine at 0 with -rtc base=2000-01-01: Saturday (7)
    01.01.00, century 0x20; A 0x26 (32 kHz divider, RS 6), B 0x02 (24-hour),
    D 0x80; the pc machine's CMOS bytes; no periodic timer; the first update
    1 s on; the alarm (00:00:00, its reset bytes) a day on: 86400e9 ns."""
    expected = bytes.fromhex(
        "00 00 00 00 00 00 07 01 01 00 26 02 00 80 00 00"
        "00 00 00 00 06 80 02 00 1c 00 00 00 00 00 00 00" + "00" * 16
        + "00 1c 20 00 00 00 00 00 30 00 00 00 00 12 00 00" + "00" * 64
        + "00" + "00" * 28 + "ffffffffffffffff" + "0000000000000000" + "00" * 24
        + "00000000" "00000000"
        + "00000000386d4380" "0000000000000000" "0000000000000000" "000000003b9aca00" "00004e94914f0000")
    data = migration.save(PcMachine())
    at = payload_at(data)
    assert data[at:at + 246] == expected + b"\x7e"


# -- QEMU 7.2's own streams -----------------------------------------------------------------
@pytest.mark.parametrize("fixture, now", FIXTURES)
def test_qemus_rtc_payload_is_our_machines_state(fixture, now):
    version, payload = section(real_stream(f"{fixture}.bin"), "mc146818rtc")
    ours = after_trace(f"{fixture}.trace").rtc.get_state()
    assert pack(MC146818RTC, 3, ours) == payload
    into = copy.deepcopy(elsewhere().rtc.get_state())
    assert load_section(MC146818RTC, version, payload, 0, into, now, "mc146818rtc") == 245
    assert into == dataclasses.replace(ours, irq_reinject_on_ack_count=7)   # no subsection: kept


def test_qemus_armed_rtc_decoded_by_hand():
    """The HPET fixture's RTC: A 0x23 (RS 3: 8192 Hz, 4 cycles), B 0x42
    (PIE), C 0xc0 (IRQF, PF) unread, index 0x0b (B was written last).
    Armed at 0, the periodic timer has fired at 1, 2 and 3 x 4 cycles; the
    next is cycle 16: 16e9 / 32768 = 488281.25 ns, truncated, + 1.  -rtc
    base=2000-01-01 (946684800 s) at 0: the first update at 1 s, the alarm
    (reset bytes 00:00:00) a day on."""
    _, payload = section(real_stream("qemu-7.2-pc-hpet-armed.bin"), "mc146818rtc")
    into = copy.deepcopy(PcMachine().rtc.get_state())
    load_section(MC146818RTC, 3, payload, 0, into, 400_003, "mc146818rtc")
    assert into.cmos_data[REG_A:REG_D + 1] == bytes([0x23, 0x42, 0xC0, 0x80])
    assert into.periodic_timer == into.next_periodic_time == 488_282
    assert (into.period, into.irq_coalesced, into.cmos_index) == (4, 0, 0x0B)
    assert (into.base_rtc, into.last_update, into.offset) == (946_684_800, 0, 0)
    assert (into.update_timer, into.next_alarm_time) == (NS, 86_400 * NS)


def test_qemus_rtc_section_loads_into_our_machine_and_answers_as_qemus_did():
    """QEMU's section loaded into a machine at the stream's time: register C
    reads what the source held (0xc0), the clock 00:00:00.  The periodic
    timer is re-phased by rtc_post_load (now 400003 < 488282): from cycle
    400003 * 32768 // 1e9 = 13, four cycles on: 17e9 / 32768 = 518798.8 ns,
    truncated, + 1, later than the source's 488282."""
    _, payload = section(real_stream("qemu-7.2-pc-hpet-armed.bin"), "mc146818rtc")
    dest = quiet(PcMachine())
    into = copy.deepcopy(dest.rtc.get_state())
    load_section(MC146818RTC, 3, payload, 0, into, 400_003, "mc146818rtc")
    dest.clock.load(400_003)
    dest.rtc.set_state(into)
    assert dest.rtc.periodic_timer.expire == periodic_deadline_from(400_003, 4) == 518_799
    assert dest.rtc.update_timer.expire == NS
    assert [rd(dest, i) for i in (SECONDS, MINUTES, HOURS, REG_A, REG_B, REG_C, REG_C)] == \
        [0x00, 0x00, 0x00, 0x23, 0x42, 0xC0, 0x00]


def test_our_stream_carries_qemus_rtc_bytes():
    for fixture, _ in FIXTURES:
        data = migration.save(after_trace(f"{fixture}.trace"))
        assert section(data, "mc146818rtc") == section(real_stream(f"{fixture}.bin"), "mc146818rtc")


# -- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("count", [0, 1, 20])
def test_v3_round_trip_with_and_without_the_subsection(count):
    state = dataclasses.replace(handmade(), irq_reinject_on_ack_count=count)
    data = pack(MC146818RTC, 3, state)
    assert len(data) == 245 + SUB_SIZE * (count != 0)
    assert (SUB_NAME in data) == (count != 0)
    into = copy.deepcopy(elsewhere().rtc.get_state())
    assert load_section(MC146818RTC, 3, data, 0, into, 50_050_000_000, "mc146818rtc") == len(data)
    assert into == dataclasses.replace(state, irq_reinject_on_ack_count=count or 7)


def test_round_trip_through_migration_is_exact_without_periodic_interrupts():
    """With PIE clear QEMU's post_load changes nothing: an alarm, update
    interrupts, a 12-hour binary clock and a CMOS byte all come back."""
    m = machine_2010()
    wr(m, SEC_ALARM, 0x05)
    wr(m, REG_B, 0x34)              # AIE | UIE | binary, 12-hour
    wr(m, 0x40, 0x5A)               # a CMOS RAM byte
    m.io_write(0x70, 1, 0x21)       # the index left at 0x21
    m.clock_step(1_700_000_000)
    twin = migration.restore(migration.save(m), **m.options)
    assert twin.rtc.get_state() == m.rtc.get_state()
    assert twin.rtc.live_state() == m.rtc.live_state()
    assert (twin.rtc.update_timer.expire, twin.rtc.periodic_timer.expire) == \
        (m.rtc.update_timer.expire, m.rtc.periodic_timer.expire)


def test_save_restore_save_is_a_fixed_point_from_the_second_save_on():
    """README, "Where QEMU 7.2's own migration is not invisible": the first
    load re-phases the periodic timer (now < next_periodic_time), so the
    first restored machine saves other periodic deadlines than its source;
    loading that stream again at the same time re-phases to the same place."""
    m = busy()
    first = migration.save(m)
    twin = migration.restore(first, **m.options)
    second = migration.save(twin)
    third = migration.save(migration.restore(second, **m.options))
    assert section(second, "mc146818rtc") == section(third, "mc146818rtc")
    a, b = section(first, "mc146818rtc")[1], section(second, "mc146818rtc")[1]
    differ = [name for name, at in AT.items() if name != "cmos_data"
              and struct.unpack_from(FMT[name], a, at) != struct.unpack_from(FMT[name], b, at)]
    assert differ == ["periodic_timer", "next_periodic_time"]
    assert struct.unpack_from(">q", b, AT["periodic_timer"]) == (periodic_deadline_from(m.clock.now, 4096),)


# -- the hypothesis strategy: valid RTC states ------------------------------------------------
U64 = st.integers(0, (1 << 64) - 1)
I64 = st.integers(-(1 << 63), (1 << 63) - 1)


@st.composite
def rtc_states(draw) -> RtcState:
    """Any state every rule accepts: any CMOS bytes but registers C (flags
    only) and D (0x80), UIP clear while the divider is held, and then no
    update timer, else one armed if UIP is latched; any index below 128; a
    sub-second offset; a count up to 20."""
    cmos = bytearray(draw(st.binary(min_size=128, max_size=128)))
    cmos[REG_A] = draw(st.one_of(st.integers(0, 255), st.sampled_from([0x26, 0xA6, 0x66, 0x76, 0x2D])))
    cmos[REG_C] = draw(st.integers(0, 15)) << 4
    cmos[REG_D] = 0x80
    held = cmos[REG_A] & 0x60 == 0x60
    if held:
        cmos[REG_A] &= 0x7F
    latched = cmos[REG_A] & 0x80
    return RtcState(
        cmos_data=bytes(cmos), cmos_index=draw(st.integers(0, 127)),
        periodic_timer=draw(st.one_of(st.just(-1), I64)), next_periodic_time=draw(I64),
        irq_coalesced=draw(st.integers(0, (1 << 32) - 1)), period=draw(st.integers(0, (1 << 32) - 1)),
        base_rtc=draw(U64), last_update=draw(U64), offset=draw(st.integers(0, NS - 1)),
        update_timer=-1 if held else draw(I64.filter(lambda t: t != -1) if latched else st.one_of(st.just(-1), I64)),
        next_alarm_time=draw(U64),
        irq_reinject_on_ack_count=draw(st.one_of(st.just(0), st.integers(0, 20))))


def plain(value):
    """construct's containers as plain dicts, without ``_io``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rtc_states(), st.sampled_from([1, 2, 3]))
def test_hypothesis_round_trip_through_the_section_codec(rtc, version):
    """v3 comes back exactly; v1 and v2 bring their own fields and keep the
    destination's others (the time base is re-based later, on the device)."""
    assert broken(rtc, version) == []
    data = pack(MC146818RTC, version, rtc)
    assert len(data) == SIZE[version] + SUB_SIZE * (rtc.irq_reinject_on_ack_count != 0)
    dest = dataclasses.replace(PcMachine().rtc.get_state(), irq_reinject_on_ack_count=9, irq_coalesced=5,
                               period=64)
    into = copy.deepcopy(dest)
    assert load_section(MC146818RTC, version, data, 0, into, 0, "mc146818rtc") == len(data)
    expected = dataclasses.replace(rtc, irq_reinject_on_ack_count=rtc.irq_reinject_on_ack_count or 9)
    if version <= 2:
        expected = dataclasses.replace(expected, base_rtc=dest.base_rtc, last_update=dest.last_update,
                                       offset=dest.offset, update_timer=-1, next_alarm_time=dest.next_alarm_time,
                                       time_from_cmos=True)
    if version == 1:
        expected = dataclasses.replace(expected, irq_coalesced=5, period=64)
    assert into == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rtc_states(), st.sampled_from([1, 2, 3]))
def test_hypothesis_fast_path_is_constructs_bytes(rtc, version):
    container = to_container(MC146818RTC, version, rtc)
    reference = MC146818RTC.construct(version)
    fast = b"".join(MC146818RTC.fast(version).pack(rtc, [], {}))
    assert fast == reference.build(container)
    assert len(fast) == SIZE[version]
    assert plain(reference.parse(fast)) == container


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, (1 << 16) - 1))
def test_hypothesis_subsection_fast_path_is_constructs_bytes(count):
    state = dataclasses.replace(handmade(), irq_reinject_on_ack_count=count)
    fast = b"".join(IRQ_REINJECT_ON_ACK_COUNT.fast(1).pack(state, [], {}))
    assert fast == IRQ_REINJECT_ON_ACK_COUNT.construct(1).build({"irq_reinject_on_ack_count": count}) \
        == struct.pack(">H", count)


GUEST_OPS = st.one_of(
    st.tuples(st.just("wr"), st.sampled_from([SECONDS, SEC_ALARM, MINUTES, MIN_ALARM, HOURS, HOUR_ALARM,
                                              7, 8, 9, REG_A, REG_B, REG_C, REG_D, 0x32, 0x37, 0x40]),
              st.integers(0, 255)),
    st.tuples(st.just("wr"), st.just(REG_A), st.sampled_from([0x26, 0x66, 0x76, 0x2D, 0x23, 0x36, 0x06])),
    st.tuples(st.just("wr"), st.just(REG_B), st.sampled_from([0x02, 0x82, 0x42, 0x12, 0x22, 0x72, 0x06, 0x00])),
    st.tuples(st.just("rd"), st.sampled_from([SECONDS, REG_A, REG_A, REG_C, REG_D, 0x37])),
    st.tuples(st.just("index"), st.integers(0, 255)),
    st.tuples(st.just("step"), st.sampled_from([1, 244_141, 999_755_859, 125_000_000, NS, 61 * NS])),
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(GUEST_OPS, max_size=30))
def test_every_state_the_model_reaches_passes_every_rule_and_migrates(ops):
    """The rules are invariants of the model's code paths: whatever a guest
    does, the state saved is one that loads, and the restored RTC differs
    from its source at most in the periodic deadline QEMU re-phases (when
    it is ahead or over 60 s stale; a rate change can leave it due right
    now, as the port writes here do not run due timers)."""
    m = machine_2010()
    for op in ops:
        if op[0] == "wr":
            wr(m, op[1], op[2])
        elif op[0] == "rd":
            rd(m, op[1])
        elif op[0] == "index":
            m.io_write(0x70, 1, op[1])
        else:
            m.clock_step(op[1])
        assert broken(m.rtc.get_state()) == [], op
    twin = migration.restore(migration.save(m), **m.options)
    expected = m.rtc.get_state()
    got = twin.rtc.get_state()
    npt = expected.next_periodic_time
    if expected.period and (m.clock.now < npt or m.clock.now > npt + 60 * NS):
        assert got.periodic_timer == got.next_periodic_time == periodic_deadline_from(m.clock.now, expected.period)
        got = dataclasses.replace(got, periodic_timer=expected.periodic_timer,
                                  next_periodic_time=expected.next_periodic_time)
    assert got == expected


# -- loading older versions: QEMU's conversions ------------------------------------------------
def test_v2_rebases_the_time_on_the_cmos_bytes_and_restarts_the_second():
    """rtc_post_load for version <= 2: rtc_set_time (base_rtc = mktimegm of
    the CMOS time, last_update = now), offset = 0, check_update_timer.

    Saved at 2.6 s of a clock started at 01:23:00, the CMOS says 01:23:02
    (pre_save brought it up to date).  The destination's second starts at
    the load: its next update is at 3.6 s where the source's is at 3 s.  UF
    is already set and unread (updates at 1 s and 2 s), so check_update_timer
    sleeps until the alarm: 01:23:05 is 3 s after 01:23:02, i.e. the next
    update plus 2 s = 5.6 s (the source's alarm comes at 5 s)."""
    m = machine_2010()
    wr(m, SEC_ALARM, 0x05)
    wr(m, MIN_ALARM, 0x23)
    wr(m, HOUR_ALARM, 0x01)
    wr(m, REG_B, 0x22)
    m.session.intercepting = True
    m.clock_step(2_600_000_000)
    assert m.rtc.update_timer.expire == 5 * NS
    data = migration.save(m, versions={"mc146818rtc": 2})
    twin = migration.restore(data, **m.options)
    rtc = twin.rtc
    assert (rtc.base_rtc, rtc.last_update, rtc.offset) == (BASE_2010 + 2, 2_600_000_000, 0)
    assert rtc.next_alarm_time == rtc.update_timer.expire == 5_600_000_000
    for machine in (m, twin):
        machine.clock_step(500_000_000)
    assert (rd(m, SECONDS), rd(twin, SECONDS)) == (0x03, 0x02)
    for machine in (m, twin):
        machine.session.observations = Observations()
        machine.clock_step(2_400_000_000)                  # to 5.5 s
    assert (m.gsi_levels[IRQ8], twin.gsi_levels[IRQ8]) == (1, 0)
    twin.clock_step(100_000_000)
    assert twin.gsi_levels[IRQ8] == 1
    assert rd(twin, REG_C) == 0xB0 and rd(twin, SECONDS) == 0x05


def test_v1_rebases_the_time_too():
    """As v2: CMOS 01:23:07 at 7.25 s, into a destination whose own offset
    is 0.3 s (rtc_post_load sets it to 0).  Register C was read at 7.1 s, so
    UF is clear and check_update_timer arms the next update a whole second
    after the load."""
    m = machine_2010()
    m.clock_step(7_100_000_000)
    rd(m, REG_C)
    m.clock_step(150_000_000)
    twin = machine_2010()
    twin.clock_step(300_000_000)
    wr(twin, REG_B, 0x82)
    wr(twin, REG_B, 0x02)                   # leaving SET keeps the phase: offset 0.3 s
    assert twin.rtc.offset == 300_000_000
    migration.restore(migration.save(m, versions={"mc146818rtc": 1}), twin)
    assert (twin.rtc.base_rtc, twin.rtc.last_update, twin.rtc.offset) == (BASE_2010 + 7, 7_250_000_000, 0)
    assert twin.rtc.update_timer.expire == 8_250_000_000


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_stream_with_uip_latched_gets_an_update_timer_to_clear_it(version):
    """Saved 100 us before the update at 1 s, with UIP latched by a read of
    A.  v1/v2 carry no update timer; rtc_post_load's check_update_timer
    arms one ("If update_in_progress latched the UIP bit, we must keep the
    timer programmed to the next second, so that UIP is cleared"): the
    second restarts at the load (999.9 ms), so UIP reads set until 1.9999 s
    and clear after."""
    m = machine_2010()
    m.clock_step(999_900_000)
    assert rd(m, REG_A) == 0xA6
    twin = migration.restore(migration.save(m, versions={"mc146818rtc": version}), **m.options)
    assert twin.rtc.update_timer.expire == 1_999_900_000
    assert rd(twin, REG_A) == 0xA6
    twin.clock_step(NS - 1)
    assert rd(twin, REG_A) == 0xA6
    twin.clock_step(1)
    assert rd(twin, REG_A) == 0x26


def test_v2_time_comes_from_the_cmos_bytes_not_from_elsewhere():
    """The re-basing reads the stream's CMOS bytes: a stream saying
    23:59:59 on 31.12.99 (century 0x19) gives 1999-12-31 23:59:59, and one
    update later the date rolls over to 01.01.00, century 0x20."""
    m = machine_2010()
    data = bytearray(migration.save(m, versions={"mc146818rtc": 2}))
    at = payload_at(data)
    for index, value in {SECONDS: 0x59, MINUTES: 0x59, HOURS: 0x23, 7: 0x31, 8: 0x12, 9: 0x99, 0x32: 0x19}.items():
        data[at + index] = value
    twin = migration.restore(bytes(data), **m.options)
    assert twin.rtc.base_rtc == 946_684_799          # 2000-01-01T00:00:00 is 946684800
    quiet(twin).clock_step(NS)
    assert [rd(twin, i) for i in (SECONDS, MINUTES, HOURS, 7, 8, 9, 0x32)] == [0, 0, 0, 1, 1, 0, 0x20]


def test_v2_stream_with_the_divider_held_loads():
    """A v2 stream has no update timer, and QEMU's post_load deletes it
    while the divider is held (check_update_timer).  The destination's own
    armed update timer must not be held against the stream."""
    m = machine_2010()
    m.clock_step(3 * NS)
    wr(m, REG_A, 0x66)
    dest = quiet(PcMachine(rtc_base="2010-06-08T01:23:00"))
    assert dest.rtc.update_timer.pending
    migration.restore(migration.save(m, versions={"mc146818rtc": 2}), dest)
    assert dest.rtc.update_timer.expire == -1
    assert dest.rtc.base_rtc == BASE_2010 + 3
    dest.clock_step(5 * NS)
    assert rd(dest, SECONDS) == 0x03               # held


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("b, rs, expected", [(0x42, 0x0D, 4096), (0x42, 0x03, 4), (0x42, 0x01, 128),
                                             (0x42, 0x00, 0), (0x02, 0x0D, 0)])
def test_period_is_recomputed_from_registers_a_and_b(version, b, rs, expected):
    """rtc_periodic_clock_ticks: 0 without PIE or with RS 0; RS 1 and 2 act
    as 8 and 9 (128 and 256 cycles: 256 Hz, 128 Hz); otherwise 1 << (RS - 1)
    cycles (RS 13: 4096 = 8 Hz; RS 3: 4 = 8192 Hz).  The stream's period,
    edited to 0xdeadbeef, is not trusted."""
    m = machine_2010()
    wr(m, REG_A, 0x20 | rs)
    wr(m, REG_B, b)
    m.clock_step(NS // 3)
    data = bytearray(migration.save(m, versions={"mc146818rtc": version}))
    struct.pack_into(">I", data, payload_at(data) + AT["period"], 0xDEADBEEF)
    twin = migration.restore(bytes(data), **m.options)
    assert twin.rtc.period == expected


def test_v1_period_and_coalesced_count_are_not_in_the_stream():
    """v1 has neither: the coalesced count is what rtc_reset leaves (0, the
    destination having been reset first), and the period is recomputed
    (8 Hz with PIE: 4096)."""
    m = busy()
    dest = elsewhere()
    dest.rtc.irq_coalesced = 2
    migration.restore(migration.save(m, versions={"mc146818rtc": 1}), dest)
    assert (dest.rtc.period, dest.rtc.irq_coalesced) == (4096, 0)


def _with_periodic(npt_from_now: int, timer_from_now: int):
    """busy()'s stream with next_periodic_time and periodic_timer edited
    relative to the stream's time, which is 70 s on."""
    m = busy()
    m.clock_step(70 * NS - m.clock.now)
    now = m.clock.now
    data = bytearray(migration.save(m))
    at = payload_at(data)
    struct.pack_into(">q", data, at + AT["periodic_timer"], now + timer_from_now)
    struct.pack_into(">q", data, at + AT["next_periodic_time"], now + npt_from_now)
    return now, migration.restore(bytes(data), **m.options).rtc


@pytest.mark.parametrize("npt_from_now, rearmed", [
    (1, True),                  # now < next_periodic_time
    (0, False),                 # due right now: left alone
    (-60 * NS, False),          # exactly get_max_clock_jump() (60 s) stale: left alone
    (-60 * NS - 1, True),       # more than 60 s stale
    (-70 * NS + 1, True),
])
def test_periodic_timer_is_rearmed_per_rtc_post_load(npt_from_now, rearmed):
    """rtc_post_load: ``if (now < s->next_periodic_time || now >
    (s->next_periodic_time + get_max_clock_jump()))`` re-arm from now
    (periodic_timer_update(s, now, s->period, false)); else the timer and
    next_periodic_time stay as the stream has them."""
    now, rtc = _with_periodic(npt_from_now, 777)
    if rearmed:
        assert rtc.periodic_timer.expire == rtc.next_periodic_time == periodic_deadline_from(now, 4096)
        assert periodic_deadline_from(now, 4096) not in (now + 777, now + npt_from_now)
    else:
        assert (rtc.periodic_timer.expire, rtc.next_periodic_time) == (now + 777, now + npt_from_now)


def test_without_pie_the_rearm_deletes_the_periodic_timer_and_the_coalesced_count():
    """periodic_timer_update with a period of 0 clears irq_coalesced and
    deletes the timer, whatever the stream said."""
    m = machine_2010()
    m.clock_step(2 * NS)
    data = bytearray(migration.save(m))
    at = payload_at(data)
    struct.pack_into(">q", data, at + AT["periodic_timer"], 3 * NS)
    struct.pack_into(">q", data, at + AT["next_periodic_time"], 3 * NS)
    struct.pack_into(">I", data, at + AT["irq_coalesced"], 5)
    rtc = migration.restore(bytes(data), **m.options).rtc
    assert (rtc.periodic_timer.expire, rtc.irq_coalesced, rtc.period) == (-1, 0, 0)


# -- versions and subsections ----------------------------------------------------------------
def test_a_destination_that_loads_only_v2_refuses_v3():
    data = migration.save(busy())
    with pytest.raises(VersionTooNew) as err:
        migration.decode(data, PcMachine(), highest={"mc146818rtc": 2})
    assert (err.value.path, err.value.offset) == ("mc146818rtc", payload_at(data) - 4)


@pytest.mark.parametrize("version, error", [(2, VersionTooNew), (0, VersionTooOld)])
def test_subsection_version_other_than_1_is_refused(version, error):
    data = bytearray(_stream_with_count(5))
    at = data.index(bytes([0x05, 37]) + SUB_NAME) + 2 + 37
    assert struct.unpack_from(">I", data, at) == (1,)
    struct.pack_into(">I", data, at, version)
    err = _refused(bytes(data), error)
    assert (err.path, err.offset) == ("mc146818rtc/irq_reinject_on_ack_count", at)


def test_the_subsection_twice_is_refused():
    data = _stream_with_count(5)
    start = data.index(bytes([0x05, 37]) + SUB_NAME)
    sub = data[start:start + SUB_SIZE]
    err = _refused(data[:start] + sub + data[start:], MalformedStream)
    assert (err.path, err.offset) == ("mc146818rtc", start + SUB_SIZE)


def test_a_stream_cut_inside_a_field_names_it():
    data = migration.save(busy())
    cut = payload_at(data) + AT["update_timer"] + 3
    err = _refused(data[:cut], TruncatedStream)
    assert (err.path, err.offset) == ("mc146818rtc.update_timer", cut - 3)


# -- the reinjection count's subsection --------------------------------------------------------
def _stream_with_count(count: int, versions=None) -> bytes:
    m = busy()
    m.rtc.irq_reinject_on_ack_count = count
    return migration.save(m, versions)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_count_is_written_only_when_not_zero(version):
    end = payload_at(_stream_with_count(0)) + SIZE[version]
    none = _stream_with_count(0, {"mc146818rtc": version})
    assert SUB_NAME not in none and none[end] == 0x7E
    five = _stream_with_count(5, {"mc146818rtc": version})
    assert five[end:end + SUB_SIZE + 1] == bytes([0x05, 37]) + SUB_NAME + bytes.fromhex("00000001" "0005" "7e")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_without_the_subsection_the_count_is_the_reset_value(version):
    """QEMU loads only what the stream has into a machine just reset: an
    absent subsection leaves its fields as rtc_reset sets them (0, not the
    7 the destination had), a present one sets them."""
    dest = elsewhere()
    assert dest.rtc.irq_reinject_on_ack_count == 7
    migration.restore(_stream_with_count(0, {"mc146818rtc": version}), dest)
    assert dest.rtc.irq_reinject_on_ack_count == 0
    migration.restore(_stream_with_count(3, {"mc146818rtc": version}), dest)
    assert dest.rtc.irq_reinject_on_ack_count == 3


def test_a_reinjected_tick_counts_and_travels():
    """Coalesced ticks (from a slew-policy source's v2 stream) are reinjected
    on register C reads while PIE is set, each read counting one, up to
    RTC_REINJECT_ON_ACK_COUNT (20).  The count travels in the subsection."""
    m = busy()
    data = bytearray(migration.save(m, versions={"mc146818rtc": 2}))
    struct.pack_into(">I", data, payload_at(data) + AT["irq_coalesced"], 2)
    twin = migration.restore(bytes(data), **m.options)
    assert twin.rtc.irq_coalesced == 2
    assert rd(twin, REG_C) & 0xC0 == 0xC0
    assert rd(twin, REG_C) == 0xC0                  # the reinjected tick
    assert twin.rtc.irq_reinject_on_ack_count == 2
    again = migration.restore(migration.save(twin), **m.options)
    assert again.rtc.irq_reinject_on_ack_count == 2


# -- every validation rule, broken on its own ---------------------------------------------------
def _set(**values):
    def mutate(rtc):
        for name, value in values.items():
            setattr(rtc, name, value)
    return mutate


def _cmos(index, value, **values):
    def mutate(rtc):
        cmos = bytearray(rtc.cmos_data)
        cmos[index] = value
        rtc.cmos_data = bytes(cmos)
        _set(**values)(rtc)
    return mutate


C_ONLY_FLAGS = "register C (read-only) holds only IRQF, PF, AF and UF"
D_IS_VRT = "register D is read-only: VRT (0x80) as reset sets it"
NO_UIP_HELD = "UIP is never set while the divider is held in reset (QEMU asserts it)"
NO_TIMER_HELD = "a divider held in reset has no update timer armed"
UIP_NEEDS_TIMER = "a latched UIP needs the update timer armed to clear it"
SUB_COUNT = 245 + SUB_COUNT_AT

# (path, mutation of busy()'s RTC state that breaks that rule and no other,
# offset in the payload, message or None for a field's own rule).  Every
# error points at the bytes of the field it names.
RULES = [
    ("cmos_index", _set(cmos_index=128), AT["cmos_index"], None),
    ("cmos_index", _set(cmos_index=0xFF), AT["cmos_index"], None),
    ("offset", _set(offset=NS), AT["offset"], None),
    ("offset", _set(offset=-1), AT["offset"], None),
    ("/irq_reinject_on_ack_count.irq_reinject_on_ack_count", _set(irq_reinject_on_ack_count=21), SUB_COUNT, None),
    ("/irq_reinject_on_ack_count.irq_reinject_on_ack_count", _set(irq_reinject_on_ack_count=0xFFFF), SUB_COUNT,
     None),
    ("cmos_data", _cmos(REG_C, 0xC1), 0, C_ONLY_FLAGS),
    ("cmos_data", _cmos(REG_C, 0x08), 0, C_ONLY_FLAGS),
    ("cmos_data", _cmos(REG_D, 0x00), 0, D_IS_VRT),
    ("cmos_data", _cmos(REG_D, 0x81), 0, D_IS_VRT),
    ("cmos_data", _cmos(REG_A, 0xE6, update_timer=-1), 0, NO_UIP_HELD),
    ("cmos_data", _cmos(REG_A, 0xF6, update_timer=-1), 0, NO_UIP_HELD),
    ("update_timer", _cmos(REG_A, 0x66), AT["update_timer"], NO_TIMER_HELD),
    ("update_timer", _cmos(REG_A, 0x7D), AT["update_timer"], NO_TIMER_HELD),
    ("update_timer", _cmos(REG_A, 0xAD, update_timer=-1), AT["update_timer"], UIP_NEEDS_TIMER),
    ("update_timer", _cmos(REG_A, 0xBD, update_timer=-1), AT["update_timer"], UIP_NEEDS_TIMER),
]


def _stream_with(monkeypatch, rtc, versions=None) -> bytes:
    source = busy()
    monkeypatch.setattr(source.rtc, "get_state", lambda: copy.deepcopy(rtc))
    return migration.save(source, versions)


def _refused(data, error=InvalidField):
    return sectionbytes.refused(data, elsewhere(), error)


@pytest.mark.parametrize("path, mutate, offset, message", RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_rule(monkeypatch, path, mutate, offset, message):
    rtc = busy().rtc.get_state()
    assert broken(rtc) == [] and rtc.update_timer != -1
    mutate(rtc)
    assert broken(rtc) == [path]
    data = _stream_with(monkeypatch, rtc)
    at = payload_at(data)
    if message is None and path in FMT:
        assert struct.unpack_from(FMT[path], data, at + offset) == (getattr(rtc, path) & 0xFF if path == "cmos_index"
                                                                     else getattr(rtc, path),)
    err = _refused(data)
    assert (err.path, err.offset) == ("mc146818rtc" + ("" if path.startswith("/") else ".") + path, at + offset)
    if message is None:
        assert "is not valid" in err.message
    else:
        assert err.message == message


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("path, mutate, offset", [
    ("cmos_index", _set(cmos_index=200), AT["cmos_index"]),
    ("cmos_data", _cmos(REG_D, 0x00), 0),
    ("cmos_data", _cmos(REG_A, 0xE6, update_timer=-1), 0),
], ids=["index", "register-d", "uip-held"])
def test_v1_and_v2_streams_are_validated_too(monkeypatch, version, path, mutate, offset):
    rtc = busy().rtc.get_state()
    mutate(rtc)
    data = _stream_with(monkeypatch, rtc, {"mc146818rtc": version})
    err = _refused(data)
    assert (err.path, err.offset) == (f"mc146818rtc.{path}", payload_at(data) + offset)


def test_every_rule_has_a_case():
    """Each field rule, the subsection's and each check is broken by a case
    above."""
    paths = {p for p, *_ in RULES}
    messages = {m for *_, m in RULES if m}
    assert {e.name for e in MC146818RTC.fields if isinstance(e, Field) and e.valid} <= paths
    assert {f"/irq_reinject_on_ack_count.{e.name}" for e in IRQ_REINJECT_ON_ACK_COUNT.fields if e.valid} <= paths
    assert {c.message for c in MC146818RTC.checks} == messages
    assert {(c.field, c.message) for c in MC146818RTC.checks} == {(p, m) for p, _, _, m in RULES if m}


# -- mid-operation: the restored machine answers as the original -------------------------------
def twins(setup: str, after: str, base: str = "2010-06-08T01:23:00"):
    """Run ``setup`` (qtest lines), migrate through the bytes into a fresh
    machine, then run ``after`` on the original and on the restored machine,
    each with its own copy of the client's session: the replies and the
    observation records (reads, interrupt edges, clock) must be equal."""
    m = PcMachine(rtc_base=base)
    list(Runner(m).run(parse_trace("irq_intercept_in ioapic\noutb 0x43 0x30\n" + setup)))
    twin = migration.restore(migration.save(m), **m.options)
    assert twin.rtc.get_state() == m.rtc.get_state()
    restored = (m.hpet.rtc_irq_level, twin.hpet.rtc_irq_level, m.gsi_levels[IRQ8], twin.gsi_levels[IRQ8])
    twin.session = copy.deepcopy(m.session)
    for machine in (m, twin):
        machine.session.observations = Observations()
    commands = parse_trace(after)
    replies = [list(Runner(machine).run(commands)) for machine in (m, twin)]
    assert replies[0] == replies[1]
    assert m.session.observations.events == twin.session.observations.events
    assert twin.rtc.get_state() == m.rtc.get_state()
    return m, twin, replies[0], restored


def test_inside_the_update_window_with_uip_latched():
    """244 us before the update at 1 s, a read of A latches UIP in the
    register (0xa6).  The destination must keep it until its update timer
    (1 s) fires: A reads 0xa6, then 0x26 and the seconds 0x01 after it."""
    setup = "clock_step 999900000\noutb 0x70 0x0a\ninb 0x71\n"
    m0 = PcMachine(rtc_base="2010-06-08T01:23:00")
    list(Runner(m0).run(parse_trace(setup)))
    assert m0.rtc.get_state().cmos_data[REG_A] == 0xA6 and m0.rtc.update_timer.expire == NS
    m, twin, replies, restored = twins(setup, "inb 0x71\nclock_step 100000\ninb 0x71\noutb 0x70 0x00\ninb 0x71\n")
    assert replies == ["OK 0x00a6", "OK 1000000000", "OK 0x0026", "OK", "OK 0x0001"]


def test_set_with_the_time_written_but_not_applied():
    """SET holds the clock while the guest writes 13:45:30; on the
    destination, clearing SET at 0.7 s applies it (the time base moves only
    then), keeping the divider chain's sub-second phase (0.7 s: QEMU sets
    offset = guest ns % 1e9), so 1.5 s later the seconds read 32."""
    setup = "\n".join(["outb 0x70 0x0b", "outb 0x71 0x82", "outb 0x70 0x04", "outb 0x71 0x13", "outb 0x70 0x02",
                       "outb 0x71 0x45", "outb 0x70 0x00", "outb 0x71 0x30", ""])
    m0 = PcMachine(rtc_base="2010-06-08T01:23:00")
    list(Runner(m0).run(parse_trace(setup)))
    held = m0.rtc.get_state()
    assert held.base_rtc == BASE_2010 and held.cmos_data[:5:2] == bytes([0x30, 0x45, 0x13])
    after = "\n".join(["outb 0x70 0x00", "inb 0x71", "clock_step 700000000", "outb 0x70 0x0b", "outb 0x71 0x02",
                       "clock_step 1500000000", "outb 0x70 0x00", "inb 0x71", "outb 0x70 0x02", "inb 0x71",
                       "outb 0x70 0x04", "inb 0x71", ""])
    m, twin, replies, restored = twins(setup, after)
    reads = [r for r in replies if r.startswith("OK 0x")]
    assert reads == ["OK 0x0030", "OK 0x0032", "OK 0x0045", "OK 0x0013"]
    assert twin.rtc.base_rtc == BASE_2010 - (1 * 3600 + 23 * 60) + 13 * 3600 + 45 * 60 + 30


def test_alarm_pending():
    """An alarm at 01:23:05 with AIE, migrated at 2 s: line 8 rises at 5 s
    on both, and register C reads IRQF | AF | UF (0xb0)."""
    setup = "\n".join(["outb 0x70 0x01", "outb 0x71 0x05", "outb 0x70 0x03", "outb 0x71 0x23", "outb 0x70 0x05",
                       "outb 0x71 0x01", "outb 0x70 0x0b", "outb 0x71 0x22", "clock_step 2000000000", ""])
    m, twin, replies, restored = twins(setup, "clock_step 4000000000\noutb 0x70 0x0c\ninb 0x71\ninb 0x71\n")
    assert [(e.time, e.level) for e in m.session.observations.edges() if e.line == IRQ8] == [(5 * NS, 1), (6 * NS, 0)]
    assert replies[-2:] == ["OK 0x00b0", "OK 0x0000"]


def test_register_c_unread_with_irq8_high():
    """Update-ended interrupts: UF and IRQF set at 1 s, C unread, line 8
    high over the migration (the level travels as the HPET's
    rtc_irq_level); the first C read on each returns 0x90 (IRQF | UF) and
    lowers the line, the next 0; the update at 2 s raises it again."""
    m, twin, replies, restored = twins("outb 0x70 0x0b\noutb 0x71 0x12\nclock_step 1500000000\n",
                             "outb 0x70 0x0c\ninb 0x71\ninb 0x71\nclock_step 1000000000\ninb 0x71\n")
    assert restored[:2] == (1, 1)
    assert replies == ["OK", "IRQ lower 8", "OK 0x0090", "OK 0x0000", "IRQ raise 8", "OK 2500000000",
                       "IRQ lower 8", "OK 0x0090"]


def test_periodic_interrupts_are_rephased_by_the_load():
    """README, "Where QEMU 7.2's own migration is not invisible": 8 Hz
    (4096 cycles) from 0, C read at 400 ms, migrated.  The source's next
    tick is cycle 16384 (500 ms) + 1 ns; rtc_post_load re-arms the
    destination from the load, cycle 400e6 * 32768 // 1e9 = 13107, so its
    ticks come at cycles 17203, 21299, ... (each truncated to ns, + 1)."""
    setup = "outb 0x70 0x0a\noutb 0x71 0x2d\noutb 0x70 0x0b\noutb 0x71 0x42\nclock_step 400000000\n" \
            "outb 0x70 0x0c\ninb 0x71\n"
    m = PcMachine(rtc_base="2010-06-08T01:23:00")
    list(Runner(m).run(parse_trace("irq_intercept_in ioapic\noutb 0x43 0x30\n" + setup)))
    twin = migration.restore(migration.save(m), **m.options)
    twin.session = copy.deepcopy(m.session)
    assert m.rtc.periodic_timer.expire == 16384 * NS // RTC_HZ + 1 == 500_000_001
    assert twin.rtc.periodic_timer.expire == 17203 * NS // RTC_HZ + 1 == 524_993_897
    after = parse_trace("\n".join(["clock_step 110000000", "outb 0x70 0x0c", "inb 0x71", "clock_step 20000000",
                                   "inb 0x71", "clock_step 250000000", "inb 0x71", "outb 0x70 0x00", "inb 0x71", ""]))
    got = {}
    for name, machine in (("source", m), ("twin", twin)):
        machine.session.observations = Observations()
        replies = list(Runner(machine).run(after))
        got[name] = ([r for r in replies if r.startswith("OK 0x")],
                     [e.time for e in machine.session.observations.edges() if e.line == IRQ8 and e.level])
    # at 510 ms: the source has ticked, the twin not yet; at 530 ms the reverse
    assert got["source"][0][:2] == ["OK 0x00c0", "OK 0x0000"]
    assert got["twin"][0][:2] == ["OK 0x0000", "OK 0x00c0"]
    # raised at each tick after a C read: the third tick finds the line high
    assert got["source"][1] == [(16384 + 4096 * k) * NS // RTC_HZ + 1 for k in range(2)]
    assert got["twin"][1] == [(17203 + 4096 * k) * NS // RTC_HZ + 1 for k in range(2)]
    assert got["source"][0][2:] == got["twin"][0][2:]      # C after both ticked; the time of day agrees
