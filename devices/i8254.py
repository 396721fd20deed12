"""The Intel 8254 programmable interval timer, as QEMU 7.2's ``isa-pit``.

The counters are never ticked: each channel remembers when its count was
loaded (``count_load_time``), and its count and output are computed from the
virtual clock with QEMU's arithmetic, including QEMU's departures from the
datasheet (binary counting whatever the BCD bit says, modes 6 and 7 kept as
written, no null-count bit, gates ignored in modes 0 and 4, output polarities
of modes 1, 2, 4 and 5).  Only channel 0 is wired to an interrupt: a timer
fires at each transition of its output, at the virtual time QEMU computes,
so the edges land on the same nanosecond as the reference's.

The state object uses the field names of QEMU's ``i8254`` VMSD, so the schema
layer can serialize it field for field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from vmstate.core.bus import Region, Sizes
from vmstate.core.clock import NANOSECONDS_PER_SECOND, VirtualClock
from vmstate.core.device import Device
from vmstate.core.state import copy_state, fresh_state
from vmstate.core.irq import IrqLine

PIT_FREQ = 1_193_182
PIT_PORT = 0x40          # channels 0-2 at 0x40-0x42
PIT_CONTROL = PIT_PORT + 3
RELOAD_ZERO = 0x10000

# read_state / write_state / rw_mode / count_latched values
RW_LSB = 1
RW_MSB = 2
RW_WORD0 = 3
RW_WORD1 = 4

_U64 = (1 << 64) - 1

# The control word at port 0x43: SC1 SC0 | RW1 RW0 | M2 M1 M0 | BCD.
SELECT_READ_BACK = 3            # SC = 3: the read-back command
ACCESS_LATCH = 0                # RW = 0: counter latch command
READ_BACK_NO_COUNT = 0x20       # read-back: COUNT bit (active low)
READ_BACK_NO_STATUS = 0x10      # read-back: STATUS bit (active low)


def read_back_selects(channel: int) -> int:
    """The read-back command's select bit for a channel (bits 1 to 3)."""
    return 2 << channel


def control_word(select: int, access: int, mode: int = 0, bcd: int = 0) -> int:
    return select << 6 | access << 4 | mode << 1 | bcd


def control_fields(value: int) -> tuple[int, int, int, int]:
    """A control word's (select, access, mode, bcd) fields."""
    return value >> 6, (value >> 4) & 3, (value >> 1) & 7, value & 1


def status_byte(out: int, rw_mode: int, mode: int, bcd: int) -> int:
    """A read-back status: OUT, null count (never set in QEMU), access, mode, BCD."""
    return out << 7 | rw_mode << 4 | mode << 1 | bcd


@dataclass
class PitChannelState:
    """One counter, as QEMU's ``pit channel`` VMSD carries it.

    The defaults are a channel's memory before its first reset: QEMU
    zero-allocates the device and its reset touches only mode, gate, count,
    load time and (channel 0) the next transition.
    """

    count: int = 0
    latched_count: int = 0
    count_latched: int = 0
    status_latched: int = 0
    status: int = 0
    read_state: int = 0
    write_state: int = 0
    write_latch: int = 0
    rw_mode: int = 0
    mode: int = 0
    bcd: int = 0
    gate: int = 0
    count_load_time: int = 0
    next_transition_time: int = 0


@dataclass
class PitState:
    """The whole PIT: three channels, channel 0's interrupt-disabled flag
    (``i8254`` v3; set while the HPET's legacy replacement owns IRQ 0), and
    the deadline channel 0's interrupt timer is armed for (-1 when idle),
    which a load re-derives from ``next_transition_time``."""

    channels: list[PitChannelState] = field(default_factory=lambda: [PitChannelState() for _ in range(3)])
    irq_disabled: int = 0
    irq_timer: int = -1


def _ticks(now: int, load_time: int) -> int:
    """Input-clock periods since ``load_time``, as QEMU's unsigned
    ``muldiv64`` yields them (a load time in the future wraps around)."""
    delta = now - load_time
    if delta < 0:
        delta &= _U64
    return delta * PIT_FREQ // NANOSECONDS_PER_SECOND


def channel_count(ch: PitChannelState, now: int) -> int:
    """The value a read of the counting element returns."""
    d = _ticks(now, ch.count_load_time)
    mode = ch.mode
    if mode in (0, 1, 4, 5):
        return (ch.count - d) & 0xFFFF
    if mode == 3:
        return ch.count - (2 * d) % ch.count
    return ch.count - d % ch.count


def channel_out(ch: PitChannelState, now: int) -> int:
    """The OUT pin.  Modes 6 and 7 fall back to mode 0's rule, as in QEMU."""
    d = _ticks(now, ch.count_load_time)
    mode = ch.mode
    count = ch.count
    if mode == 1:
        return int(d < count)
    if mode == 2:
        return int(d != 0 and d % count == 0)
    if mode == 3:
        return int(d % count < (count + 1) >> 1)
    if mode in (4, 5):
        return int(d == count)
    return int(d >= count)


#: Whole periods a periodic channel 0 may lag its clock's horizon before its
#: interrupt timer skips ahead (when nobody observes the line).
SKIP_AFTER = 4


def skip_periods(ch: PitChannelState, at: int, horizon: int) -> int:
    """A transition of a periodic channel (modes 2 and 3) whole periods
    after ``at``, and at least two periods before ``horizon``: where QEMU's
    timer, firing at every transition on the way, would be then.  Used only
    while nobody observes the interrupt line, so the edges skipped are edges
    no one could see; the state left (the next transition, the line's level
    from there on) is the one firing every period gives.  ``at`` itself is
    returned when it is not a transition this arithmetic can place."""
    if ch.mode not in (2, 3) or ch.count <= 1:
        return at
    elapsed = at - ch.count_load_time
    if elapsed < 0:
        return at
    tick = -(-elapsed * PIT_FREQ // NANOSECONDS_PER_SECOND)     # the tick whose time, rounded down, is at
    if tick * NANOSECONDS_PER_SECOND // PIT_FREQ != elapsed:
        return at
    periods = (horizon - at) * PIT_FREQ // (ch.count * NANOSECONDS_PER_SECOND) - 2
    if periods <= 0:
        return at
    return ch.count_load_time + (tick + periods * ch.count) * NANOSECONDS_PER_SECOND // PIT_FREQ


def next_transition(ch: PitChannelState, now: int) -> int:
    """When OUT next changes (ns), or -1 if it never will.  A transition that
    rounds to now or earlier is put 1 ns ahead, as QEMU does."""
    d = _ticks(now, ch.count_load_time)
    mode = ch.mode
    count = ch.count
    if mode == 2:
        base = d - d % count
        at = base + count if d == base and d != 0 else base + count + 1
    elif mode == 3:
        base = d - d % count
        half = (count + 1) >> 1
        at = base + half if d - base < half else base + count
    elif mode in (4, 5):
        if d < count:
            at = count
        elif d == count:
            at = count + 1
        else:
            return -1
    elif d < count:
        at = count
    else:
        return -1
    at = ch.count_load_time + at * NANOSECONDS_PER_SECOND // PIT_FREQ
    return at if at > now else now + 1


class Pit(Device):
    name = "i8254"

    def __init__(self, clock: VirtualClock, irq: IrqLine, unobserved: Callable[[], bool] = lambda: False):
        """``unobserved()`` says whether nothing can see the interrupt
        line now (the machine's qtest client does not intercept it): then a
        periodic channel 0 may skip the periods a long step crosses."""
        self.clock = clock
        self.irq = irq
        self.unobserved = unobserved
        self.channels = [PitChannelState() for _ in range(3)]
        self.irq_disabled = 0
        self.irq_timer = clock.timer(self._irq_timer_fired, "pit-irq")
        self.region = Region("pit", 4, self._read, self._write, impl=Sizes(1, 1))
        self.reset()

    def reset(self) -> None:
        """Machine reset: every channel in mode 3 counting 65536 from now,
        gates high except channel 2's.  Latches, access modes and the rest
        keep what they held, and the interrupt line is left alone."""
        now = self.clock.now
        for i, ch in enumerate(self.channels):
            ch.mode = 3
            ch.gate = int(i != 2)
            ch.count_load_time = now
            ch.count = RELOAD_ZERO
        ch0 = self.channels[0]
        if not self.irq_disabled:
            ch0.next_transition_time = next_transition(ch0, now)
            self.irq_timer.mod(ch0.next_transition_time)

    # -- channel 0's interrupt -------------------------------------------------
    def _update_irq(self, now: int) -> None:
        if self.irq_disabled:
            return
        ch0 = self.channels[0]
        expire = next_transition(ch0, now)
        self.irq.set(channel_out(ch0, now))
        ch0.next_transition_time = expire
        self.irq_timer.load(expire)

    def _irq_timer_fired(self) -> None:
        at = self.channels[0].next_transition_time
        if self.clock.horizon - at > SKIP_AFTER * self.channels[0].count * NANOSECONDS_PER_SECOND // PIT_FREQ \
                and self.unobserved():
            at = skip_periods(self.channels[0], at, self.clock.horizon)
        self._update_irq(at)

    def irq_control(self, enable: int) -> None:
        """The gpio input the HPET drives: low while its legacy replacement
        routing has taken IRQ 0 over, high again when it gives it back."""
        if enable:
            self.irq_disabled = 0
            self._update_irq(self.clock.now)
        else:
            self.irq_disabled = 1
            self.irq_timer.delete()

    # -- gates ------------------------------------------------------------------
    def set_gate(self, channel: int, level: int) -> None:
        """A gate input; on pc only channel 2's is wired (port 0x61).  A
        rising edge restarts counting in modes 1, 2, 3 and 5; modes 0, 4, 6
        and 7 ignore the gate altogether."""
        ch = self.channels[channel]
        level = 1 if level else 0
        if ch.mode in (1, 2, 3, 5) and ch.gate < level:
            ch.count_load_time = self.clock.now
            if channel == 0:
                self._update_irq(ch.count_load_time)
        ch.gate = level

    def gate(self, channel: int) -> int:
        return self.channels[channel].gate

    def out(self, channel: int) -> int:
        return channel_out(self.channels[channel], self.clock.now)

    # -- port I/O ------------------------------------------------------------------
    def _load(self, index: int, value: int) -> None:
        ch = self.channels[index]
        now = self.clock.now
        ch.count_load_time = now
        ch.count = value or RELOAD_ZERO
        if index == 0:
            self._update_irq(now)

    def _latch_count(self, ch: PitChannelState) -> None:
        if not ch.count_latched:
            ch.latched_count = channel_count(ch, self.clock.now) & 0xFFFF
            ch.count_latched = ch.rw_mode

    def _write(self, offset: int, size: int, value: int) -> None:
        offset &= 3
        value &= 0xFF
        if offset == 3:
            self._control(value)
            return
        ch = self.channels[offset]
        state = ch.write_state
        if state == RW_MSB:
            self._load(offset, value << 8)
        elif state == RW_WORD0:
            ch.write_latch = value
            ch.write_state = RW_WORD1
        elif state == RW_WORD1:
            self._load(offset, ch.write_latch | value << 8)
            ch.write_state = RW_WORD0
        else:
            self._load(offset, value)

    def _control(self, value: int) -> None:
        select, access, mode, bcd = control_fields(value)
        if select == SELECT_READ_BACK:
            now = self.clock.now
            for i, ch in enumerate(self.channels):
                if not value & read_back_selects(i):
                    continue
                if not value & READ_BACK_NO_COUNT:
                    self._latch_count(ch)
                if not value & READ_BACK_NO_STATUS and not ch.status_latched:
                    ch.status = status_byte(channel_out(ch, now), ch.rw_mode, ch.mode, ch.bcd)
                    ch.status_latched = 1
            return
        ch = self.channels[select]
        if access == ACCESS_LATCH:
            self._latch_count(ch)
        else:
            ch.rw_mode = ch.read_state = ch.write_state = access
            ch.mode = mode
            ch.bcd = bcd

    def _read(self, offset: int, size: int) -> int:
        offset &= 3
        if offset == 3:
            return 0
        ch = self.channels[offset]
        if ch.status_latched:
            ch.status_latched = 0
            return ch.status
        latched = ch.count_latched
        if latched:
            if latched == RW_MSB:
                ch.count_latched = 0
                return ch.latched_count >> 8
            if latched == RW_WORD0:
                ch.count_latched = RW_MSB
            else:
                ch.count_latched = 0
            return ch.latched_count & 0xFF
        state = ch.read_state
        count = channel_count(ch, self.clock.now)
        if state == RW_MSB:
            return (count >> 8) & 0xFF
        if state == RW_WORD0:
            ch.read_state = RW_WORD1
        elif state == RW_WORD1:
            ch.read_state = RW_WORD0
            return (count >> 8) & 0xFF
        return count & 0xFF

    # -- state -------------------------------------------------------------------
    @fresh_state
    def get_state(self) -> PitState:
        return PitState(copy_state(self.channels), self.irq_disabled,
                        self.irq_timer.expire)

    def set_state(self, state: PitState) -> None:
        """Rebuild from a state object as QEMU's post_load does: channel 0's
        timer is re-armed at its next transition unless that is -1 or the
        interrupt is disabled; the interrupt line itself is not touched."""
        self.channels = copy_state(state.channels)
        self.irq_disabled = state.irq_disabled
        ch0 = self.channels[0]
        if ch0.next_transition_time != -1 and not self.irq_disabled:
            self.irq_timer.mod(ch0.next_transition_time)
        else:
            self.irq_timer.delete()
