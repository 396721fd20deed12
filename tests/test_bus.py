"""Address-space dispatch: QEMU's rules for widths, alignment and holes."""
from vmstate.core.bus import AddressSpace, Region, Sizes


def _recording_region(size, **kw):
    calls = []

    def read(offset, width):
        calls.append(("r", offset, width))
        return 0x44332211 >> (8 * (offset % 4)) if offset < 4 else 0x99

    def write(offset, width, value):
        calls.append(("w", offset, width, value))

    return Region("dev", size, read, write, **kw), calls


def test_unassigned_io_reads_all_ones_per_width():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    assert io.read(0x300, 1) == 0xFF
    assert io.read(0x300, 2) == 0xFFFF
    assert io.read(0x301, 4) == 0xFFFFFFFF


def test_unassigned_memory_reads_zero():
    mem = AddressSpace("memory", 1 << 64, unassigned_ones=False)
    assert mem.read(0xFEB00000, 8) == 0


def test_byte_implemented_device_sees_a_word_as_two_byte_accesses():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    region, calls = _recording_region(4, impl=Sizes(1, 1))
    io.map(0x40, region)
    assert io.read(0x40, 2) == 0x2211
    assert calls == [("r", 0, 1), ("r", 1, 1)]
    calls.clear()
    io.write(0x40, 2, 0xBEEF)
    assert calls == [("w", 0, 1, 0xEF), ("w", 1, 1, 0xBE)]


def test_narrow_access_to_a_wide_only_device_is_widened_and_truncated():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    region, calls = _recording_region(4, valid=Sizes(1, 4), impl=Sizes(4, 0))
    io.map(0x600, region)
    assert io.read(0x601, 1) == 0x22
    assert calls == [("r", 1, 4)]


def test_access_outside_valid_sizes_reads_zero_and_never_reaches_the_device():
    mem = AddressSpace("memory", 1 << 64, unassigned_ones=False)
    region, calls = _recording_region(8, valid=Sizes(4, 4))
    mem.map(0x1000, region)
    assert mem.read(0x1000, 1) == 0
    mem.write(0x1000, 2, 0xFFFF)
    assert calls == []


def test_unaligned_access_is_split_by_alignment():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    region, calls = _recording_region(4)
    io.map(0x40, region)
    io.read(0x41, 2)
    assert [c[1:] for c in calls] == [(1, 1), (2, 1)]


def test_an_access_straddling_a_device_and_a_hole_reads_each_part_as_its_own():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    region, _ = _recording_region(4, impl=Sizes(1, 1))
    io.map(0x40, region)
    assert io.read(0x43, 2) == 0xFF44


def test_a_device_access_is_not_cut_at_the_region_end():
    """QEMU clamps only RAM to its section: a 4-byte access to a 2-byte
    device reaches the device with offsets 2 and 3."""
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    region, calls = _recording_region(2, impl=Sizes(1, 1))
    io.map(0x70, region)
    io.read(0x70, 4)
    assert [c[1] for c in calls] == [0, 1, 2, 3]


def test_overlay_wins_where_it_covers():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    base, _ = _recording_region(4)
    over = Region("over", 1, lambda o, s: 0x5A, lambda o, s, v: None)
    io.map(0xCF8, base)
    io.map(0xCF9, over, overlay=True)
    assert io.read(0xCF9, 1) == 0x5A
    assert io.read(0xCF8, 1) == 0x11
    io.unmap(over)
    assert io.read(0xCF9, 1) == 0x22


def test_ram_keeps_what_is_written_little_endian():
    mem = AddressSpace("memory", 1 << 64, unassigned_ones=False)
    mem.ram("ram", 0x100000, 0x1000)
    mem.write(0x100000, 4, 0xDEADBEEF)
    assert mem.read(0x100000, 8) == 0xDEADBEEF
    assert mem.read(0x100002, 2) == 0xDEAD
    assert mem.read(0x100FFF, 2) == 0  # the second byte falls off the RAM end into a hole


def test_overlapping_plain_regions_are_refused():
    io = AddressSpace("io", 0x10000, unassigned_ones=True)
    io.map(0x40, _recording_region(4)[0])
    try:
        io.map(0x42, _recording_region(4)[0])
    except ValueError as err:
        assert "overlaps" in str(err)
    else:
        raise AssertionError("overlap accepted")
