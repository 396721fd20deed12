"""The ``i8254`` (v2, v3) and ``pcspk`` (v1) sections: exact round trips,
bytes worked out by hand, QEMU 7.2's own bytes, the version rules, every
validation rule broken on its own, and machines migrated mid-operation.

The layout, from QEMU's VMSD (all big-endian):

    i8254 v3 payload, 108 bytes          pit channel, 32 bytes, at 4 + 32 * i
      0  channels[0].irq_disabled u32      +0  count           int32
      4  channels[0..2]           3 x 32   +4  latched_count   u16
    100  channels[0].next_transition_time  +6  count_latched   u8
         (int64)                           +7  status_latched  u8
                                           +8  status          u8
    v2 is the same without the first       +9  read_state      u8
    4 bytes: channels at 32 * i, the      +10  write_state     u8
    last slot at 96, 104 bytes.           +11  write_latch     u8
                                          +12  rw_mode         u8
    pcspk v1: data_on u8,                 +13  mode            u8
    dummy_refresh_clock u8                +14  bcd             u8
                                          +15  gate            u8
                                          +16  count_load_time int64
                                          +24  next_transition_time int64
"""
from __future__ import annotations

import copy
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.i8254 import PitChannelState, PitState
from devices.pcspk import PcspkState
from realstream import STREAMS, described, real_stream, section
import sectionbytes
from schemas import SECTIONS
from schemas.i8254 import FINAL, I8254, PIT_CHANNEL
from schemas.pcspk import PCSPK
from vmstate.machine import migration
from vmstate.wire.section import load_section, save_section
from vmstate.wire.table import Field, Nested, to_container
from vmstate.core.errors import InvalidField, TruncatedStream, VersionTooNew
from vmstate.machine.pc import PcMachine
from vmstate.trace.qtest import Runner, parse_trace

CHANNEL_FIELDS = {"count": (0, ">i"), "latched_count": (4, ">H"), "count_latched": (6, ">B"),
                  "status_latched": (7, ">B"), "status": (8, ">B"), "read_state": (9, ">B"),
                  "write_state": (10, ">B"), "write_latch": (11, ">B"), "rw_mode": (12, ">B"),
                  "mode": (13, ">B"), "bcd": (14, ">B"), "gate": (15, ">B"),
                  "count_load_time": (16, ">q"), "next_transition_time": (24, ">q")}
PAYLOAD = {2: 104, 3: 108}
FINAL_AT = {2: 96, 3: 100}


def channel_at(i: int, version: int = 3) -> int:
    return (4 if version >= 3 else 0) + 32 * i


def blamed_at(path: str, version: int) -> int:
    """Where in the payload the value a rule blames lies: a channel's own
    field, but for channel 0's deadline in v2, the last slot loaded over it."""
    if (path, version) == ("channels[0].next_transition_time", 2):
        return FINAL_AT[2]
    return channel_at(int(path[9]), version) + CHANNEL_FIELDS[path.split(".")[1]][0]


# -- helpers ---------------------------------------------------------------------------
states = sectionbytes.states


def timers(m: PcMachine) -> tuple:
    """What this module's sections carry: the clock, the PIT, port 0x61."""
    return m.clock.now, m.pit.get_state(), m.pcspk.get_state()


def payload_at(data: bytes, idstr: str) -> int:
    """Offset of a FULL section's payload, found by its header: 0x04, be32
    section id, u8 length, idstr, be32 instance id, be32 version."""
    name = bytes([len(idstr)]) + idstr.encode()
    at = data.find(name)
    while data[at - 5] != 0x04:
        at = data.find(name, at + 1)
    return at + len(name) + 8


def run(m: PcMachine, ops) -> list[int]:
    """("out", port, value), ("in", port) or ("step", ns); the values read."""
    reads = []
    for op in ops:
        if op[0] == "out":
            m.io_write(op[1], 1, op[2])
        elif op[0] == "in":
            reads.append(m.io_read(op[1], 1))
        else:
            m.clock_step(op[1])
    return reads


def out(port, value):
    return ("out", port, value)


def inb(port):
    return ("in", port)


def step(ns):
    return ("step", ns)


def busy() -> PcMachine:
    """Channel 0 in mode 2 (rw 3) at 0x2e9c, channel 1 as reset left it
    (never programmed), channel 2 in mode 3 (rw 3) at 0x1000 with its gate
    and the speaker on, 1 ms later."""
    m = PcMachine()
    run(m, [out(0x43, 0x34), out(0x40, 0x9C), out(0x40, 0x2E),
            out(0x61, 0x03), out(0x43, 0xB6), out(0x42, 0x00), out(0x42, 0x10), step(1_000_000)])
    return m


def elsewhere() -> PcMachine:
    """A destination in a state of its own, to see that a refused stream
    leaves it as it was."""
    m = PcMachine()
    run(m, [step(2_500_000), out(0x43, 0x30), out(0x40, 0x11),             # channel 0 half-written
            out(0x61, 0x01), out(0x43, 0xB0), out(0x42, 0x00), out(0x42, 0x40),
            step(100_000), out(0x43, 0x80), inb(0x42), inb(0x61)])          # channel 2 latched, LSB read
    return m


def _holds(rule, value) -> bool:
    if isinstance(rule, (range, frozenset)):
        return value in rule
    return bool(rule(value))


def broken(description, state, version=None, aux=None) -> list[str]:
    """The rules a state breaks: each field rule on each channel, and each check."""
    version = description.version if version is None else version
    aux = {} if aux is None else aux
    found = []
    for e in description.present(version):
        if isinstance(e, Field) and e.valid is not None and e.path and not _holds(e.valid, _get(state, e.path)):
            found.append(e.name)
        elif isinstance(e, Nested):
            for i, item in enumerate(_get(state, e.path)):
                found.extend(f"{e.name}[{i}].{name}" for name in broken(e.description, item))
    found.extend(c.field_name for c in description.checks if not c.holds(state, aux))
    return found


def _get(obj, path):
    for part in path.split("."):
        name, _, index = part.partition("[")
        obj = getattr(obj, name)
        if index:
            obj = obj[int(index[:-1])]
    return obj


# -- sizes and QEMU's JSON -------------------------------------------------------------
def test_sizes_agree_with_qemu():
    assert I8254.size(3) == 108 and I8254.size(2) == 104
    assert PIT_CHANNEL.size(2) == 32
    assert PCSPK.size(1) == 2
    assert len(section(real_stream(), "i8254")[1]) == 108


def test_sections_follow_qemus_order():
    """In the order of a real QEMU 7.2 ``pc`` stream's sections."""
    import json
    data = real_stream()
    text = data[data.find(b'{"page_size"'):]
    order = [d["name"] for d in json.loads(text[:text.rindex(b"}") + 1])["devices"]]
    names = [s.idstr for s in SECTIONS]
    assert [n for n in order if n in names] == names
    assert {"i8254", "pcspk", "mc146818rtc", "hpet", "PCIHost"} <= set(names)


def test_json_description_is_qemus():
    data = real_stream()
    for idstr, description, version in (("i8254", I8254, 3), ("pcspk", PCSPK, 1)):
        qemu = {k: v for k, v in described(data, idstr).items() if k not in ("name", "instance_id")}
        assert description.json(version) == qemu


# -- golden bytes, worked out by hand ---------------------------------------------------
def handmade() -> PitState:
    """A valid state with a distinct value in every field."""
    return PitState(channels=[
        PitChannelState(count=0x2E9C, latched_count=0x1234, count_latched=2, status_latched=1, status=0xB4,
                        read_state=4, write_state=3, write_latch=0x9C, rw_mode=3, mode=2, bcd=0, gate=1,
                        count_load_time=0x0102030405060708, next_transition_time=0x1122334455667788),
        PitChannelState(count=0x10000, latched_count=0xFEDC, count_latched=0, status_latched=1, status=0x86,
                        read_state=0, write_state=0, write_latch=0, rw_mode=0, mode=3, bcd=0, gate=1,
                        count_load_time=-2, next_transition_time=0),
        PitChannelState(count=0x8000, latched_count=0x68B3, count_latched=1, status_latched=0, status=0x13,
                        read_state=1, write_state=1, write_latch=0x7F, rw_mode=1, mode=7, bcd=1, gate=0,
                        count_load_time=5_000_000, next_transition_time=0),
    ], irq_disabled=1, irq_timer=-1)


HANDMADE_CHANNELS = bytes.fromhex(
    # channel 0: count 0x2e9c, latched_count 0x1234, then count_latched 2, status_latched 1,
    # status 0xb4, read_state 4, write_state 3, write_latch 0x9c, rw_mode 3, mode 2, bcd 0, gate 1,
    # count_load_time and next_transition_time as be64
    "00002e9c" "1234" "02 01 b4 04 03 9c 03 02 00 01" "0102030405060708" "1122334455667788"
    # channel 1: count 0x10000, latched 0xfedc, status 0x86 latched, mode 3, gate 1, load time -2
    "00010000" "fedc" "00 01 86 00 00 00 00 03 00 01" "fffffffffffffffe" "0000000000000000"
    # channel 2: count 0x8000, latched 0x68b3 (LSB pending), status 0x13, rw 1, mode 7, bcd, gate 0,
    # loaded at 5,000,000 ns = 0x4c4b40
    "00008000" "68b3" "01 00 13 01 01 7f 01 07 01 00" "00000000004c4b40" "0000000000000000"
)
HANDMADE_V3 = bytes.fromhex("00000001") + HANDMADE_CHANNELS + bytes.fromhex("1122334455667788")
HANDMADE_V2 = HANDMADE_CHANNELS + bytes.fromhex("1122334455667788")


def pack(description, version, state) -> bytes:
    out: list = []
    save_section(description, version, state, out)
    return b"".join(out)


def test_handmade_state_is_valid():
    assert broken(I8254, handmade()) == []


@pytest.mark.parametrize("version, expected", [(3, HANDMADE_V3), (2, HANDMADE_V2)], ids=["v3", "v2"])
def test_golden_bytes_by_hand(version, expected):
    assert len(expected) == PAYLOAD[version]
    state = handmade()
    assert pack(I8254, version, state) == expected
    aux = I8254.pre_save(state, version)
    assert I8254.construct(version).build(to_container(I8254, version, state, aux)) == expected
    into = PcMachine().pit.get_state()
    into.irq_disabled = 1
    assert load_section(I8254, version, expected, 0, into, 0, "i8254") == len(expected)
    assert into == state


def test_golden_fresh_machine_by_hand():
    """After reset at time 0 every channel counts 0x10000 in mode 3; only
    channel 0 has a deadline, half a period on: 32768 input periods,
    floor(32768e9 / 1193182) = 27462700 ns = 0x01a30c2c."""
    data = migration.save(PcMachine())
    at = payload_at(data, "i8254")
    channel = ("00010000" "0000" "00 00 00 00 00 00 00 03 00 {gate}" "0000000000000000" "{ntt}")
    expected = bytes.fromhex(
        "00000000"
        + channel.format(gate="01", ntt="0000000001a30c2c")
        + channel.format(gate="01", ntt="0000000000000000")
        + channel.format(gate="00", ntt="0000000000000000")
        + "0000000001a30c2c")
    assert data[at:at + 108] == expected
    assert data[at + 108] == 0x7E
    at = payload_at(data, "pcspk")
    assert data[at:at + 3] == bytes([0x00, 0x00, 0x7E])


def test_pcspk_golden_bytes_by_hand():
    assert pack(PCSPK, 1, PcspkState(data_on=1, dummy_refresh_clock=0x10)) == bytes([0x01, 0x10])
    into = PcspkState()
    load_section(PCSPK, 1, bytes([0x01, 0x10]), 0, into, 0, "pcspk")
    assert into == PcspkState(1, 0x10)


# -- QEMU 7.2's own stream --------------------------------------------------------------
def after_the_fixture_trace() -> PcMachine:
    """Our machine after the commands the fixture's QEMU ran before migrating
    (fixtures/streams/qemu-7.2-pc-pit-channel2.trace, up to its ``migrate``)."""
    text = (STREAMS / "qemu-7.2-pc-pit-channel2.trace").read_text()
    commands = parse_trace(text)
    before = commands[:[c.name for c in commands].index("migrate")]
    m = PcMachine()
    list(Runner(m).run(before))
    return m


def test_qemus_i8254_payload_is_our_machines_state():
    version, payload = section(real_stream(), "i8254")
    assert version == 3
    ours = after_the_fixture_trace()
    into = copy.deepcopy(PcMachine().pit.get_state())
    assert load_section(I8254, 3, payload, 0, into, 0, "i8254") == 108
    assert into == ours.pit.get_state()
    ch2 = into.channels[2]
    # mode 0, rw 3, count 0x8000 loaded at 0, gate on; the latch read back 0x68b3
    assert (ch2.mode, ch2.rw_mode, ch2.count, ch2.count_load_time, ch2.gate, ch2.latched_count) == \
        (0, 3, 0x8000, 0, 1, 0x68B3)
    assert pack(I8254, 3, ours.pit.get_state()) == payload


def test_qemus_pcspk_payload_is_our_machines_state():
    version, payload = section(real_stream(), "pcspk")
    assert (version, payload) == (1, bytes([0x00, 0x00]))
    ours = after_the_fixture_trace()
    into = PcspkState(1, 0x10)
    load_section(PCSPK, 1, payload, 0, into, 0, "pcspk")
    assert into == ours.pcspk.get_state()
    assert pack(PCSPK, 1, ours.pcspk.get_state()) == payload


def test_our_stream_carries_qemus_i8254_and_pcspk_bytes():
    data = migration.save(after_the_fixture_trace())
    for idstr in ("i8254", "pcspk"):
        assert section(data, idstr) == section(real_stream(), idstr)


# -- round trips ------------------------------------------------------------------------
def test_round_trip_through_migration_v3():
    m = busy()
    run(m, [out(0x43, 0x80), inb(0x42), out(0x43, 0x34), out(0x40, 0x55), out(0x43, 0xE4)])
    data = migration.save(m)
    twin = migration.restore(data)
    assert timers(twin) == timers(m)
    assert twin.pit.irq_timer.expire == m.pit.irq_timer.expire != -1
    again = migration.save(twin)
    assert [section(again, n) for n in ("i8254", "pcspk")] == [section(data, n) for n in ("i8254", "pcspk")]


@pytest.mark.parametrize("destination_irq_disabled", [0, 1])
def test_v2_stream_leaves_irq_disabled_as_a_reset_machine_has_it(destination_irq_disabled):
    """v2 has no irq_disabled; QEMU loads into a machine just reset, whose HPET
    is not in legacy mode, so the interrupt is enabled whatever the
    destination had before the restore."""
    m = busy()
    data = migration.save(m, versions={"i8254": 2})
    at = payload_at(data, "i8254")
    assert struct.unpack_from(">I", data, at - 4) == (2,)
    assert data[at + 104] == 0x7E
    dest = PcMachine()
    dest.pit.irq_control(not destination_irq_disabled)
    migration.restore(data, dest)
    expected = m.pit.get_state()
    expected.irq_disabled = 0
    assert dest.pit.get_state() == expected
    assert dest.pit.irq_timer.expire == expected.irq_timer != -1


def test_v2_round_trip_is_exact_when_the_interrupt_is_enabled():
    m = busy()
    twin = migration.restore(migration.save(m, versions={"i8254": 2}))
    assert timers(twin) == timers(m)


def test_v2_last_slot_wins_over_channel_0s_as_in_qemu():
    """A v2 writer put channels[0].irq_timer's expiry in the last slot (-1
    once old HPET code had deleted the timer); QEMU 7.2 loads it over
    channel 0's next_transition_time, and so do we."""
    m = busy()
    data = bytearray(migration.save(m, versions={"i8254": 2}))
    at = payload_at(data, "i8254")
    struct.pack_into(">q", data, at + FINAL_AT[2], -1)
    twin = migration.restore(bytes(data))
    assert twin.pit.channels[0].next_transition_time == -1
    assert twin.pit.irq_timer.expire == -1


@pytest.mark.parametrize("version", [2, 3])
def test_the_last_slot_is_validated_as_the_deadline_it_becomes(version):
    m = busy()
    data = bytearray(migration.save(m, versions={"i8254": version}))
    at = payload_at(data, "i8254")
    clt = m.pit.channels[0].count_load_time
    struct.pack_into(">q", data, at + FINAL_AT[version], clt)
    if version == 3:
        struct.pack_into(">q", data, at + channel_at(0) + 24, clt)
    dest = elsewhere()
    before = states(dest)
    with pytest.raises(InvalidField) as err:
        migration.restore(bytes(data), dest)
    # The offset is the first byte of the value the rule found wrong: in v2
    # the last slot, loaded over channel 0's; in v3 channel 0's own.
    where = at + blamed_at("channels[0].next_transition_time", version)
    assert (err.value.path, err.value.offset) == ("i8254.channels[0].next_transition_time", where)
    assert states(dest) == before


# -- the hypothesis strategy: valid PIT states ----------------------------------------------
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)


@st.composite
def channel_states(draw, index: int) -> PitChannelState:
    rw_mode = draw(st.integers(0, 3))
    if rw_mode == 0:
        ch = PitChannelState(count=draw(st.sampled_from([*range(1, 0x100), 0x10000])), mode=3,
                             status=draw(st.sampled_from([0x00, 0x06, 0x86])))
    else:
        states_ = [rw_mode, 4] if rw_mode == 3 else [rw_mode]
        status = st.one_of(st.sampled_from([0x00, 0x06, 0x86]),
                           st.builds(lambda o, r, m, b: o << 7 | r << 4 | m << 1 | b,
                                     st.integers(0, 1), st.integers(1, 3), st.integers(0, 7), st.integers(0, 1)))
        ch = PitChannelState(count=draw(st.integers(1, 0x10000)), count_latched=draw(st.integers(0, 3)),
                             status=draw(status), read_state=draw(st.sampled_from(states_)),
                             write_state=draw(st.sampled_from(states_)), write_latch=draw(st.integers(0, 255)),
                             mode=draw(st.integers(0, 7)), bcd=draw(st.integers(0, 1)))
        if ch.count_latched == 1 and ch.read_state == 4:
            ch.read_state = 3           # a byte-wide latch is read before read_state can toggle
    ch.rw_mode = rw_mode
    ch.latched_count = draw(st.integers(0, 0xFFFF))
    ch.status_latched = draw(st.integers(0, 1)) if ch.status else 0
    ch.gate = 1 if index < 2 else draw(st.integers(0, 1))
    ch.count_load_time = draw(INT64 if index else st.integers(-(1 << 62), 1 << 62))
    return ch


@st.composite
def pit_states(draw) -> PitState:
    pit = PitState([draw(channel_states(i)) for i in range(3)], irq_disabled=draw(st.integers(0, 1)))
    ch0 = pit.channels[0]
    later = st.integers(ch0.count_load_time + 1, (1 << 63) - 1)
    ch0.next_transition_time = draw(INT64 if pit.irq_disabled else st.one_of(st.just(-1), later))
    if ch0.next_transition_time != -1 and not pit.irq_disabled:
        pit.irq_timer = ch0.next_transition_time
    return pit


def plain(value):
    """construct's containers as plain dicts and lists, without ``_io``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(pit_states(), st.sampled_from([2, 3]))
def test_hypothesis_round_trip_through_the_section_codec(pit, version):
    assert broken(I8254, pit) == []
    data = pack(I8254, version, pit)
    assert len(data) == PAYLOAD[version]
    into = PcMachine().pit.get_state()
    into.irq_disabled = pit.irq_disabled      # v2 keeps the destination's
    assert load_section(I8254, version, data, 0, into, 0, "i8254") == len(data)
    assert into == pit


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(pit_states(), st.sampled_from([2, 3]))
def test_hypothesis_fast_path_is_constructs_bytes(pit, version):
    aux = I8254.pre_save(pit, version)
    container = to_container(I8254, version, pit, aux)
    reference = I8254.construct(version)
    fast = b"".join(I8254.fast(version).pack(pit, [], aux))
    assert fast == reference.build(container)
    assert plain(reference.parse(fast)) == container


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(pit_states(), st.sampled_from([0, 1]), st.sampled_from([0, 0x10]))
def test_hypothesis_round_trip_through_migration(pit, data_on, refresh):
    m = PcMachine()
    m.pit.set_state(pit)
    m.pcspk.set_state(PcspkState(data_on, refresh))
    twin = migration.restore(migration.save(m))
    assert twin.pit.get_state() == m.pit.get_state() == pit
    assert timers(twin) == timers(m)


@pytest.mark.parametrize("data_on, refresh", [(0, 0), (0, 0x10), (1, 0), (1, 0x10)])
def test_pcspk_fast_path_is_constructs_bytes(data_on, refresh):
    state = PcspkState(data_on, refresh)
    fast = b"".join(PCSPK.fast(1).pack(state, [], {}))
    assert fast == PCSPK.construct(1).build(to_container(PCSPK, 1, state)) == bytes([data_on, refresh])
    assert plain(PCSPK.construct(1).parse(fast)) == {"data_on": data_on, "dummy_refresh_clock": refresh}


CONTROL_WORDS = st.builds(lambda select, access, mode, bcd: select << 6 | access << 4 | mode << 1 | bcd,
                          st.integers(0, 3), st.integers(0, 3), st.integers(0, 7), st.integers(0, 1))
GUEST_OPS = st.one_of(
    st.tuples(st.just("out"), st.sampled_from([0x40, 0x41, 0x42, 0x61]), st.integers(0, 255)),
    st.tuples(st.just("out"), st.just(0x43), CONTROL_WORDS),
    st.tuples(st.just("in"), st.sampled_from([0x40, 0x41, 0x42, 0x42])),
    st.tuples(st.just("in"), st.sampled_from([0x40, 0x41, 0x42, 0x43, 0x61])),
    st.tuples(st.just("step"), st.sampled_from([1, 838, 839, 10_000, 1_000_000, 60_000_000])),
    st.tuples(st.just("irq_control"), st.integers(0, 1)),
    st.tuples(st.just("reset")),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GUEST_OPS, max_size=40))
def test_every_state_the_model_reaches_passes_every_rule(ops):
    """The rules are derived from the model's code paths; any sequence of
    port accesses, clock steps, HPET hand-overs of IRQ 0 and resets must
    leave a state that loads."""
    m = PcMachine()
    for op in ops:
        if op[0] == "irq_control":
            m.pit.irq_control(op[1])
        elif op[0] == "reset":
            m.pit.reset()
        else:
            run(m, [op])
        assert broken(I8254, m.pit.get_state()) == [], op
        assert broken(PCSPK, m.pcspk.get_state()) == [], op
    twin = migration.restore(migration.save(m))
    assert timers(twin) == timers(m)


# -- versions and subsections ---------------------------------------------------------------
def test_a_stream_cut_inside_a_channel_names_the_field():
    data = migration.save(busy())
    at = payload_at(data, "i8254")
    cut = at + channel_at(1) + CHANNEL_FIELDS["latched_count"][0] + 1
    err = _refused(data[:cut], TruncatedStream)
    assert (err.path, err.offset) == ("i8254.channels[1].latched_count", cut - 1)


def test_pcspk_version_2_is_too_new():
    data = bytearray(migration.save(busy()))
    at = payload_at(data, "pcspk")
    struct.pack_into(">I", data, at - 4, 2)
    with pytest.raises(VersionTooNew) as err:
        migration.decode(bytes(data), PcMachine())
    assert (err.value.path, err.value.offset) == ("pcspk", at - 4)


# -- every validation rule, broken on its own ---------------------------------------------------
def _set(index, **values):
    def mutate(pit):
        for name, value in values.items():
            setattr(pit.channels[index], name, value)
    return mutate


# (the rule's path, a mutation of busy()'s PIT state that breaks that rule
# and no other).  A field rule's error points at the field's bytes, a
# check's at the start of what it belongs to: its channel, or the payload.
FIELD_RULES = [
    ("channels[2].count", _set(2, count=0)),
    ("channels[2].count", _set(2, count=0x10001)),
    ("channels[0].count", _set(0, count=-1)),
    ("channels[2].count_latched", _set(2, count_latched=4)),
    ("channels[2].status_latched", _set(2, status_latched=2)),
    ("channels[2].status", _set(2, status=0x46)),
    ("channels[2].status", _set(2, status=0x02)),
    ("channels[2].read_state", _set(2, read_state=5)),
    ("channels[2].write_state", _set(2, write_state=5)),
    ("channels[2].rw_mode", _set(2, rw_mode=4)),
    ("channels[2].mode", _set(2, mode=8)),
    ("channels[2].bcd", _set(2, bcd=2)),
    ("channels[2].gate", _set(2, gate=2)),
]
CHANNEL_CHECKS = [
    ("channels[2].read_state", _set(2, read_state=1)),
    ("channels[2].read_state", _set(2, read_state=4, count_latched=1)),
    ("channels[1].write_state", _set(1, write_state=4)),
    ("channels[1].count_latched", _set(1, count_latched=1)),
    ("channels[2].status_latched", _set(2, status_latched=1, status=0)),
    ("channels[1].status", _set(1, status=0x34)),
    ("channels[1].mode", _set(1, mode=2)),
    ("channels[1].bcd", _set(1, bcd=1)),
    ("channels[1].write_latch", _set(1, write_latch=7)),
    ("channels[1].count", _set(1, count=0x1234)),
]


def _deadline_at_load(pit):
    pit.channels[0].next_transition_time = pit.channels[0].count_load_time


PIT_CHECKS = [
    ("channels[0].gate", _set(0, gate=0)),
    ("channels[1].gate", _set(1, gate=0)),
    ("channels[1].next_transition_time", _set(1, next_transition_time=5)),
    ("channels[2].next_transition_time", _set(2, next_transition_time=5)),
    ("channels[0].next_transition_time", _deadline_at_load),
    ("channels[0].next_transition_time", _set(0, next_transition_time=-2)),
]


def _stream_with(monkeypatch, pit, version=3):
    source = busy()
    monkeypatch.setattr(source.pit, "get_state", lambda: copy.deepcopy(pit))
    return migration.save(source, versions={"i8254": version})


def _refused(data, error=InvalidField):
    return sectionbytes.refused(data, elsewhere(), error)


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("path, mutate", FIELD_RULES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(FIELD_RULES)])
def test_field_rule(monkeypatch, version, path, mutate):
    pit = busy().pit.get_state()
    mutate(pit)
    assert broken(I8254, pit, version) == [path]
    data = _stream_with(monkeypatch, pit, version)
    index, name = int(path[9]), path.split(".")[1]
    field_at = payload_at(data, "i8254") + channel_at(index, version) + CHANNEL_FIELDS[name][0]
    assert struct.unpack_from(CHANNEL_FIELDS[name][1], data, field_at)[0] == getattr(pit.channels[index], name)
    err = _refused(data)
    assert (err.path, err.offset) == (f"i8254.{path}", field_at)
    assert "is not valid" in err.message


def failing_checks(description, state, aux=None) -> list:
    return [c for c in description.checks if not c.holds(state, aux or {})]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("path, mutate", CHANNEL_CHECKS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CHANNEL_CHECKS)])
def test_channel_check(monkeypatch, version, path, mutate):
    pit = busy().pit.get_state()
    mutate(pit)
    assert broken(I8254, pit, version) == [path]
    index = int(path[9])
    (check,) = failing_checks(PIT_CHANNEL, pit.channels[index])
    data = _stream_with(monkeypatch, pit, version)
    err = _refused(data)
    assert (err.path, err.offset) == (f"i8254.{path}", payload_at(data, "i8254") + blamed_at(path, version))
    assert err.message == check.message


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("path, mutate", PIT_CHECKS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(PIT_CHECKS)])
def test_pit_check(monkeypatch, version, path, mutate):
    pit = busy().pit.get_state()
    mutate(pit)
    assert broken(I8254, pit, version) == [path]
    (check,) = failing_checks(I8254, pit)
    data = _stream_with(monkeypatch, pit, version)
    err = _refused(data)
    assert (err.path, err.offset) == (f"i8254.{path}", payload_at(data, "i8254") + blamed_at(path, version))
    assert err.message == check.message


def test_irq_disabled_is_0_or_1(monkeypatch):
    pit = busy().pit.get_state()
    pit.irq_disabled = 2
    assert broken(I8254, pit) == ["channels[0].irq_disabled"]
    data = _stream_with(monkeypatch, pit)
    at = payload_at(data, "i8254")
    assert struct.unpack_from(">I", data, at) == (2,)
    err = _refused(data)
    assert (err.path, err.offset) == ("i8254.channels[0].irq_disabled", at)


def test_v3_last_slot_must_repeat_channel_0s_deadline():
    m = busy()
    data = bytearray(migration.save(m))
    at = payload_at(data, "i8254")
    ntt = m.pit.channels[0].next_transition_time
    assert struct.unpack_from(">q", data, at + channel_at(0) + 24) == (ntt,)
    struct.pack_into(">q", data, at + FINAL_AT[3], ntt + 1)
    pit = m.pit.get_state()
    assert broken(I8254, pit, 3, {FINAL: ntt + 1}) == [FINAL]
    err = _refused(bytes(data))
    assert (err.path, err.offset) == (f"i8254.{FINAL}", at + FINAL_AT[3])


@pytest.mark.parametrize("name, value", [("data_on", 2), ("dummy_refresh_clock", 1),
                                         ("dummy_refresh_clock", 0x11)])
def test_pcspk_rule(name, value):
    m = busy()
    data = bytearray(migration.save(m))
    at = payload_at(data, "pcspk") + {"data_on": 0, "dummy_refresh_clock": 1}[name]
    data[at] = value
    state = m.pcspk.get_state()
    setattr(state, name, value)
    assert broken(PCSPK, state) == [name]
    err = _refused(bytes(data))
    assert (err.path, err.offset) == (f"pcspk.{name}", at)


def test_every_rule_has_a_case():
    """Each field rule and each check of both descriptions is broken by
    some case above."""
    covered = {p.split(".")[1] for p, _ in FIELD_RULES} | {"irq_disabled"}
    assert covered == {e.path for e in PIT_CHANNEL.fields if isinstance(e, Field) and e.valid} | {"irq_disabled"}
    channel_checks = set()
    for path, mutate in CHANNEL_CHECKS:
        pit = busy().pit.get_state()
        mutate(pit)
        channel_checks.update(failing_checks(PIT_CHANNEL, pit.channels[int(path[9])]))
    assert channel_checks == set(PIT_CHANNEL.checks)
    pit_checks = {next(c for c in I8254.checks if c.uses_aux)}
    for _, mutate in PIT_CHECKS:
        pit = busy().pit.get_state()
        mutate(pit)
        pit_checks.update(failing_checks(I8254, pit))
    assert pit_checks == set(I8254.checks)
    assert {e.name for e in I8254.fields if isinstance(e, Field) and e.valid} == {"channels[0].irq_disabled"}
    assert {e.name for e in PCSPK.fields if e.valid} == {"data_on", "dummy_refresh_clock"}


# -- mid-operation: the restored machine answers as the original -------------------------------
def twins(setup, pending, after):
    """Run ``setup``, check that the operation is ``pending`` (on channel
    ``pending[0]``, fields ``pending[1]``), migrate, then run ``after`` on the
    original and on the restored machine: same reads and state at every step."""
    m = PcMachine()
    run(m, setup)
    index, fields = pending
    assert {k: getattr(m.pit.channels[index], k) for k in fields} == fields
    twin = migration.restore(migration.save(m))
    assert timers(twin) == timers(m)
    reads = []
    for op in after:
        got = run(m, [op])
        assert run(twin, [op]) == got, op
        assert timers(twin) == timers(m), op
        reads.extend(got)
    return m, twin, reads


CH2_RUNNING = [out(0x61, 0x01), out(0x43, 0xB4), out(0x42, 0x34), out(0x42, 0x12), step(1_000_000)]


def test_latched_count_with_its_low_byte_read():
    m0 = PcMachine()
    run(m0, CH2_RUNNING + [out(0x43, 0x80)])
    latched = m0.pit.channels[2].latched_count
    m, twin, reads = twins(CH2_RUNNING + [out(0x43, 0x80), inb(0x42)], (2, {"count_latched": 2}),
                           [step(300_000), inb(0x42), inb(0x42), inb(0x42), step(77_777), inb(0x61), inb(0x42)])
    assert m.pit.channels[2].count_latched == 0
    assert reads[0] == latched >> 8


def test_half_written_reload_on_channel_0():
    m, twin, reads = twins([out(0x43, 0x34), out(0x40, 0x00), step(5_000_000), out(0x43, 0x34), out(0x40, 0x9C)],
                           (0, {"write_state": 4, "write_latch": 0x9C}),
                           [step(10_000), out(0x40, 0x2E), step(3_000), out(0x43, 0x00), inb(0x40), inb(0x40),
                            step(25_000_000), inb(0x40), inb(0x40)])
    assert m.pit.channels[0].count == 0x2E9C
    assert twin.pit.irq_timer.expire == m.pit.irq_timer.expire != -1
    assert twin.gsi_levels[0] == m.gsi_levels[0]


def test_read_back_status_and_count_pending():
    m, twin, reads = twins(CH2_RUNNING + [out(0x43, 0xC8)], (2, {"status_latched": 1, "count_latched": 3}),
                           [step(1234), inb(0x42), inb(0x42), inb(0x42), inb(0x42), inb(0x42)])
    status = reads[0]
    assert status & 0x3F == 0x34          # rw 3, mode 2, binary
    assert m.pit.channels[2].status_latched == 0


def test_word_read_between_its_bytes():
    m, twin, reads = twins(CH2_RUNNING + [inb(0x42)], (2, {"read_state": 4}),
                           [inb(0x42), step(50_000), inb(0x42), inb(0x42)])
    assert m.pit.channels[2].read_state == 3


def test_fixture_trace_goes_on_the_same_after_migration():
    """The fixture trace's lines after ``migrate``, on our machine migrated
    through the bytes, print what QEMU printed (0xb7 then 0x5a)."""
    m = after_the_fixture_trace()
    twin = migration.restore(migration.save(m))
    assert run(twin, [step(3_000_000), out(0x43, 0x80), inb(0x42), inb(0x42)]) == [0xB7, 0x5A]
