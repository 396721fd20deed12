"""The description layer: one table gives construct, the fast path and the
JSON description, and they agree."""
import struct
from dataclasses import dataclass, field

import pytest

from realstream import described, real_stream, section
from schemas.piix4_pm import PIIX4_PM
from vmstate.wire.kinds import INT32, TIMER, UINT16, UINT32, UINT8
from vmstate.wire.section import load_section, save_section
from vmstate.wire.table import Buffer, Check, Description, Field, Nested, Subsection, Unused, to_container
from vmstate.core.errors import InvalidField, TruncatedStream, UnknownSubsection, VersionTooNew
from vmstate.machine.pc import PcMachine


@dataclass
class Item:
    a: int = 0
    b: int = 0


@dataclass
class Toy:
    head: int = 0
    newer: int = 7
    n: int = 2
    items: list = field(default_factory=lambda: [Item(1, 2), Item(3, 4)])
    blob: bytes = b"\x00" * 4
    extra: int = 0
    deadline: int = -1


ITEM = Description("item", version=1, minimum=1, fields=[
    Field("a", UINT8, valid=range(0, 100)),
    Field("b", INT32),
])

TOY_EXTRA = Description("toy/extra", version=1, minimum=1, fields=[Field("extra", UINT16)])

TOY = Description("toy", version=3, minimum=1, fields=[
    Field("head", UINT32),
    Field("newer", UINT16, since=2),
    Unused(3),
    Field("n", UINT8, valid=range(0, 9)),
    Nested("items", ITEM, count="n", make=lambda i: Item()),
    Buffer("blob", 4),
    Field("deadline", TIMER),
], subsections=[Subsection(TOY_EXTRA, needed=lambda s: s.extra != 0)],
   checks=[Check("deadline", lambda s: s.deadline == -1 or s.deadline >= s.head, "deadline before head")])


def packed(description, version, state):
    out = []
    save_section(description, version, state, out)
    return b"".join(out)


def loaded(description, version, data, into):
    end = load_section(description, version, data, 0, into, now=0, where=description.name)
    return into, end


def test_fast_path_writes_the_bytes_construct_builds():
    state = Toy(head=0x01020304, newer=0xBEEF, items=[Item(5, -1), Item(6, 7)], blob=b"abcd", deadline=99)
    for version in (1, 2, 3):
        fast = b"".join(TOY.fast(version).pack(state, [], {}))
        assert fast == TOY.construct(version).build(to_container(TOY, version, state))


def test_layout_follows_the_table_by_hand():
    state = Toy(head=0x01020304, newer=0xBEEF, items=[Item(5, -1), Item(6, 7)], blob=b"abcd", deadline=99)
    expected = (bytes.fromhex("01020304")          # head, be32
                + bytes.fromhex("beef")             # newer, be16, since v2
                + bytes(3)                          # unused
                + bytes([2])                        # n
                + bytes([5]) + bytes.fromhex("ffffffff")   # items[0]: a u8, b int32 -1
                + bytes([6]) + bytes.fromhex("00000007")   # items[1]
                + b"abcd"
                + (99).to_bytes(8, "big"))          # deadline, a timer
    assert packed(TOY, 3, state) == expected
    assert packed(TOY, 1, state) == expected[:4] + expected[6:]


def test_a_field_a_version_lacks_keeps_the_destinations_value():
    source = Toy(newer=0x1111)
    data = packed(TOY, 1, source)
    into, end = loaded(TOY, 1, data, Toy(newer=0x2222))
    assert into.newer == 0x2222 and end == len(data)


def test_counted_arrays_resize_the_destination():
    source = Toy(n=3, items=[Item(1, 1), Item(2, 2), Item(3, 3)])
    into, _ = loaded(TOY, 3, packed(TOY, 3, source), Toy())
    assert into.items == source.items


def test_a_count_out_of_range_is_refused_before_any_element_is_read():
    data = bytearray(packed(TOY, 3, Toy()))
    data[9] = 200                                  # n; no element bytes follow for it
    with pytest.raises(InvalidField) as caught:
        loaded(TOY, 3, bytes(data), Toy())
    assert caught.value.path == "toy.n" and caught.value.offset == 9


def test_unused_bytes_are_skipped_on_load():
    data = bytearray(packed(TOY, 3, Toy()))
    data[6:9] = b"\xff\xff\xff"
    into, _ = loaded(TOY, 3, bytes(data), Toy())
    assert into == Toy()


def test_a_field_out_of_range_names_its_path_and_offset():
    data = bytearray(packed(TOY, 3, Toy()))
    data[15] = 150                                 # items[1].a: 4+2+3+1 + 5 bytes of items[0]
    with pytest.raises(InvalidField) as caught:
        loaded(TOY, 3, bytes(data), Toy())
    assert (caught.value.path, caught.value.offset) == ("toy.items[1].a", 15)


def test_a_broken_cross_field_rule_names_its_field():
    data = packed(TOY, 3, Toy(head=100, deadline=50))
    with pytest.raises(InvalidField, match="deadline before head") as caught:
        loaded(TOY, 3, data, Toy())
    assert caught.value.path == "toy.deadline"


def test_truncation_names_the_field_it_cuts():
    data = packed(TOY, 3, Toy())
    with pytest.raises(TruncatedStream) as caught:
        loaded(TOY, 3, data[:12], Toy())
    assert caught.value.path == "toy.items[0].b" and caught.value.offset == 11


def test_subsections_follow_their_needed_rule():
    assert packed(TOY, 3, Toy(extra=0)) == packed(TOY, 3, Toy())
    with_extra = packed(TOY, 3, Toy(extra=0x4242))
    trailer = with_extra[len(packed(TOY, 3, Toy())):]
    assert trailer == bytes([5, 9]) + b"toy/extra" + struct.pack(">I", 1) + b"\x42\x42"
    into, _ = loaded(TOY, 3, with_extra, Toy())
    assert into.extra == 0x4242


def test_unknown_and_too_new_subsections_are_refused():
    base = packed(TOY, 3, Toy())
    with pytest.raises(UnknownSubsection):
        loaded(TOY, 3, base + bytes([5, 9]) + b"toy/other" + struct.pack(">I", 1), Toy())
    with pytest.raises(VersionTooNew):
        loaded(TOY, 3, base + bytes([5, 9]) + b"toy/extra" + struct.pack(">I", 2) + b"\0\0", Toy())


def test_a_subsection_of_another_section_ends_the_loop():
    base = packed(TOY, 3, Toy())
    _, end = loaded(TOY, 3, base + bytes([5, 5]) + b"other", Toy())
    assert end == len(base)


def test_piix4_pm_payload_is_byte_identical_to_qemus():
    """A fresh machine's PM function saves exactly what QEMU 7.2 saved for
    the same (untouched) function."""
    version, payload = section(real_stream(), "0000:00:01.3/piix4_pm")
    assert version == 3 and len(payload) == 2432
    assert packed(PIIX4_PM, 3, PcMachine().pm.get_state()) == payload


def test_piix4_pm_json_description_is_qemus():
    qemu = described(real_stream(), "0000:00:01.3/piix4_pm")
    ours = PIIX4_PM.json(3, PcMachine().pm.get_state())
    assert ours["fields"] == qemu["fields"]
    assert ours["subsections"] == qemu["subsections"]


def test_piix4_pm_golden_bytes_by_offset():
    state = PcMachine().pm.get_state()
    state.pm1_sts, state.pm1_en, state.pm1_cnt = 0x0001, 0x0121, 0x0401
    state.timer_expire, state.overflow_time = 2343484437, 0x800000
    state.gpe_sts, state.gpe_en = 0x0000, 0x0302
    data = packed(PIIX4_PM, 3, state)
    # PCIDevice: version_id (4) + config (256) + irq_state (4 x 4) = 276 bytes
    assert data[0:4] == b"\0\0\0\x02" and data[4:260] == state.config
    assert data[276:282] == bytes.fromhex("0001 0121 0401")
    # APM (2) and SMBus (48) follow: the timer is at 276 + 6 + 2 + 48 = 332
    assert data[332:340] == (2343484437).to_bytes(8, "big")
    assert data[340:348] == (0x800000).to_bytes(8, "big")
    assert data[348:352] == bytes.fromhex("0000 0302")
    # hotplug select (4), 256 x 8 bytes of slots, acpi_index (4): 2408 bytes of fields
    assert data[2408:] == bytes([5, 14]) + b"piix4_pm/memhp" + struct.pack(">II", 1, 0)


def test_schema_source_prints_the_generated_code_naming_each_field():
    from click.testing import CliRunner

    from vmstate.cli import main

    result = CliRunner().invoke(main, ["schema", "source", "pit", "3"])
    assert result.exit_code == 0, result.output
    assert "def pack(s, out, aux):" in result.output and "def save(s, out):" in result.output
    assert "channels[0].irq_disabled" in result.output and "e0.latched_count = v1" in result.output
    assert CliRunner().invoke(main, ["schema", "source", "pit", "1"]).exit_code == 2
    assert CliRunner().invoke(main, ["schema", "source", "floppy"]).exit_code == 2
