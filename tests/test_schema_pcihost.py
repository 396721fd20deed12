"""The ``PCIHost`` section (v1): the i440fx host bridge's configuration
address (port 0xcf8), one be32 ``config_reg`` and nothing else
(hw/pci/pci_host.c, vmstate_pcihost).  Bytes by hand, QEMU 7.2's own bytes
and JSON, round trips, the version rules, and a guest that migrates between
writing 0xcf8 and reading 0xcfc.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.pci import PciHostState
from realstream import described, real_stream, section
import sectionbytes
from schemas import SECTIONS
from schemas.pcihost import PCIHOST
from vmstate.machine import migration
from vmstate.wire.section import load_section
from vmstate.wire.table import to_container

from vmstate.machine.pc import PcMachine

STREAMS = ["qemu-7.2-pc-pit-channel2.bin", "qemu-7.2-pc-hpet-armed.bin"]


def pack(state) -> bytes:
    return sectionbytes.pack(PCIHOST, 1, state)


def payload_at(data: bytes, idstr: str = "PCIHost") -> int:
    return sectionbytes.payload_at(data, idstr)


def latched(address: int) -> PcMachine:
    m = PcMachine()
    m.io_write(0xCF8, 4, address)
    return m


states = sectionbytes.states


def test_size_order_and_json_are_qemus():
    """Four bytes, written second, right after the ``timer`` section, and
    described as QEMU describes it (a fresh machine's is what both fixture
    streams carry: QEMU's guest never touched 0xcf8)."""
    assert PCIHOST.size(1) == 4
    assert [s.idstr for s in SECTIONS][:2] == ["timer", "PCIHost"]
    for name in STREAMS:
        data = real_stream(name)
        assert section(data, "PCIHost") == (1, bytes(4))
        qemu = described(data, "PCIHost")
        assert PCIHOST.json(1) == {k: v for k, v in qemu.items() if k not in ("name", "instance_id")}
        assert described(migration.save(PcMachine()), "PCIHost") == qemu


def test_golden_bytes_by_hand():
    """Enable bit 31, bus 0, device 1, function 3 (devfn 0x0b), register
    0x40: 0x80000b40, big-endian on the wire."""
    state = PciHostState(0x80000B40)
    assert pack(state) == bytes.fromhex("80000b40")
    assert PCIHOST.construct(1).build(to_container(PCIHOST, 1, state)) == bytes.fromhex("80000b40")
    into = PciHostState(0)
    assert load_section(PCIHOST, 1, bytes.fromhex("80000b40"), 0, into, 0, "PCIHost") == 4
    assert into == state
    data = migration.save(latched(0x80000B40))
    at = payload_at(data)
    assert data[at - 4:at + 5] == bytes.fromhex("00000001" "80000b40" "7e")


def test_qemus_payload_loads_over_a_latched_address():
    _, payload = section(real_stream(STREAMS[1]), "PCIHost")
    into = PciHostState(0x80000B40)
    load_section(PCIHOST, 1, payload, 0, into, 400_003, "PCIHost")
    assert into == PcMachine().pci.get_state() == PciHostState(0)


@given(st.integers(0, (1 << 32) - 1))
def test_hypothesis_any_address_round_trips_and_fast_path_is_constructs(value):
    """Any 32-bit value is one a guest can write with ``outl 0xcf8``."""
    state = PciHostState(value)
    data = pack(state)
    assert data == PCIHOST.construct(1).build(to_container(PCIHOST, 1, state)) == struct.pack(">I", value)
    into = PciHostState(value ^ 0xFFFFFFFF)
    load_section(PCIHOST, 1, data, 0, into, 0, "PCIHost")
    assert into == state
    assert migration.restore(migration.save(latched(value))).pci.config_reg == value


@pytest.mark.parametrize("address, expected", [
    (0x80000000, 0x12378086),      # 00:00.0, Intel 82441FX (i440FX) host bridge: vendor 8086, device 1237
    (0x80000B00, 0x71138086),      # 00:01.3, Intel 82371AB (PIIX4) power management: 8086, 7113
    (0x80000B08, 0x06800003),      # its class (other bridge, 0x0680), revision 3 (hw/acpi/piix4.c)
])
def test_a_guest_migrated_between_0xcf8_and_0xcfc_reads_the_register_it_selected(address, expected):
    """Without config_reg the destination's latch would be 0 (bit 31 clear),
    and the 0xcfc read all ones."""
    m = latched(address)
    twin = migration.restore(migration.save(m))
    assert twin.io_read(0xCFC, 4) == m.io_read(0xCFC, 4) == expected
    assert PcMachine().io_read(0xCFC, 4) == 0xFFFFFFFF
