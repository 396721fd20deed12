"""The ``hpet`` section (v1, v2, both subsections): exact round trips, bytes
worked out by hand, QEMU 7.2's own bytes, the version rules and QEMU's
conversions, every validation rule broken on its own, and machines migrated
mid-operation.

The layout, from QEMU 7.2's VMSD (all big-endian):

    hpet v2 payload                        hpet_timer, 42 bytes, at 25 + 42 * i
      0  config        u64                   +0  tn          u8
      8  isr           u64                   +1  config      u64
     16  hpet_counter  u64                   +9  cmp         u64
     24  num_timers    u8                   +17  fsb         u64
     25  timer[0..n-1] n x 42               +25  period      u64
    151  (3 timers) subsections, if needed: +33  wrap_flag   u8
         05 12 "hpet/rtc_irq_level" be32 1  +34  qemu_timer  int64 (-1 idle)
            rtc_irq_level u8                   (25 bytes)
         05 0b "hpet/offset" be32 1         v1 has no num_timers: timers at
            hpet_offset u64 (25 bytes)      24 + 42 * i, always 3 of them.
"""
from __future__ import annotations

import copy
import dataclasses
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.hpet import (ARM_LIMIT_TICKS, TN_32BIT, TN_CFG_WRITE_MASK, TN_ENABLE, TN_FSB_CAP,
                          TN_FSB_ENABLE, U64, HpetState, HpetTimerState)
from realstream import STREAMS, described, real_stream, section
import sectionbytes
from schemas import SECTIONS
from schemas.hpet import HPET, HPET_TIMER, OFFSET, RESET_CAPS, RTC_IRQ_LEVEL, pristine
from vmstate.machine import migration
from vmstate.core.state import resolve
from vmstate.wire.section import load_section
from vmstate.wire.table import Field, Nested, to_container
from vmstate.core.errors import InvalidField, UsageError, VersionTooNew
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Observations
from vmstate.trace.qtest import Runner, parse_trace

ARMED = "qemu-7.2-pc-hpet-armed"
ARMED_NOW = 400_003            # the qtest clock at the fixture's migrate
ARM_LIMIT_NS = ARM_LIMIT_TICKS * 10
TIMER_AT = 25
TIMER_SIZE = 42
TIMER_FIELDS = {"tn": (0, ">B"), "config": (1, ">Q"), "cmp": (9, ">Q"), "fsb": (17, ">Q"),
                "period": (25, ">Q"), "wrap_flag": (33, ">B"), "qemu_timer": (34, ">q")}
RTC_SUB = 1 + 1 + len("hpet/rtc_irq_level") + 4 + 1
OFFSET_HEADER = 1 + 1 + len("hpet/offset") + 4


# -- helpers ---------------------------------------------------------------------------
pack = sectionbytes.pack


def payload_at(data: bytes, idstr: str = "hpet") -> int:
    return sectionbytes.payload_at(data, idstr)


states = sectionbytes.states


def fixture_commands():
    commands = parse_trace((STREAMS / f"{ARMED}.trace").read_text())
    cut = [c.name for c in commands].index("migrate")
    return commands[:cut], commands[cut + 1:]


def armed() -> PcMachine:
    """Our machine after the fixture trace's lines before ``migrate``: the
    HPET enabled, timer 0's level interrupt asserted on GSI 2, timer 1
    periodic and mid-period, timer 2 armed for its 32-bit wrap."""
    m = PcMachine()
    list(Runner(m).run(fixture_commands()[0]))
    return m


def elsewhere() -> PcMachine:
    """A destination in a state of its own (HPET running, in legacy mode,
    timer 0 periodic), to see that a refused stream leaves it as it was."""
    m = PcMachine()
    m.clock_step(2_500_000)
    m.mem_write(0xFED00100, 4, 0x4C)
    m.mem_write(0xFED00108, 4, 0x1000)
    m.mem_write(0xFED00010, 4, 0x3)
    m.clock_step(123_456)
    return m


def fresh() -> HpetState:
    return copy.deepcopy(PcMachine().hpet.get_state())


def _holds(rule, value) -> bool:
    if isinstance(rule, (range, frozenset)):
        return value in rule
    return bool(rule(value))


def _broken(description, version, state, aux, prefix) -> list[str]:
    out = []
    for e in description.present(version):
        if isinstance(e, Field) and e.valid is not None and not _holds(e.valid, resolve(state, e.path)):
            out.append(prefix + e.name)
        elif isinstance(e, Nested):
            n = e.count if isinstance(e.count, int) else resolve(state, description.entry(e.count).path)
            for i, item in enumerate(resolve(state, e.path)[:n]):
                out.extend(_broken(e.description, 1, item, aux, f"{prefix}{e.name}[{i}]."))
    return out + [prefix + c.field for c in description.checks if not c.holds(state, aux)]


def broken(state: HpetState, now: int, version: int = 2) -> list[str]:
    """Every rule the state breaks, as the field paths the errors name."""
    aux = {"now": now}
    out = _broken(HPET, version, state, aux, "")
    for sub in HPET.subsections:
        if sub.needed(state):
            out.extend(_broken(sub.description, 1, state, aux, sub.description.name.removeprefix("hpet") + "."))
    return out


# -- sizes, order and QEMU's JSON ---------------------------------------------------------
def test_sizes_agree_with_qemu():
    assert HPET_TIMER.size(1) == 42
    state = fresh()
    assert HPET.size(2, state) == 151 and HPET.size(1, state) == 150
    assert len(pack(HPET, 2, state)) == 151      # 3 timers, no subsection needed
    assert section(real_stream(), "hpet") == (2, pack(HPET, 2, state))


def test_a_fresh_machines_stream_has_151_bytes_then_the_footer():
    data = migration.save(PcMachine())
    at = payload_at(data)
    assert struct.unpack_from(">I", data, at - 4) == (2,)
    assert data[at + 151] == 0x7E


def test_hpet_follows_the_timer_section():
    names = [s.idstr for s in SECTIONS]
    assert names[:3] == ["timer", "PCIHost", "hpet"]
    assert next(s for s in SECTIONS if s.idstr == "hpet").description is HPET


@pytest.mark.parametrize("stream, machine", [("qemu-7.2-pc-pit-channel2.bin", PcMachine),
                                             (f"{ARMED}.bin", armed)])
def test_json_description_is_qemus(stream, machine):
    qemu = {k: v for k, v in described(real_stream(stream), "hpet").items() if k not in ("name", "instance_id")}
    assert HPET.json(2, machine().hpet.get_state()) == qemu


def test_v1_json_has_three_timers_and_no_count():
    fields = HPET.json(1, fresh())["fields"]
    assert [f["name"] for f in fields] == ["config", "isr", "hpet_counter", "timer"]
    assert fields[3]["array_len"] == 3 and fields[3]["size"] == 42


# -- golden bytes, worked out by hand ------------------------------------------------------
NOW = 1_000_000_000     # 0x3b9aca00


def handmade() -> HpetState:
    """Enabled in legacy mode at 1 s, offset 0x1_0000_0005: the counter is
    (1e9 + 4294967301) // 10 = 529496730 = 0x1f8f7a9a.  Timer 0 level, fired
    and asserted (isr bit 0); timer 1 periodic on GSI 11, due 0x1234 ns on;
    timer 2 32-bit one-shot on GSI 23, armed for the wrap, due 16 ns on."""
    return HpetState(
        config=3, isr=1, hpet_counter=0x1F8F7A9A, num_timers=3,
        timer=[
            HpetTimerState(0, RESET_CAPS | 0x6, 0x12345678, 0xFEE00000_00000041, 0, 0, -1),
            HpetTimerState(1, RESET_CAPS | 0x163C & TN_CFG_WRITE_MASK, 0x1F8F8000, 0, 0x61A8, 0, NOW + 0x1234),
            HpetTimerState(2, RESET_CAPS | 0x2F04, 0x100, 0, 0, 1, NOW + 0x10),
        ],
        rtc_irq_level=1, hpet_offset=0x1_0000_0005, stray_timer=pristine(3), msi=False)


HANDMADE_HEAD = bytes.fromhex(
    "0000000000000003"        # config: ENABLE | LEG_RT
    "0000000000000001"        # isr: timer 0
    "000000001f8f7a9a")       # hpet_counter
HANDMADE_TIMERS = bytes.fromhex(
    # timer 0: tn, config = intcap 0x4 << 32 | caps 0x30 | level 0x2 | enable 0x4,
    # cmp, fsb (address 0xfee00000, value 0x41), period 0, wrap 0, idle (-1)
    "00" "0000000400000036" "0000000012345678" "fee0000000000041" "0000000000000000" "00" "ffffffffffffffff"
    # timer 1: route 11 (0x1600) | periodic 0x8 | enable 0x4 | caps, period 25000, due at 1e9 + 0x1234
    "01" "000000040000163c" "000000001f8f8000" "0000000000000000" "00000000000061a8" "00" "000000003b9adc34"
    # timer 2: route 23 (0x2e00) | 32-bit 0x100 | enable 0x4 | caps, cmp 0x100, wrap 1, due at 1e9 + 16
    "02" "0000000400002f34" "0000000000000100" "0000000000000000" "0000000000000000" "01" "000000003b9aca10")
HANDMADE_SUBSECTIONS = (
    bytes([0x05, 18]) + b"hpet/rtc_irq_level" + bytes.fromhex("00000001" "01")
    + bytes([0x05, 11]) + b"hpet/offset" + bytes.fromhex("00000001" "0000000100000005"))
HANDMADE = {2: HANDMADE_HEAD + bytes([3]) + HANDMADE_TIMERS + HANDMADE_SUBSECTIONS,
            1: HANDMADE_HEAD + HANDMADE_TIMERS + HANDMADE_SUBSECTIONS}


def test_handmade_state_is_valid():
    assert broken(handmade(), NOW) == []


@pytest.mark.parametrize("version", [2, 1])
def test_golden_bytes_by_hand(version):
    expected = HANDMADE[version]
    assert len(expected) == {2: 151, 1: 150}[version] + 25 + 25
    state = handmade()
    assert pack(HPET, version, state) == expected
    fields = expected[:len(expected) - 50]
    assert HPET.construct(version).build(to_container(HPET, version, state)) == fields
    into = fresh()
    assert load_section(HPET, version, expected, 0, into, NOW, "hpet") == len(expected)
    assert into == state


def test_golden_fresh_hpet_by_hand():
    """Reset: every timer's config is intcap 0x4 << 32 | 0x30, its comparator
    all ones, its timer idle."""
    timer = "{tn:02x}" "0000000400000030" "ffffffffffffffff" + "00" * 16 + "00" "ffffffffffffffff"
    expected = bytes.fromhex("00" * 24 + "03" + "".join(timer.format(tn=i) for i in range(3)))
    data = migration.save(PcMachine())
    at = payload_at(data)
    assert data[at:at + 152] == expected + b"\x7e"


# -- QEMU 7.2's own streams -----------------------------------------------------------------
def test_qemus_armed_hpet_payload_is_our_machines_state():
    version, payload = section(real_stream(f"{ARMED}.bin"), "hpet")
    assert (version, len(payload)) == (2, 201)
    ours = armed().hpet.get_state()
    assert pack(HPET, 2, ours) == payload
    into = fresh()
    assert load_section(HPET, 2, payload, 0, into, ARMED_NOW, "hpet") == 201
    assert into == ours
    assert (into.isr, into.rtc_irq_level, into.timer[2].wrap_flag) == (1, 1, 1)
    assert into.timer[0].expire == -1 and into.timer[1].expire > ARMED_NOW


def test_qemus_idle_hpet_payload_is_a_fresh_machines():
    version, payload = section(real_stream(), "hpet")
    into = copy.deepcopy(elsewhere().hpet.get_state())
    load_section(HPET, version, payload, 0, into, 5_000_000, "hpet")
    expected = fresh()
    expected.hpet_offset = into.hpet_offset     # halted: the destination keeps its own
    assert into == expected


def test_a_qtest_stream_of_a_running_hpet_does_not_check_out_against_its_timer_section():
    """Under qtest, QEMU's devices run on the qtest clock (400003 ns here);
    the ``timer`` section carries the CPU clock instead (36.5 ms), so
    against that time the armed deadlines are in the past."""
    data = real_stream(f"{ARMED}.bin")
    (now,) = struct.unpack_from(">q", section(data, "timer")[1], 16)
    assert now > ARMED_NOW + 1_000_000
    with pytest.raises(InvalidField) as err:
        load_section(HPET, 2, section(data, "hpet")[1], 0, fresh(), now, "hpet")
    assert (err.value.path, err.value.offset) == ("hpet.timer[1].qemu_timer", _in_timer(1, "qemu_timer"))


# -- round trips -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("rtc_level", [0, 1])
@pytest.mark.parametrize("offset", [None, 0x1_0000_0005])
def test_round_trip_with_and_without_each_subsection(version, rtc_level, offset):
    state = handmade()
    state.rtc_irq_level = rtc_level
    state.hpet_offset = offset
    if offset is None:
        state.hpet_counter = 0x1F8F7A9A
    data = pack(HPET, version, state)
    assert len(data) == {2: 151, 1: 150}[version] + 25 * (rtc_level != 0) + 25 * (offset is not None)
    assert (b"hpet/rtc_irq_level" in data, b"hpet/offset" in data) == (rtc_level != 0, offset is not None)
    into = fresh()
    into.rtc_irq_level = 1
    assert load_section(HPET, version, data, 0, into, NOW, "hpet") == len(data)
    assert into == state


def test_round_trip_through_migration():
    m = armed()
    data = migration.save(m)
    twin = migration.restore(data)
    assert twin.hpet.get_state() == m.hpet.get_state()
    assert [t.timer.expire for t in twin.hpet.timers] == [t.timer.expire for t in m.hpet.timers]
    assert twin.hpet.capability == m.hpet.capability
    # only the hpet section: the RTC's post_load re-phases its periodic timer
    assert section(migration.save(twin), "hpet") == section(data, "hpet")


def test_round_trip_through_migration_as_v1():
    m = armed()
    data = migration.save(m, versions={"hpet": 1})
    at = payload_at(data)
    assert struct.unpack_from(">I", data, at - 4) == (1,)
    assert data[at + 150:at + 152] == bytes([0x05, 18])    # no count byte; the subsections follow
    twin = migration.restore(data)
    assert twin.hpet.get_state() == m.hpet.get_state()


def test_v1_cannot_carry_other_than_three_timers():
    m = PcMachine()
    m.hpet.set_state(dataclasses.replace(m.hpet.get_state(), num_timers=4,
                                  timer=m.hpet.get_state().timer + [pristine(3)], stray_timer=pristine(4)))
    with pytest.raises(UsageError):
        migration.save(m, versions={"hpet": 1})


def test_writing_without_the_offset_rebuilds_it_from_the_counter(monkeypatch):
    """pc-2.11's compat: no ``hpet/offset``.  The destination derives the
    offset from the counter, losing the sub-tick phase as QEMU does: the
    source is 3 ns into a tick, the restored machine at its start."""
    m = armed()
    state = m.hpet.get_state()
    monkeypatch.setattr(m.hpet, "get_state", lambda: dataclasses.replace(copy.deepcopy(state), hpet_offset=None))
    data = migration.save(m)
    assert b"hpet/offset" not in data
    at = payload_at(data)
    assert data[at + 151 + RTC_SUB] == 0x7E
    twin = migration.restore(data)
    assert twin.hpet.hpet_offset == (state.hpet_counter * 10 - ARMED_NOW) & U64
    assert (ARMED_NOW + state.hpet_offset) % 10 == 3 and (ARMED_NOW + twin.hpet.hpet_offset) % 10 == 0
    assert twin.hpet.counter() == m.hpet.counter()
    for machine in (m, twin):
        machine.clock_step(7)
    assert m.hpet.counter() == twin.hpet.counter() + 1


# -- QEMU's conversions on load -------------------------------------------------------------
def five_timers() -> HpetState:
    state = fresh()
    state.num_timers = 5
    state.timer += [dataclasses.replace(state.timer[0], tn=3), dataclasses.replace(state.timer[0], tn=4)]
    state.stray_timer = pristine(5)
    return state


def test_more_timers_rebuild_the_capability_and_a_pristine_stray():
    m = PcMachine()
    m.hpet.set_state(five_timers())
    data = migration.save(m)
    assert data[payload_at(data) + 24] == 5
    twin = migration.restore(data)
    assert twin.hpet.num_timers == 5 and twin.mem_read(0xFED00000, 4) == 0x8086A401
    assert twin.hpet.get_state().stray_timer == pristine(5)
    assert twin.hpet.get_state() == m.hpet.get_state()


def test_v1_sets_three_timers_and_the_destination_keeps_its_comparator_3():
    """QEMU's pre_load: a v1 stream has 3 timers, whatever the destination
    had; its comparator 3 stays as it was and is now the stray one."""
    dest = five_timers()
    dest.timer[3].cmp = 0xABCD
    into = copy.deepcopy(dest)
    data = pack(HPET, 1, handmade())
    load_section(HPET, 1, data, 0, into, NOW, "hpet")
    assert into.num_timers == 3 and len(into.timer) == 3
    assert into.stray_timer == dest.timer[3]
    assert into == dataclasses.replace(handmade(), stray_timer=dest.timer[3])


def test_the_destination_keeps_its_own_stray_comparator():
    into = fresh()
    into.stray_timer = HpetTimerState(3, 0x4C, 0x77, 0, 0x10, 0, -1)
    kept = copy.deepcopy(into.stray_timer)
    load_section(HPET, 2, pack(HPET, 2, handmade()), 0, into, NOW, "hpet")
    assert into.stray_timer == kept


def test_without_its_subsection_the_rtc_level_is_0():
    into = fresh()
    into.rtc_irq_level = 1
    load_section(HPET, 2, pack(HPET, 2, dataclasses.replace(handmade(), rtc_irq_level=0)), 0, into, NOW, "hpet")
    assert into.rtc_irq_level == 0


def test_msi_follows_timer_0s_fsb_capability():
    state = dataclasses.replace(handmade(), msi=True)
    for t in state.timer:
        t.config |= TN_FSB_CAP
    into = fresh()
    load_section(HPET, 2, pack(HPET, 2, state), 0, into, NOW, "hpet")
    assert into.msi is True and into == state


def test_isr_bit_of_the_stray_comparator_is_accepted():
    """A guest can enable and fire comparator 3 through the off-by-one check;
    its ISR bit then travels although the comparator does not."""
    m = armed()
    m.mem_write(0xFED00160, 4, 0x6)          # comparator 3: level, enabled
    m.mem_write(0xFED00168, 4, 0)
    m.clock_step(10)
    assert m.hpet.isr & 0x8
    twin = migration.restore(migration.save(m))
    assert twin.hpet.isr == m.hpet.isr


# -- versions and subsections ----------------------------------------------------------------
@pytest.mark.parametrize("name", [b"hpet/offset", b"hpet/rtc_irq_level"])
def test_subsection_version_2_is_refused(name):
    data = bytearray(migration.save(armed()))
    at = data.index(bytes([0x05, len(name)]) + name) + 2 + len(name)
    struct.pack_into(">I", data, at, 2)
    with pytest.raises(VersionTooNew) as err:
        migration.decode(bytes(data), PcMachine())
    assert (err.value.path, err.value.offset) == (name.decode(), at)


# -- every validation rule, broken on its own ---------------------------------------------------
def _timer(i, **values):
    def mutate(hpet):
        for name, value in values.items():
            setattr(hpet.timer[i], name, value)
    return mutate


def _hpet(**values):
    def mutate(hpet):
        for name, value in values.items():
            setattr(hpet, name, value)
    return mutate


def _then(*mutations):
    def mutate(hpet):
        for m in mutations:
            m(hpet)
    return mutate


def _or_config(i, bits):
    def mutate(hpet):
        hpet.timer[i].config |= bits
    return mutate


def _period_bit_63(hpet):
    hpet.timer[2].period = 1 << 63


def _halted_but_armed(hpet):
    hpet.config = 0
    hpet.isr = 0
    hpet.timer[2].expire = -1


PAYLOAD = 0
AFTER_TIMERS = TIMER_AT + 3 * TIMER_SIZE       # 151


def _in_timer(i, name):
    return TIMER_AT + TIMER_SIZE * i + TIMER_FIELDS[name][0]


# (path, mutation, offset in the payload, message or None for a field's own rule).
# A rule across fields points at the bytes of the field it names.
ISR_AT, COUNTER_AT = 8, 16
RULES = [
    ("config", _hpet(config=0x5), 0, None),
    ("config", _hpet(config=1 | 1 << 32), 0, None),
    ("num_timers", _hpet(num_timers=2), 24, None),
    ("num_timers", _hpet(num_timers=33), 24, None),
    ("timer[1].config", _or_config(1, 0x80), _in_timer(1, "config"), None),
    ("timer[1].config", _or_config(1, 0x10000), _in_timer(1, "config"), None),
    ("timer[0].config", _or_config(0, 0xFF0000 << 32), _in_timer(0, "config"), None),
    ("timer[2].wrap_flag", _timer(2, wrap_flag=2), _in_timer(2, "wrap_flag"), None),
    ("/rtc_irq_level.rtc_irq_level", _hpet(rtc_irq_level=2), AFTER_TIMERS + RTC_SUB - 1, None),
    ("timer[2].period", _period_bit_63, _in_timer(2, "period"),
     "in 32-bit mode the period's high half is written masked to 31 bits"),
    ("timer[1].tn", _timer(1, tn=2), _in_timer(1, "tn"), "timer 1 must carry tn 1"),
    ("timer[1].config", _or_config(1, TN_FSB_CAP), _in_timer(1, "config"), "FSB capability (MSI) is the same on every timer"),
    ("isr", _hpet(isr=0x21), ISR_AT, "ISR bits exist only for the timers (and the stray one past them)"),
    ("isr", _hpet(isr=0x11), ISR_AT, "ISR bits exist only for the timers (and the stray one past them)"),
    ("isr", _then(_hpet(isr=0x3), _or_config(1, TN_FSB_ENABLE)), ISR_AT,
     "an ISR bit needs the HPET and its timer enabled, with FSB delivery off"),
    ("isr", lambda hpet: setattr(hpet.timer[0], "config", hpet.timer[0].config & ~TN_ENABLE), ISR_AT,
     "an ISR bit needs the HPET and its timer enabled, with FSB delivery off"),
    ("hpet_counter", _hpet(hpet_counter=U64 // 10 + 1, hpet_offset=None), COUNTER_AT,
     "an enabled HPET's counter is (now + offset) mod 2**64 / 10"),
    ("timer[1].qemu_timer", _halted_but_armed, _in_timer(1, "qemu_timer"), "a halted HPET has no armed timer"),
    ("timer[1].qemu_timer", _timer(1, expire=ARMED_NOW), _in_timer(1, "qemu_timer"),
     "an enabled HPET's deadlines are after now and within hpet_arm's limit"),
    ("timer[2].qemu_timer", _timer(2, expire=-2), _in_timer(2, "qemu_timer"),
     "an enabled HPET's deadlines are after now and within hpet_arm's limit"),
    ("timer[2].qemu_timer", _timer(2, expire=ARMED_NOW + ARM_LIMIT_NS), _in_timer(2, "qemu_timer"),
     "an enabled HPET's deadlines are after now and within hpet_arm's limit"),
    ("/offset.hpet_offset", lambda hpet: setattr(hpet, "hpet_offset", hpet.hpet_offset + 7), AFTER_TIMERS + RTC_SUB
     + OFFSET_HEADER, "an enabled HPET's counter must be (now + hpet_offset) / 10 at the stream's time"),
]


def _stream_with(monkeypatch, hpet, versions=None):
    source = armed()
    monkeypatch.setattr(source.hpet, "get_state", lambda: copy.deepcopy(hpet))
    return migration.save(source, versions)


def _refused(data, error=InvalidField):
    return sectionbytes.refused(data, elsewhere(), error)


@pytest.mark.parametrize("path, mutate, offset, message", RULES, ids=[f"{r[0]}-{i}" for i, r in enumerate(RULES)])
def test_rule(monkeypatch, path, mutate, offset, message):
    hpet = armed().hpet.get_state()
    assert broken(hpet, ARMED_NOW) == []
    mutate(hpet)
    assert broken(hpet, ARMED_NOW) == [path]
    data = _stream_with(monkeypatch, hpet)
    at = payload_at(data)
    if path.startswith("timer[") and message is None:
        index, name = int(path[6]), path.split(".")[1]
        value = struct.unpack_from(TIMER_FIELDS[name][1], data, at + offset)[0]
        assert value == getattr(hpet.timer[index], name)
    err = _refused(data)
    assert (err.path, err.offset) == ("hpet" + ("" if path.startswith("/") else ".") + path, at + offset)
    if message is None:
        assert "is not valid" in err.message
    else:
        assert err.message == message


def test_v1_streams_are_validated_too(monkeypatch):
    hpet = armed().hpet.get_state()
    hpet.timer[1].tn = 0
    data = _stream_with(monkeypatch, hpet, versions={"hpet": 1})
    err = _refused(data)
    assert (err.path, err.offset) == ("hpet.timer[1].tn", payload_at(data) + _in_timer(1, "tn") - 1)


def test_the_count_is_refused_before_any_timer_is_read():
    """CVE-2013-4527: 200 timers claimed, 3 present; refused at the count."""
    data = bytearray(migration.save(armed()))
    at = payload_at(data)
    data[at + 24] = 200
    err = _refused(bytes(data))
    assert (type(err), err.path, err.offset) == (InvalidField, "hpet.num_timers", at + 24)


def test_every_rule_has_a_case():
    """Each field rule and each check (the per-timer ones for some timer)
    is broken by a case above."""
    paths = {p for p, *_ in RULES}
    messages = {m for *_, m in RULES if m}
    assert {e.name for e in HPET.fields if isinstance(e, Field) and e.valid} <= paths
    for name in (e.name for e in HPET_TIMER.fields if e.valid):
        assert any(p.startswith("timer[") and p.endswith("." + name) for p in paths), name
    assert {f"/rtc_irq_level.{e.name}" for e in RTC_IRQ_LEVEL.fields if e.valid} <= paths
    checks = {c.message for d in (HPET, HPET_TIMER, OFFSET) for c in d.checks}
    assert {m for m in checks if not m.endswith("must carry tn " + m.split()[1])} <= messages
    assert "timer 1 must carry tn 1" in messages


# -- the hypothesis strategy: valid HPET states ------------------------------------------------
U64S = st.integers(0, U64)


@st.composite
def hpet_states(draw, halted_offset: int | None = 0):
    """(now, state) with every rule holding.  A halted state's offset is
    ``halted_offset``: the stream does not carry it and a destination keeps
    its own (a fresh machine's is 0)."""
    now = draw(st.integers(0, 1 << 50))
    n = draw(st.one_of(st.integers(3, 5), st.integers(3, 32)))
    enabled = draw(st.booleans())
    fsb_cap = draw(st.sampled_from([0, TN_FSB_CAP]))
    timers = []
    for i in range(n):
        config = RESET_CAPS | fsb_cap | draw(st.integers(0, 0xFFFF)) & TN_CFG_WRITE_MASK
        period = draw(U64S) & (U64 >> 1 if config & TN_32BIT else U64)
        expire = draw(st.one_of(st.just(-1), st.integers(now + 1, now + ARM_LIMIT_NS - 1))) if enabled else -1
        timers.append(HpetTimerState(i, config, draw(U64S), draw(U64S), period, draw(st.integers(0, 1)), expire))
    isr = 0
    for i, t in enumerate(timers):
        if enabled and t.config & TN_ENABLE and not t.config & TN_FSB_ENABLE and draw(st.booleans()):
            isr |= 1 << i
    if n < 24 and draw(st.booleans()):
        isr |= 1 << n
    if enabled:
        offset = draw(st.one_of(st.none(), U64S))
        counter = draw(st.integers(0, U64 // 10)) if offset is None else ((now + offset) & U64) // 10
    else:
        offset, counter = halted_offset, draw(U64S)
    state = HpetState(config=int(enabled) | draw(st.integers(0, 1)) << 1, isr=isr, hpet_counter=counter,
                      num_timers=n, timer=timers, rtc_irq_level=draw(st.integers(0, 1)), hpet_offset=offset,
                      stray_timer=pristine(n) if n < 32 else None, msi=bool(fsb_cap))
    return now, state


def plain(value):
    """construct's containers as plain dicts and lists, without ``_io``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _versions(state):
    return [1, 2] if state.num_timers == 3 else [2]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(hpet_states(), st.data())
def test_hypothesis_round_trip_through_the_section_codec(generated, data):
    now, hpet = generated
    version = data.draw(st.sampled_from(_versions(hpet)))
    assert broken(hpet, now, version) == []
    payload = pack(HPET, version, hpet)
    assert len(payload) == HPET.size(version, hpet) + 25 * (hpet.rtc_irq_level != 0) \
        + 25 * (bool(hpet.config & 1) and hpet.hpet_offset is not None)
    into = fresh()
    assert load_section(HPET, version, payload, 0, into, now, "hpet") == len(payload)
    assert into == hpet


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(hpet_states(), st.data())
def test_hypothesis_fast_path_is_constructs_bytes(generated, data):
    _, hpet = generated
    version = data.draw(st.sampled_from(_versions(hpet)))
    container = to_container(HPET, version, hpet)
    reference = HPET.construct(version)
    fast = b"".join(HPET.fast(version).pack(hpet, [], {}))
    assert fast == reference.build(container)
    assert plain(reference.parse(fast)) == container


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(hpet_states(halted_offset=None), st.data())
def test_hypothesis_round_trip_through_migration(generated, data):
    now, hpet = generated
    m = PcMachine()
    m.clock.load(now)
    m.hpet.set_state(hpet)
    version = data.draw(st.sampled_from(_versions(hpet)))
    twin = migration.restore(migration.save(m, versions={"hpet": version}))
    expected = m.hpet.get_state()
    if not hpet.config & 1:
        expected.hpet_offset = 0     # halted: the fresh destination keeps its own
    assert twin.hpet.get_state() == expected
    assert [t.timer.expire for t in twin.hpet.timers] == [t.timer.expire for t in m.hpet.timers]


# -- mid-operation: the restored machine answers as the original -------------------------------
def through_the_bytes(machine, command):
    return migration.restore(migration.save(machine))


def test_fixture_trace_prints_what_qemu_printed_across_a_migration_through_the_bytes():
    """QEMU's output for the whole fixture trace, its ``migrate`` a real
    migration, is ours with ``migrate`` going through our stream."""
    qemu = (STREAMS / f"{ARMED}.qemu").read_text().splitlines()
    m = PcMachine()
    assert list(Runner(m, through_the_bytes).run(parse_trace((STREAMS / f"{ARMED}.trace").read_text()))) == qemu


def twins(setup: str, after: str):
    """Run ``setup`` (qtest lines), migrate through the bytes into a fresh
    machine, then run ``after`` on the original and on the restored machine,
    each with its own copy of the client's session: the replies and the
    observation records (reads, interrupt edges, clock) must be equal."""
    m = PcMachine()
    list(Runner(m).run(parse_trace(setup)))
    assert m.session.intercepting
    twin = migration.restore(migration.save(m))
    twin.session = copy.deepcopy(m.session)
    for machine in (m, twin):
        machine.session.observations = Observations()
    commands = parse_trace(after)
    replies = [list(Runner(machine).run(commands)) for machine in (m, twin)]
    assert replies[0] == replies[1]
    assert m.session.observations.events == twin.session.observations.events
    assert twin.hpet.get_state() == m.hpet.get_state()
    return m, twin, replies[0]


def test_armed_comparator_periodic_timer_and_asserted_level_interrupt():
    setup, _, rest = (STREAMS / f"{ARMED}.trace").read_text().partition("\nmigrate\n")
    m, twin, replies = twins(setup, rest)
    edges = m.session.observations.edges()
    assert {e.line for e in edges} == {2, 11, 23}
    assert any(e.line == 2 and e.level == 0 for e in edges)     # the level interrupt, acknowledged


def test_periodic_timer_in_legacy_mode_mid_period():
    """Timer 0 periodic every 1000 ticks and timer 1 level-triggered, routed
    to GSI 0 and 8 by legacy replacement, migrated 3 ns into a tick; then
    legacy replacement is dropped and the block halted."""
    setup = "\n".join([
        "irq_intercept_in ioapic",
        "writel 0xfed00100 0x4c", "writel 0xfed00108 0x3e8", "writel 0xfed00108 0x3e8",
        "writel 0xfed00120 0x6", "writel 0xfed00128 0x1388",
        "writel 0xfed00010 0x3", "clock_step 25003", ""])
    after = "\n".join([
        "readl 0xfed000f0", "readl 0xfed00020", "clock_step 7", "readl 0xfed000f0", "clock_step 40000",
        "readl 0xfed00020", "writel 0xfed00020 0x2", "readl 0xfed00020", "writel 0xfed00010 0x1",
        "clock_step 20000", "writel 0xfed00010 0x0", "readl 0xfed000f0", "clock_step 20000",
        "readl 0xfed000f0", ""])
    m, twin, replies = twins(setup, after)
    assert {e.line for e in m.session.observations.edges()} >= {0, 8}


def test_32bit_one_shot_waiting_for_the_wrap():
    """Timer 2 32-bit one-shot, level-triggered on GSI 2: the wrap
    interrupt, then the comparator's own."""
    setup = "\n".join([
        "irq_intercept_in ioapic", "writel 0xfed000f0 0xfffff000", "writel 0xfed00140 0x506", "writel 0xfed00148 0x80",
        "writel 0xfed00010 0x1", "clock_step 1000", ""])
    after = "\n".join(["readl 0xfed00020", "clock_step 40950", "readl 0xfed00020", "writel 0xfed00020 0x4",
                       "clock_step 2000", "readl 0xfed00020", "readl 0xfed00148", ""])
    m, twin, replies = twins(setup, after)
    assert m.hpet.timers[2].wrap_flag == 0
    assert len([e for e in m.session.observations.edges() if e.line == 2 and e.level]) == 2
