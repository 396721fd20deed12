"""The i8254 PIT and port 0x61, checked against the Intel 8254 datasheet.

Expected values are worked out from the datasheet's arithmetic, not taken
from the model.  The input clock is 1,193,182 Hz, so after t ns the number of
whole input periods that have elapsed since a count was loaded is
floor(t * 1193182 / 1e9), and the first nanosecond at which k periods have
elapsed is ``at(k)`` = ceil(k * 1e9 / 1193182) (one period is ~838.095 ns).

Where QEMU 7.2 departs from the datasheet, a ``test_fidelity_*`` test pins
QEMU's behaviour and its docstring states the datasheet's.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from devices.i8254 import Pit, PitChannelState, PitState
from devices.pcspk import Pcspk, PcspkState
from vmstate.core.bus import AddressSpace
from vmstate.core.clock import VirtualClock
from vmstate.core.irq import IrqLine

FREQ = 1_193_182
TRACES = Path(__file__).resolve().parent.parent / "fixtures" / "traces"


def at(ticks: int, since: int = 0) -> int:
    """First nanosecond at which ``ticks`` input periods have elapsed."""
    return since - (-ticks * 10**9 // FREQ)


def floor_at(ticks: int) -> int:
    """The ``ticks``-period point rounded down to a nanosecond: where QEMU
    arms channel 0's interrupt timer, one nanosecond before ``at(ticks)``
    (1e9 * ticks is a multiple of 1193182 only for multiples of 596591)."""
    return ticks * 10**9 // FREQ


class Rig:
    """A PIT and speaker port on their own I/O space and clock, channel 0's
    interrupt recorded as (time, level) at each change of level."""

    def __init__(self):
        self.clock = VirtualClock()
        self.level = 0
        self.edges: list[tuple[int, int]] = []
        self.pit = Pit(self.clock, IrqLine(self._sink))
        self.spk = Pcspk(self.pit)
        self.io = AddressSpace("io", 0x10000, unassigned_ones=True)
        self.io.map(0x40, self.pit.region)
        self.io.map(0x61, self.spk.region)

    def _sink(self, level: int) -> None:
        if level != self.level:
            self.level = level
            self.edges.append((self.clock.now, level))

    def outb(self, port: int, value: int) -> None:
        self.io.write(port, 1, value)

    def inb(self, port: int) -> int:
        return self.io.read(port, 1)

    def goto(self, ns: int) -> None:
        self.clock.warp(ns)

    def program(self, control: int, count: int | None = None) -> None:
        """A control word, then the count in the access mode it selects."""
        self.outb(0x43, control)
        if count is None:
            return
        port = 0x40 + (control >> 6)
        access = (control >> 4) & 3
        if access in (1, 3):
            self.outb(port, count & 0xFF)
        if access in (2, 3):
            self.outb(port, (count >> 8) & 0xFF)

    def latched(self, channel: int) -> int:
        """Counter-latch command, then both bytes (lo/hi access)."""
        self.outb(0x43, channel << 6)
        port = 0x40 + channel
        return self.inb(port) | self.inb(port) << 8

    def status(self, channel: int) -> int:
        self.outb(0x43, 0xE0 | 2 << channel)
        return self.inb(0x40 + channel)

    def out(self, channel: int) -> int:
        return self.status(channel) >> 7


@pytest.fixture
def rig() -> Rig:
    return Rig()


# -- modes: count sequences and OUT waveforms ------------------------------------

def test_mode0_counts_down_and_out_rises_at_terminal_count(rig):
    # Control 0x30: channel 0, lo/hi, mode 0, binary.  N = 1000: the count
    # reads N - k after k periods; OUT is low while counting and high from
    # the terminal count (count 0) on, for good: one rising edge.
    rig.program(0x30, 1000)
    for k, want, out in [(0, 1000, 0), (1, 999, 0), (2, 998, 0), (999, 1, 0), (1000, 0, 1)]:
        rig.goto(at(k))
        assert rig.latched(0) == want
        assert rig.out(0) == out
    rig.goto(at(5000))
    assert [t for t, _ in rig.edges] == [at(1000)]


def test_mode0_counter_wraps_after_terminal_count(rig):
    # The counting element goes on decrementing past 0: 0x0000 - 1 = 0xffff.
    rig.program(0x30, 1000)
    rig.goto(at(1001))
    assert rig.latched(0) == 0xFFFF
    rig.goto(at(1500))
    assert rig.latched(0) == 0x10000 - 500
    assert rig.out(0) == 1


def test_mode1_one_shot_triggered_by_gate(rig):
    # Control 0xb2: channel 2, lo/hi, mode 1.  A gate rising edge (port 0x61
    # bit 0) starts a one-shot of N = 1000 periods: the count reads N - k
    # after the trigger and OUT keeps one level for exactly N periods.
    rig.program(0xB2, 1000)
    rig.goto(50_000)
    rig.outb(0x61, 1)
    trigger = rig.clock.now
    assert rig.latched(2) == 1000
    rig.goto(at(10, trigger))
    assert rig.latched(2) == 990
    during = rig.out(2)
    rig.goto(at(1000, trigger) - 1)
    assert rig.out(2) == during
    rig.goto(at(1000, trigger))
    assert rig.out(2) != during


def test_mode1_retrigger_restarts_the_count(rig):
    # A second rising edge during the one-shot reloads N: N - k again from it.
    rig.program(0xB2, 1000)
    rig.outb(0x61, 1)
    rig.goto(at(600))
    rig.outb(0x61, 0)
    rig.outb(0x61, 1)
    retrigger = rig.clock.now
    rig.goto(at(100, retrigger))
    assert rig.latched(2) == 900
    # the one-shot now ends N periods after the retrigger, not after the first trigger
    during = rig.out(2)
    rig.goto(at(1000) + 1)
    assert rig.out(2) == during


def test_mode2_rate_generator_period_and_count_sequence(rig):
    # Control 0x34: channel 0, lo/hi, mode 2, N = 100.  The count reads
    # N, N-1, ..., 1 and reloads N every N periods, and OUT pulses for one
    # period once per N periods (status bit 7 is the OUT pin).
    rig.program(0x34, 100)
    outs = []
    for k, want in [(0, 100), (1, 99), (99, 1), (100, 100), (101, 99), (199, 1), (200, 100), (250, 50)]:
        rig.goto(at(k))
        assert rig.latched(0) == want
        outs.append(rig.out(0))
    assert outs.count(outs[0]) == len(outs) - 2
    assert outs[3] == outs[6] != outs[0]


def test_mode3_square_wave_even_count(rig):
    # Control 0x36: mode 3, N = 1000.  Even N: OUT high for N/2 = 500
    # periods, low for 500; the count drops by two per period, N, N-2, ...,
    # 2, and restarts at N for each half.
    rig.program(0x36, 1000)
    for k, want in [(0, 1000), (1, 998), (499, 2), (500, 1000), (501, 998), (999, 2)]:
        rig.goto(at(k))
        assert rig.latched(0) == want
    rig.goto(at(1600))
    assert rig.edges == [(0, 1), (at(500), 0), (at(1000), 1), (at(1500), 0)]


def test_mode3_square_wave_odd_count_duty(rig):
    # Odd N = 7: OUT high for (N+1)/2 = 4 periods and low for (N-1)/2 = 3.
    rig.program(0x36, 7)
    rig.goto(at(20))
    assert rig.edges == [(0, 1), (at(4), 0), (at(7), 1), (at(11), 0), (at(14), 1), (at(18), 0)]


def test_mode4_software_strobe(rig):
    # Control 0x38: mode 4, N = 300.  The count reads N - k; OUT changes for
    # exactly one period at the terminal count and never again; the counter
    # wraps and goes on.
    rig.program(0x38, 300)
    for k, want in [(0, 300), (1, 299), (299, 1), (300, 0), (301, 0xFFFF)]:
        rig.goto(at(k))
        assert rig.latched(0) == want
    rig.goto(at(100_000))
    assert [t for t, _ in rig.edges] == [at(300), at(301)]


def test_mode5_hardware_strobe_from_gate(rig):
    # Control 0xba: channel 2, mode 5, N = 10.  After a gate rising edge the
    # count reads N - k, and OUT changes for exactly one period at the
    # terminal count, N periods after the trigger.
    rig.program(0xBA, 10)
    rig.goto(5000)
    rig.outb(0x61, 1)
    trigger = rig.clock.now
    rig.goto(at(3, trigger))
    assert rig.latched(2) == 7
    idle = rig.out(2)
    rig.goto(at(10, trigger) - 1)
    assert rig.out(2) == idle
    rig.goto(at(10, trigger))
    assert rig.out(2) != idle
    rig.goto(at(11, trigger))
    assert rig.out(2) == idle


def test_reload_zero_means_65536(rig):
    # A count of 0 is the maximum, 2^16 = 65536 in binary: in mode 2 the
    # period is 65536 periods; the count reads 0 (65536 mod 2^16) at the
    # load and 0xffff one period later.
    rig.program(0x34, 0)
    assert rig.latched(0) == 0
    rig.goto(at(1))
    assert rig.latched(0) == 0xFFFF
    rig.goto(at(65536) - 1)
    out = rig.out(0)
    rig.goto(at(65536))
    assert rig.out(0) != out
    assert rig.pit.get_state().channels[0].count == 0x10000


def test_reload_zero_in_mode0(rig):
    # Mode 0 with 0: OUT rises after 65536 periods (54.9 ms), not at once.
    rig.program(0x30, 0)
    rig.goto(at(65535))
    assert rig.out(0) == 0
    rig.goto(at(65536))
    assert rig.out(0) == 1


# -- access modes, latches, read-back ---------------------------------------------

def test_lsb_only_access(rig):
    # Control 0x54: channel 1, low byte only, mode 2.  A write loads the
    # whole count with high byte 0; every read returns the low byte.
    rig.program(0x54, 0xC8)
    rig.goto(at(20))
    assert rig.inb(0x41) == 200 - 20
    assert rig.inb(0x41) == 200 - 20
    assert rig.pit.get_state().channels[1].count == 200


def test_msb_only_access(rig):
    # Control 0x64: channel 1, high byte only, mode 2.  Writing 2 loads
    # 2 << 8 = 512; a read returns the high byte: after 300 periods the
    # count is 212 = 0x00d4, high byte 0.
    rig.program(0x64, 0x0200)
    assert rig.pit.get_state().channels[1].count == 512
    rig.goto(at(100))
    assert rig.inb(0x41) == (512 - 100) >> 8
    rig.goto(at(300))
    assert rig.inb(0x41) == 0


def test_lohi_reads_alternate(rig):
    # Lo/hi access: reads alternate low byte, high byte, each sampled live.
    rig.program(0x74, 0x8000)
    rig.goto(at(0x100))
    assert rig.inb(0x41) == 0x00
    assert rig.inb(0x41) == 0x7F
    rig.goto(at(0x101))
    assert rig.inb(0x41) == 0xFF
    assert rig.inb(0x41) == 0x7E


@pytest.mark.parametrize("control, reads, expect", [
    # (control word for channel 1 in mode 2, bytes read, latched value's bytes)
    (0x54, 1, lambda v: [v & 0xFF]),
    (0x64, 1, lambda v: [v >> 8]),
    (0x74, 2, lambda v: [v & 0xFF, v >> 8]),
])
def test_counter_latch_in_every_access_mode(rig, control, reads, expect):
    # The latch freezes the count at the command; later reads return it,
    # however long after, and the latch is released once read in full.
    count = 0x00C8 if control == 0x54 else 0x3000
    rig.program(control, count)
    rig.goto(at(150))
    rig.outb(0x43, 0x40)
    rig.goto(at(5000))
    assert [rig.inb(0x41) for _ in range(reads)] == expect(count - 150)
    live = (count - 5000 % count)
    assert rig.inb(0x41) == (live >> 8 if control == 0x64 else live & 0xFF)


def test_second_latch_before_read_is_ignored(rig):
    # Latched at k = 100 (count 0xffff - 100); a latch at k = 200 before any
    # read changes nothing, and neither does one between the two bytes.
    rig.program(0x30, 0xFFFF)
    rig.goto(at(100))
    rig.outb(0x43, 0x00)
    rig.goto(at(200))
    rig.outb(0x43, 0x00)
    first = 0xFFFF - 100
    assert rig.inb(0x40) == first & 0xFF
    rig.goto(at(300))
    rig.outb(0x43, 0x00)
    assert rig.inb(0x40) == first >> 8
    # released: the next latch takes the count at k = 300
    assert rig.latched(0) == 0xFFFF - 300


def test_read_back_status_byte(rig):
    # Status: OUT in bit 7, null count bit 6, access mode bits 5-4, mode
    # bits 3-1, BCD bit 0.  Channel 1, lo/hi (11), mode 0 (000), binary,
    # read one period after the load (the count is in the counting element,
    # null count 0): before the terminal count 0x30, after it 0xb0.
    rig.program(0x70, 100)
    rig.goto(at(1))
    assert rig.status(1) == 0x30
    rig.goto(at(100))
    assert rig.status(1) == 0xB0


def test_read_back_status_and_count_status_first(rig):
    # Read-back 0xc2 (count and status of channel 0): the first read returns
    # the status, the next two the latched count, then reads are live.
    rig.program(0x30, 10_000)
    rig.goto(at(2000))
    rig.outb(0x43, 0xC2)
    rig.goto(at(4000))
    assert rig.inb(0x40) == 0x30
    assert rig.inb(0x40) == (10_000 - 2000) & 0xFF
    assert rig.inb(0x40) == (10_000 - 2000) >> 8
    assert rig.inb(0x40) == (10_000 - 4000) & 0xFF


def test_read_back_several_channels(rig):
    # Read-back 0xce selects channels 0, 1 and 2 (bits 1-3) with count and
    # status; each channel keeps its own latches.
    rig.program(0x30, 1000)
    rig.program(0x50, 200)
    rig.program(0xB8, 3000)
    rig.goto(at(50))
    rig.outb(0x43, 0xCE)
    rig.goto(at(90))
    assert rig.inb(0x42) == 0x38
    assert rig.inb(0x41) == 0x10
    assert rig.inb(0x40) == 0x30
    assert rig.inb(0x41) == 200 - 50
    assert rig.inb(0x42) == (3000 - 50) & 0xFF
    assert rig.inb(0x42) == (3000 - 50) >> 8
    assert rig.inb(0x40) == (1000 - 50) & 0xFF
    assert rig.inb(0x40) == (1000 - 50) >> 8


def test_read_back_does_not_replace_pending_latches(rig):
    # With status and count latched, further read-backs of either are ignored.
    rig.program(0x30, 10_000)
    rig.goto(at(100))
    rig.outb(0x43, 0xC2)
    rig.goto(at(10_000))
    rig.outb(0x43, 0xC2)
    assert rig.inb(0x40) == 0x30
    assert rig.inb(0x40) | rig.inb(0x40) << 8 == 10_000 - 100


def test_read_back_count_only_leaves_status_unlatched(rig):
    # 0xd2: count of channel 0 only (bit 4 set = no status): the next read is
    # the count's low byte, not a status.
    rig.program(0x30, 10_000)
    rig.goto(at(7))
    rig.outb(0x43, 0xD2)
    assert rig.inb(0x40) | rig.inb(0x40) << 8 == 10_000 - 7


def test_half_written_reload_pending_until_second_byte(rig):
    # Mode 4, lo/hi.  Writing the first byte of a new count has no effect on
    # counting; the second byte loads it.  N1 = 1000 from t = 0; at k = 100
    # the low byte of N2 = 0x0200 arrives; at k = 200 the count is still
    # N1 - 200 = 800; the high byte at k = 300 loads 512, so 10 periods
    # later it reads 502.
    rig.program(0x38, 1000)
    rig.goto(at(100))
    rig.outb(0x40, 0x00)
    state = rig.pit.get_state().channels[0]
    assert (state.write_state, state.write_latch, state.count) == (4, 0x00, 1000)
    rig.goto(at(200))
    assert rig.latched(0) == 800
    rig.goto(at(300))
    rig.outb(0x40, 0x02)
    load = rig.clock.now
    rig.goto(at(10, load))
    assert rig.latched(0) == 502


# -- gates through port 0x61 --------------------------------------------------------

def test_port61_bits(rig):
    # Bit 0 reads channel 2's gate, bit 1 the speaker data enable, bit 5
    # channel 2's OUT; a write sets gate and data from bits 0 and 1.
    assert rig.inb(0x61) & 0x23 == 0x20  # reset: gate 0, data 0, mode 3 OUT high
    rig.outb(0x61, 0x03)
    assert rig.inb(0x61) & 0x03 == 0x03
    assert rig.pit.gate(2) == 1
    rig.outb(0x61, 0x02)
    assert rig.inb(0x61) & 0x03 == 0x02
    rig.program(0xB0, 10)  # mode 0: OUT low until 10 periods have passed
    assert rig.inb(0x61) & 0x20 == 0
    rig.goto(at(10))
    assert rig.inb(0x61) & 0x20 == 0x20


def test_gate_rising_edge_reloads_mode2(rig):
    # Mode 2: a gate rising edge reloads the counter: N again from the edge.
    rig.program(0xB4, 1000)
    rig.goto(at(300))
    rig.outb(0x61, 1)
    edge = rig.clock.now
    assert rig.latched(2) == 1000
    rig.goto(at(250, edge))
    assert rig.latched(2) == 750


def test_gate_rising_edge_reloads_mode3(rig):
    # Mode 3: a rising edge restarts the square wave; OUT is high (first
    # half) right after it, and the count reads N.
    rig.program(0xB6, 1000)
    rig.goto(at(700))
    assert rig.out(2) == 0
    rig.outb(0x61, 1)
    assert rig.out(2) == 1
    assert rig.latched(2) == 1000


def test_gate_edges_on_channel0_do_nothing_on_pc(rig):
    # Channels 0 and 1 are always gated: port 0x61 drives only channel 2.
    rig.outb(0x61, 0)
    state = rig.pit.get_state()
    assert [c.gate for c in state.channels] == [1, 1, 0]


# -- fidelity: where QEMU 7.2 departs from the datasheet ------------------------------

def test_fidelity_bcd_stored_but_counting_binary(rig):
    """Datasheet: with the BCD bit set the counter counts in BCD, four
    decades: 0x1000 is 1000 periods, 0 means 10^4, and 0x0000 - 1 = 0x9999.
    QEMU stores the bit (status bit 0 shows it) and counts in binary."""
    rig.program(0x35, 0x1000)
    assert rig.status(0) & 1 == 1
    rig.goto(at(1000))
    assert rig.latched(0) == 0x1000 - 1000
    rig.goto(at(0x1000) - 1)
    assert rig.out(0) == 0
    rig.goto(at(0x1000))
    assert rig.out(0) == 1
    rig.program(0x31, 0)
    rig.goto(rig.clock.now + at(1))
    assert rig.latched(0) == 0xFFFF


def test_fidelity_modes_6_and_7_kept_as_written(rig):
    """Datasheet: mode bits x10 and x11 are modes 2 and 3 (6 and 7 are
    aliases).  QEMU stores 6 or 7 (the status byte shows them), gives OUT
    mode 0's single rising edge at the count, and reads the count modulo N
    as in mode 2."""
    rig.program(0x3C, 100)
    assert rig.status(0) & 0x0E == 6 << 1
    rig.goto(at(150))
    assert rig.latched(0) == 100 - 50
    rig.goto(at(1000))
    assert rig.edges == [(at(100), 1)]
    rig.program(0x3E, 100)
    assert rig.status(0) & 0x0E == 7 << 1
    rig.goto(rig.clock.now + at(30))
    assert rig.latched(0) == 70


def test_fidelity_null_count_never_set(rig):
    """Datasheet: status bit 6 (null count) is 1 from a control word or a
    count write until the count is loaded into the counting element.  QEMU
    never sets it."""
    rig.outb(0x43, 0x34)
    assert rig.status(0) & 0x40 == 0
    rig.outb(0x40, 0x10)
    assert rig.status(0) & 0x40 == 0
    rig.outb(0x40, 0x00)
    assert rig.status(0) & 0x40 == 0


@pytest.mark.parametrize("control", [0xB0, 0xB8])
def test_fidelity_modes_0_and_4_count_with_gate_low(rig, control):
    """Datasheet: in modes 0 and 4 a low gate suspends counting.  QEMU
    ignores channel 2's gate in these modes: the count goes on with the gate
    low, and a rising edge does not restart it."""
    rig.program(control, 1000)
    assert rig.pit.gate(2) == 0
    rig.goto(at(400))
    assert rig.latched(2) == 600
    rig.outb(0x61, 1)
    rig.goto(at(500))
    assert rig.latched(2) == 500


@pytest.mark.parametrize("control", [0xB4, 0xB6])
def test_fidelity_modes_2_and_3_count_with_gate_low(rig, control):
    """Datasheet: in modes 2 and 3 a low gate stops counting and forces OUT
    high at once.  QEMU keeps counting and leaves OUT to the count."""
    rig.program(control, 1000)
    rig.outb(0x61, 1)
    rig.goto(at(200))
    rig.outb(0x61, 0)
    rig.goto(at(700))
    assert rig.latched(2) == (1000 - 700 if control == 0xB4 else 1000 - 2 * 200)
    assert rig.out(2) == 0


def test_fidelity_mode0_out_after_n_periods(rig):
    """Datasheet: in mode 0 the count is loaded on the first clock after the
    write, so OUT goes high N + 1 periods after it.  QEMU loads at the write:
    OUT rises after exactly N periods."""
    rig.program(0x30, 10)
    rig.goto(at(11))
    assert rig.edges == [(at(10), 1)]


def test_fidelity_mode0_first_byte_does_not_stop_counting(rig):
    """Datasheet: in mode 0, writing the first byte of a two-byte count stops
    counting (and OUT stays low) until the second byte.  QEMU only stores
    the byte; the old count runs on and OUT rises at its end."""
    rig.program(0x30, 100)
    rig.goto(at(50))
    rig.outb(0x40, 0x34)
    rig.goto(at(100))
    assert rig.edges == [(at(100), 1)]
    assert rig.latched(0) == 0


def test_fidelity_mode1_and_5_start_at_load_without_trigger(rig):
    """Datasheet: modes 1 and 5 wait for a gate rising edge; a count write
    alone starts nothing.  QEMU starts counting at the load, gate or not."""
    rig.program(0xB2, 1000)
    rig.goto(at(100))
    assert rig.latched(2) == 900
    rig.program(0xBA, 1000)
    load = rig.clock.now
    rig.goto(at(100, load))
    assert rig.latched(2) == 900


def test_fidelity_mode1_out_high_during_one_shot(rig):
    """Datasheet: mode 1's OUT goes low at the trigger and back high at the
    terminal count.  QEMU inverts it: OUT is high while the one-shot runs
    (from the load) and low afterwards."""
    rig.program(0x32, 100)
    assert rig.edges == [(0, 1)]
    rig.goto(at(200))
    assert rig.edges == [(0, 1), (at(100), 0)]


def test_fidelity_mode2_pulse_high_after_count(rig):
    """Datasheet: mode 2's OUT is high and goes low for one period when the
    count reaches 1 (N - 1 periods after the load).  QEMU's OUT is low and
    goes high for one period when N periods have elapsed."""
    rig.program(0x34, 100)
    rig.goto(at(99))
    assert rig.out(0) == 0
    rig.goto(at(100))
    assert rig.out(0) == 1
    rig.goto(at(101))
    assert rig.out(0) == 0


def test_fidelity_mode2_interrupt_line_sampled_on_rounded_down_times(rig):
    """Datasheet: OUT, and so IRQ 0, pulses low for one period per N.  QEMU
    updates the line from a timer armed at each transition rounded down to
    the nanosecond, one nanosecond short of the period point; from a high
    OUT it aims at the next rise, skipping the fall.  So with N = 100 the
    line rises at floor(101 periods) (where OUT is high), falls at
    floor(200) (one period before the next pulse), rises at floor(201): it
    is high for N - 1 periods and low for one, unlike the OUT pin."""
    rig.program(0x34, 100)
    rig.goto(at(350))
    assert rig.edges == [(floor_at(101), 1), (floor_at(200), 0), (floor_at(201), 1),
                         (floor_at(300), 0), (floor_at(301), 1)]


def test_fidelity_mode4_pulse_high_at_terminal_count(rig):
    """Datasheet: mode 4's OUT is high, goes low for one period at the
    terminal count (N + 1 periods after the write), then high again.  QEMU's
    OUT is low and goes high for the one period at N."""
    rig.program(0x38, 50)
    rig.goto(at(100))
    assert rig.edges == [(at(50), 1), (at(51), 0)]


def test_fidelity_reload_in_mode2_restarts_period_at_once(rig):
    """Datasheet: in modes 2 and 3 a new count written while counting takes
    effect at the end of the current period.  QEMU restarts counting with it
    at the write."""
    rig.program(0x34, 1000)
    rig.goto(at(300))
    rig.outb(0x40, 0x64)
    rig.outb(0x40, 0x00)
    load = rig.clock.now
    rig.goto(at(10, load))
    assert rig.latched(0) == 90


def test_fidelity_mode3_odd_count_sequence(rig):
    """Datasheet: for an odd N in mode 3 the counter is loaded with N - 1 and
    decrements by two (N=7: 6, 4, 2, 0 then 6, 4, 2), and never reads odd.
    QEMU reads N - (2k mod N): 7, 5, 3, 1, 6, 4, 2, 7, ..."""
    rig.program(0x36, 7)
    seen = []
    for k in range(8):
        rig.goto(at(k))
        seen.append(rig.latched(0))
    assert seen == [7, 5, 3, 1, 6, 4, 2, 7]


def test_fidelity_control_word_keeps_counting_and_latches(rig):
    """Datasheet: a control word resets the counter's control logic and puts
    OUT in the mode's initial state (low for mode 0); the count is undefined
    until written.  QEMU changes only mode and access mode: the old count
    runs on under the new mode from its old load time, and a pending latch
    survives."""
    rig.program(0x36, 1000)
    rig.goto(at(100))
    rig.outb(0x43, 0x00)
    rig.goto(at(300))
    rig.outb(0x43, 0x30)
    assert rig.inb(0x40) | rig.inb(0x40) << 8 == 1000 - 200
    assert rig.latched(0) == 1000 - 300
    rig.goto(at(1000))
    assert rig.out(0) == 1


def test_fidelity_access_mode_zero_after_reset(rig):
    """Datasheet: after power-up the control words must be written; the
    state of a counter before that is undefined.  QEMU's reset leaves access
    mode 0: data ports behave as low-byte-only, and a counter latch records
    access mode 0, which holds nothing, so reads stay live."""
    state = rig.pit.get_state().channels[0]
    assert (state.rw_mode, state.read_state, state.write_state) == (0, 0, 0)
    rig.goto(at(100))
    rig.outb(0x43, 0x00)
    rig.goto(at(300))
    assert rig.inb(0x40) == 0x10000 - 2 * 300 & 0xFF
    assert rig.inb(0x40) == 0x10000 - 2 * 300 & 0xFF


def test_fidelity_latch_between_live_bytes(rig):
    """Datasheet: reads go through one output latch and one byte pointer, so
    a latch after a live low-byte read is read from its high byte on.  QEMU
    keeps a latched-read state apart from the live one: the latched count is
    read whole, low byte first, then the live read finishes with a high byte."""
    rig.program(0x30, 0xFFFF)
    rig.goto(at(0x100))
    assert rig.inb(0x40) == 0xFF
    rig.goto(at(0x200))
    rig.outb(0x43, 0x00)
    assert rig.inb(0x40) == 0xFF
    assert rig.inb(0x40) == 0xFD
    rig.goto(at(0x300))
    assert rig.inb(0x40) == 0xFC


def test_fidelity_refresh_bit_toggles_per_read(rig):
    """Datasheet (PC/AT port B): bit 4 follows the DRAM refresh request,
    toggling every 15.085 us (channel 1's output) whatever the guest does.
    QEMU flips it on every read of port 0x61, and time does not move it."""
    bits = [rig.inb(0x61) & 0x10 for _ in range(4)]
    assert bits == [0x10, 0, 0x10, 0]
    rig.goto(1_000_000)
    assert rig.inb(0x61) & 0x10 == 0x10


def test_fidelity_port61_keeps_only_gate_and_data(rig):
    """IBM PC/AT port B: bits 2 and 3 (parity and I/O check enables) and 7
    are read/write, and bits 6 and 7 report NMI sources.  QEMU stores only
    bits 0 and 1; the others read 0 whatever was written."""
    rig.outb(0x61, 0xFC)
    assert rig.inb(0x61) & 0xCF == 0


# -- channel 0's interrupt and the HPET's control input ------------------------------

def test_irq_control_disables_and_reenables_channel0_interrupt(rig):
    # QEMU's gpio input from the HPET: while disabled no timer is armed and
    # the line is left as it was; re-enabling sets it to OUT now and re-arms.
    # (mode 2, N = 100: OUT is high at 500 periods; the next transition
    # QEMU aims at from there is the next rise, at 600 periods, rounded down)
    rig.program(0x34, 100)
    rig.pit.irq_control(0)
    assert rig.pit.get_state().irq_disabled == 1
    assert rig.pit.get_state().irq_timer == -1
    rig.goto(at(450))
    assert rig.edges == []
    rig.goto(at(500))
    rig.pit.irq_control(1)
    assert rig.edges == [(at(500), 1)]
    assert rig.pit.get_state().irq_timer == floor_at(600)


# -- state ---------------------------------------------------------------------------

def test_post_reset_state():
    # QEMU's reset: mode 3, count 0x10000 loaded now (t = 0), gates 1, 1, 0;
    # access modes and latches stay 0.  Channel 0's next transition is
    # half of 65536 periods: floor(32768 * 1e9 / 1193182) = 27462700 ns.
    pit = Rig().pit
    chans = [PitChannelState(count=0x10000, mode=3, gate=g) for g in (1, 1, 0)]
    chans[0].next_transition_time = 32768 * 10**9 // FREQ
    assert 32768 * 10**9 // FREQ == 27_462_700
    assert pit.get_state() == PitState(chans, irq_disabled=0, irq_timer=27_462_700)
    assert Pcspk(pit).get_state() == PcspkState(0, 0)


def test_get_state_is_a_snapshot(rig):
    snap = rig.pit.get_state()
    before = replace(snap, channels=[replace(c) for c in snap.channels])
    rig.program(0x34, 100)
    rig.latched(0)
    assert snap == before
    snap.channels[0].count = 5
    assert rig.pit.get_state().channels[0].count == 100


def _mid_sequence(r: Rig) -> None:
    r.program(0x34, 10_000)
    r.program(0x76, 0x2000)
    r.program(0xB6, 0x0800)
    r.outb(0x61, 3)
    r.goto(3_000_000)
    r.outb(0x43, 0x00)
    r.inb(0x40)
    r.inb(0x41)
    r.outb(0x42, 0x55)
    r.outb(0x43, 0xE8)
    r.inb(0x61)


def _tail(r: Rig) -> list:
    reads = [r.inb(p) for p in (0x40, 0x41, 0x42, 0x61)]
    r.outb(0x42, 0x01)
    reads += [r.inb(0x42), r.inb(0x42)]
    r.goto(30_000_000)
    reads += [r.inb(0x40), r.inb(0x40), r.inb(0x61)]
    return reads


def test_set_state_rebuilds_the_device_exactly():
    # Saved mid-sequence (latched count half read, live half read, reload
    # half written, status latched), a fresh device at the same virtual time
    # answers every following access and interrupt like the original.
    a, b = Rig(), Rig()
    _mid_sequence(a)
    b.goto(a.clock.now)
    b.pit.set_state(a.pit.get_state())
    b.spk.set_state(a.spk.get_state())
    b.level = a.level
    a.edges.clear()
    assert b.pit.get_state() == a.pit.get_state()
    assert _tail(a) == _tail(b)
    assert a.edges == b.edges and a.edges


def test_set_state_follows_post_load_timer_rule():
    # As QEMU's post_load: channel 0's timer at next_transition_time, or
    # deleted when that is -1 or the interrupt is disabled.
    pit = Rig().pit
    state = pit.get_state()
    state.channels[0].next_transition_time = 123_456
    pit.set_state(state)
    assert pit.get_state().irq_timer == 123_456
    state.irq_disabled = 1
    pit.set_state(state)
    assert pit.get_state().irq_timer == -1
    state.irq_disabled = 0
    state.channels[0].next_transition_time = -1
    pit.set_state(state)
    assert pit.get_state().irq_timer == -1


# -- the machine -----------------------------------------------------------------------

def test_machine_wiring_and_irq_line_0():
    from vmstate.machine.pc import PcMachine
    from vmstate.core.observe import Edge

    m = PcMachine()
    assert m.devices["i8254"] is m.pit and m.devices["pcspk"] is m.pcspk
    m.session.intercepting = True
    m.io_write(0x43, 1, 0x30)
    m.io_write(0x40, 1, 100)
    m.io_write(0x40, 1, 0)
    m.clock_step(at(150))
    assert m.io_read(0x61, 1) & 0x01 == 0
    m.io_write(0x61, 1, 1)
    assert m.io_read(0x61, 1) & 0x01 == 1
    edges = [e for e in m.session.observations.events if isinstance(e, Edge)]
    assert [(e.time, e.line, e.level) for e in edges] == [(at(100), 0, 1)]


def test_at_least_thirty_pit_traces():
    # tests/test_traces.py runs them against their recorded QEMU output
    traces = list(TRACES.glob("pit-*.trace"))
    assert len(traces) >= 30
    for trace in traces:
        assert trace.read_text().startswith("#")
        assert trace.with_suffix(".qemu").exists()
