"""The QEVM container and machine save/restore: framing, refusals, and a
destination left exactly as it was whenever a load fails."""
import copy
import dataclasses
import struct

import pytest

from realstream import real_stream
from schemas import SECTIONS, by_idstr
from schemas.hpet import pristine
from sectionbytes import payload_at, refused
from vmstate.machine import migration
from vmstate.wire import stream
from vmstate.core.errors import (InvalidField, MalformedStream, NotAStream, StreamError, TrailingData, TruncatedStream,
                                 UnknownSection, UnknownSubsection, UsageError, VersionTooNew, VersionTooOld)
from vmstate.machine.pc import PcMachine, Session

PM_ON = [(0xCF8, 0x80000B40), (0xCFC, 0x601), (0xCF8, 0x80000B80), (0xCFC, 0x1)]


def busy_machine() -> PcMachine:
    m = PcMachine()
    for port, value in PM_ON:
        m.io_write(port, 4, value)
    m.io_write(0x600, 2, 1)          # acknowledge TMR_STS
    m.io_write(0x602, 2, 1)          # TMR_EN: the PM timer is armed
    m.clock_step(1_000_000)
    return m


def _out_of_range():
    for schema in SECTIONS:
        d = schema.description
        yield pytest.param(schema.idstr, d.version + 1, VersionTooNew, id=f"{schema.device}-v{d.version + 1}")
        for version in sorted({d.minimum - 1, 0}):
            yield pytest.param(schema.idstr, version, VersionTooOld, id=f"{schema.device}-v{version}")


@pytest.mark.parametrize("idstr, version, error", list(_out_of_range()))
def test_every_sections_versions_out_of_range_are_refused_at_the_version_field(idstr, version, error):
    """Above the version a destination loads, or below the description's
    minimum: refused, naming the section and the offset of its version
    field, and nothing is applied."""
    data = bytearray(migration.save(busy_machine()))
    at = payload_at(bytes(data), idstr)
    struct.pack_into(">I", data, at - 4, version)
    err = refused(bytes(data), busy_machine(), error)
    assert (err.path, err.offset) == (idstr, at - 4)


@pytest.mark.parametrize("schema", SECTIONS, ids=[s.device for s in SECTIONS])
def test_every_sections_unknown_subsection_is_refused_where_it_starts(schema):
    """A subsection named for the section but unknown to its description
    (QEMU: -ENOENT) after the known ones: refused at its first byte."""
    data = migration.save(busy_machine())
    span = next(s for s in stream.layout(data, lambda idstr: getattr(by_idstr(idstr), "description", None)).sections
                if s.idstr == schema.idstr)
    end = span.end - 5                       # the footer
    name = f"{schema.description.name}/lost_ticks".encode()
    sub = bytes([0x05, len(name)]) + name + struct.pack(">I", 1) + bytes(4)
    err = refused(data[:end] + sub + data[end:], busy_machine(), UnknownSubsection)
    assert (err.path, err.offset) == (schema.idstr, end)
    assert name.decode() in err.message


def states(m: PcMachine) -> dict:
    return copy.deepcopy(m.get_state())


def test_header_configuration_and_first_section_by_hand():
    data = migration.save(PcMachine())
    assert data[:8] == b"QEVM" + struct.pack(">I", 3)
    assert data[8:13] == b"\x07" + struct.pack(">I", 13) and data[13:26] == b"pc-i440fx-7.2"
    # FULL section 0 "timer" instance 0 version 2: cpu_ticks_offset, 8 unused, cpu_clock_offset
    assert data[26:32] == b"\x04" + struct.pack(">I", 0) + b"\x05"
    assert data[32:45] == b"timer" + struct.pack(">II", 0, 2)
    assert data[45:69] == bytes(8) + bytes(8) + struct.pack(">q", 0)
    assert data[69:74] == b"\x7e" + struct.pack(">I", 0)


def test_the_stream_ends_with_eof_and_qemus_json_description():
    data = migration.save(PcMachine())
    at = data.index(b'{"page_size"') - 6
    assert data[at] == 0x00 and data[at + 1] == 0x06
    (length,) = struct.unpack_from(">I", data, at + 2)
    assert at + 6 + length == len(data)
    loaded = migration.decode(data, PcMachine())
    assert [d["name"] for d in loaded.description["devices"]] == [s.idstr for s in loaded.sections]


def test_restore_resumes_at_the_saved_virtual_time_with_the_timer_armed():
    m = busy_machine()
    twin = migration.restore(migration.save(m))
    assert twin.clock.now == 1_000_000
    assert twin.get_state() == m.get_state()
    assert twin.pm.timer.expire == m.pm.timer.expire != -1


def test_save_restore_save_gives_identical_bytes():
    data = migration.save(busy_machine())
    assert migration.save(migration.restore(data)) == data


def test_a_version_outside_the_descriptions_range_cannot_be_written():
    with pytest.raises(UsageError):
        migration.save(PcMachine(), versions={"piix4_pm": 2})


@pytest.mark.parametrize("mutate, error", [
    (lambda d: b"QEVN" + d[4:], NotAStream),
    (lambda d: d[:4] + struct.pack(">I", 2) + d[8:], NotAStream),
    (lambda d: d[:13] + b"pc-q35-7.2---" + d[26:], MalformedStream),
    (lambda d: d + b"\x00", TrailingData),
    (lambda d: d[:26] + b"\x09" + d[27:], MalformedStream),
    (lambda d: d[:26] + b"\x01" + d[27:], MalformedStream),
    (lambda d: d[:32] + b"tymer" + d[37:], UnknownSection),
    (lambda d: d[:41] + struct.pack(">I", 3) + d[45:], VersionTooNew),
    (lambda d: d[:41] + struct.pack(">I", 0) + d[45:], VersionTooOld),
    (lambda d: d[:69] + b"\x7d" + d[70:], MalformedStream),
    (lambda d: d[:70] + struct.pack(">I", 9) + d[74:], MalformedStream),
    (lambda d: d[:61] + struct.pack(">q", -5) + d[69:], StreamError),
])
def test_each_malformation_has_its_own_error_and_changes_nothing(mutate, error):
    source = busy_machine()
    data = mutate(migration.save(source))
    dest = busy_machine()
    dest.clock_step(5)
    before = states(dest)
    with pytest.raises(error):
        migration.restore(data, dest)
    assert states(dest) == before


def test_every_truncation_is_a_typed_error_naming_an_offset_and_the_section():
    """Except one: a stream may end right after its EOF marker, without the
    JSON description (QEMU's suppress-vmdesc).  A cut inside a section's
    bytes names that section, once its name has been read (before, its
    place: ``(section 3)``); elsewhere the part of the framing."""
    data = migration.save(busy_machine())
    after_eof = data.index(b'{"page_size"') - 5
    assert migration.restore(data[:after_eof]).get_state() == busy_machine().get_state()
    spans = stream.layout(data, lambda idstr: by_idstr(idstr).description).sections
    cuts = set(range(0, 3300)) | set(range(after_eof - 40, len(data) - 1, 97))
    for cut in sorted(cuts - {after_eof}):
        dest = PcMachine()
        with pytest.raises(StreamError) as caught:
            migration.restore(data[:cut], dest)
        err = caught.value
        assert err.offset is not None and err.path, (cut, err)
        inside = [(i, s) for i, s in enumerate(spans, start=1) if s.start < cut < s.end]
        if inside:
            i, span = inside[0]
            named = cut >= span.start + 1 + 4 + 1 + len(span.idstr)     # type, id, length, name
            assert err.path.startswith(span.idstr if named else f"(section {i})"), (cut, err)


def test_a_bad_json_description_is_refused():
    data = migration.save(PcMachine())
    at = data.index(b'{"page_size"')
    with pytest.raises(MalformedStream, match="JSON"):
        migration.restore(data[:at] + b"[" + data[at + 1:], PcMachine())


def test_a_lying_description_length_is_bounded():
    data = migration.save(PcMachine())
    at = data.index(b'{"page_size"') - 4
    with pytest.raises(MalformedStream, match="beyond"):
        migration.restore(data[:at] + struct.pack(">I", 1 << 31) + data[at + 4:], PcMachine())


def test_duplicate_sections_are_refused():
    data = migration.save(PcMachine())
    timer = data[26:74]
    dup = data[:74] + timer + data[74:]
    with pytest.raises(MalformedStream, match="twice"):
        migration.restore(dup, PcMachine())


def test_a_real_qemu_stream_is_refused_cleanly_for_its_ram_sections():
    """QEMU's streams carry RAM as iterative sections; loading one as device
    state is refused with a clear error, not a traceback."""
    with pytest.raises(MalformedStream, match="iterative"):
        migration.restore(real_stream(), PcMachine())


def test_decode_does_not_touch_the_destination():
    data = migration.save(busy_machine())
    dest = PcMachine()
    before = states(dest)
    loaded = migration.decode(data, dest)
    assert states(dest) == before
    assert loaded.sections[0].idstr == "timer"


def test_the_json_description_is_written_once_per_shape():
    a = migration.save(PcMachine())
    b = migration.save(busy_machine())
    tail = lambda d: d[d.index(b'{"page_size"') - 5:]
    assert tail(a) == tail(b)
    assert stream._described is not None


@pytest.mark.parametrize("byte, value, refused_", [(0x00, 0xFF, True), (0x02, 0xFF, True), (0x08, 0x04, True),
                                                    (0x0E, 0x80, True), (0x06, 0x90, True), (0x06, 0x80, False),
                                                    (0x0D, 0x40, False), (0x40, 0x01, False), (0x3C, 0x0B, False)])
def test_a_pm_configuration_is_loaded_as_qemus_pci_device_load_loads_it(byte, value, refused_):
    """QEMU refuses a load whose bytes differ from its own function where
    they are read-only and checked (ids, revision, class, header type, the
    capability bit; its "Bad config data"); other bytes load as sent."""
    data = bytearray(migration.save(busy_machine()))
    at = payload_at(bytes(data), "0000:00:01.3/piix4_pm") + 4    # after the PCI device's version
    data[at + byte] = value
    if refused_:
        err = refused(bytes(data), busy_machine(), InvalidField)
        assert (err.path, err.offset) == ("0000:00:01.3/piix4_pm.parent_obj.config[0]", at)
        assert "Bad config data" in err.message
    else:
        assert migration.restore(bytes(data)).pm.config[byte] == value


# -- restoring into a machine that has a life of its own ------------------------------------
HPET_MMIO = 0xFED00000


def _hpet_machine(timers: int) -> PcMachine:
    """An HPET of ``timers`` comparators (a count a stream may carry: 3 to
    32), the first 24 of them (those in the 1 KiB register block) periodic
    on GSI 2 every 50 us, and the counter running, so that every comparator
    left armed would be heard."""
    m = PcMachine()
    state = m.hpet.get_state()
    if timers != len(state.timer):
        state.num_timers = timers
        state.timer = [dataclasses.replace(state.timer[0], tn=n) for n in range(timers)]
        state.stray_timer = pristine(timers)
        m.hpet.set_state(state)
    for n in range(min(timers, 24)):
        base = HPET_MMIO + 0x100 + 0x20 * n
        m.mem_write(base + 4, 4, 0)
        m.mem_write(base, 4, 0x4 | 0x8 | 0x40 | 2 << 9)      # enabled, periodic, value set, GSI 2
        m.mem_write(base + 8, 4, 5_000 + 100 * n)
        m.mem_write(base + 8, 4, 5_000)
    m.mem_write(HPET_MMIO + 0x10, 4, 1)                     # the counter runs
    m.clock_step(123_457)
    return m


def _rises_on_gsi2(m: PcMachine, ns: int) -> int:
    m.session = m.session or Session()
    m.intercept("ioapic")
    before = len(m.session.edges)
    m.clock_step(ns)
    return sum(1 for e in m.session.edges[before:] if e.line == 2 and e.level)


def test_a_stream_without_the_hpet_leaves_the_destinations_hpet_as_reset():
    """QEMU loads into a machine just reset: an armed HPET the stream does
    not mention does not survive the load, and the machine saves again."""
    data = migration.save(busy_machine())
    spans = stream.layout(data, lambda idstr: by_idstr(idstr).description).sections
    hpet = next(s for s in spans if s.idstr == "hpet")
    without = data[:hpet.start] + data[hpet.end:spans[-1].end + 1]
    dest = _hpet_machine(3)
    assert dest.hpet.get_state() != PcMachine().hpet.get_state()
    migration.restore(without, dest)
    assert dest.hpet.get_state() == PcMachine().hpet.get_state()
    assert _rises_on_gsi2(dest, 7_000_000) == 0
    assert migration.restore(migration.save(dest)).get_state() == dest.get_state()


def test_fewer_comparators_after_more_leave_none_of_the_others_armed():
    """A 32-comparator stream, then a 3-comparator one, into the same
    machine: the interrupts that follow are those of the 3-comparator stream
    restored into a fresh machine.  Each periodic comparator interrupts
    twice per 50 us period as QEMU's do (see the fidelity table), 280 times
    in 7 ms."""
    many, few = migration.save(_hpet_machine(32)), migration.save(_hpet_machine(3))
    dest = PcMachine()
    migration.restore(many, dest)
    assert _rises_on_gsi2(dest.clone(), 7_000_000) == 24 * 280
    migration.restore(few, dest)
    fresh = migration.restore(few)
    assert dest.get_state() == fresh.get_state()
    assert _rises_on_gsi2(dest, 7_000_000) == _rises_on_gsi2(fresh, 7_000_000) == 3 * 280
