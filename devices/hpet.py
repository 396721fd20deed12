"""The high-precision event timer as QEMU 7.2's ``pc`` machine has it.

One block of 3 comparators at 0xfed00000 with a 64-bit main counter of
period 10 ns (100 MHz).  The counter is never ticked: while the block is
enabled it is the virtual clock plus ``hpet_offset``, divided by the period;
while halted it is the stored ``hpet_counter``.  Each comparator owns one
clock timer armed at the virtual time its next interrupt is due.

Fidelity comes first: the arithmetic is QEMU's unsigned 64-bit arithmetic,
including where it parts from the HPET 1.0a specification (tests named
``test_fidelity_*`` pin each place).  In particular QEMU's range check on
timer registers lets the guest reach one comparator more than it reports;
that comparator is modeled too, as ``stray_timer`` in the state.
"""
from __future__ import annotations

from dataclasses import dataclass

from vmstate.core.bus import AddressSpace, Region, Sizes
from vmstate.core.clock import VirtualClock
from vmstate.core.device import Device
from vmstate.core.state import copy_state, fresh_state, take
from vmstate.core.irq import IrqLine

HPET_BASE = 0xFED00000
HPET_LEN = 0x400
CLK_PERIOD_NS = 10
FS_PER_NS = 1_000_000
MIN_TIMERS = 3
MAX_TIMERS = 32
PC_INTCAP = 0x4  # hw/i386/pc.c's compat property for the pc machine: GSI 2 only

# General registers
REG_ID = 0x000
REG_PERIOD = 0x004
REG_CFG = 0x010
REG_STATUS = 0x020
REG_COUNTER = 0x0F0
TIMER_BASE = 0x100
TIMER_STRIDE = 0x20
# Per-timer registers, relative to the timer's block
TN_CFG = 0x00
TN_CMP = 0x08
TN_ROUTE = 0x10

CFG_ENABLE = 0x001
CFG_LEGACY = 0x002
CFG_WRITE_MASK = 0x003

ID_NUM_TIM_SHIFT = 8

TN_TYPE_LEVEL = 0x002
TN_ENABLE = 0x004
TN_PERIODIC = 0x008
TN_PERIODIC_CAP = 0x010
TN_SIZE_CAP = 0x020
TN_SETVAL = 0x040
TN_32BIT = 0x100
TN_INT_ROUTE_MASK = 0x3E00
TN_INT_ROUTE_SHIFT = 9
TN_FSB_ENABLE = 0x4000
TN_FSB_CAP = 0x8000
TN_CFG_WRITE_MASK = 0x7F4E

LEGACY_RTC_GSI = 8
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
HI32 = U64 ^ U32
# hpet_arm refuses deadlines this many ticks away or more (INT64_MAX / 2 in ns)
ARM_LIMIT_TICKS = ((1 << 63) - 1) // 2 // CLK_PERIOD_NS


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _rising(old: int, new: int, mask: int) -> bool:
    return not old & mask and bool(new & mask)


def _falling(old: int, new: int, mask: int) -> bool:
    return bool(old & mask) and not new & mask


def _steps_until_not_behind(behind: int, period: int, bits: int) -> int:
    """How many times QEMU's catch-up loop adds ``period`` (modulo 2**bits)
    to a comparator that is ``behind`` ticks (negative) before the counter
    until the signed difference is no longer negative.

    Closed form, so that a comparator far in the past costs nothing; a
    period with the sign bit set walks backwards round the circle, which
    QEMU also ends, once the difference wraps positive."""
    half = 1 << (bits - 1)
    period &= (1 << bits) - 1
    if period < half:
        return -(behind // period)
    return (behind + half) // ((1 << bits) - period) + 1


@dataclass
class HpetTimerState:
    """One comparator: QEMU's ``hpet_timer`` section.  ``expire`` is what
    the section carries as ``qemu_timer``: the absolute virtual-clock
    deadline in ns, or -1 when the timer is not pending."""

    tn: int
    config: int
    cmp: int
    fsb: int
    period: int
    wrap_flag: int
    expire: int


@dataclass
class HpetState:
    """QEMU's ``hpet`` section (v2 with both subsections) and what the model
    needs beyond it to be rebuilt exactly.

    ``hpet_offset`` None means "not carried" (a stream without the
    ``hpet/offset`` subsection): restoring then derives it from the counter,
    losing the sub-tick phase as QEMU does.  ``stray_timer`` is the
    comparator one past ``num_timers`` that the guest can program through
    QEMU's off-by-one range check; QEMU does not migrate it.
    """

    config: int
    isr: int
    hpet_counter: int
    num_timers: int
    timer: list[HpetTimerState]
    rtc_irq_level: int = 0
    hpet_offset: int | None = 0
    stray_timer: HpetTimerState | None = None
    msi: bool = False


class _Comparator:
    """A comparator's registers and hidden state.  Its clock timer calls a
    bound method (never a closure) so that a deep copy of the machine fires
    into the copy."""

    __slots__ = ("hpet", "tn", "config", "cmp", "fsb", "period", "wrap_flag", "timer")

    def __init__(self, hpet: "Hpet", tn: int):
        self.hpet = hpet
        self.tn = tn
        self.config = 0
        self.cmp = 0
        self.fsb = 0
        self.period = 0
        self.wrap_flag = 0
        self.timer = hpet.clock.timer(self.expired, f"hpet-timer{tn}")

    def expired(self) -> None:
        self.hpet._expired(self)

    def state(self) -> HpetTimerState:
        return HpetTimerState(self.tn, self.config, self.cmp, self.fsb, self.period,
                              self.wrap_flag, self.timer.expire)

    def load(self, state: HpetTimerState) -> None:
        take(self, state, skip=("expire",))
        self.timer.load(state.expire)


class Hpet(Device):
    """The HPET block; ``gsi`` are the I/O APIC inputs its timers route to.

    ``memory`` (an address space) receives a timer's FSB message as the
    32-bit store QEMU performs; without it such interrupts vanish.
    """

    name = "hpet"

    def __init__(self, clock: VirtualClock, gsi: list[IrqLine], num_timers: int = MIN_TIMERS,
                 intcap: int = PC_INTCAP, msi: bool = False,
                 memory: AddressSpace | None = None):
        self.clock = clock
        self.gsi = gsi
        self.intcap = intcap
        self.msi = msi
        self.memory = memory
        self.pit_enabled = IrqLine()
        self.num_timers = min(max(num_timers, MIN_TIMERS), MAX_TIMERS)
        # QEMU allocates every possible comparator whatever num_timers says
        self.timers = [_Comparator(self, n) for n in range(MAX_TIMERS)]
        self.capability = self._capability()
        self.region = Region("hpet", HPET_LEN, self._read, self._write, valid=Sizes(4, 4))
        self.config = 0
        self.isr = 0
        self.hpet_counter = 0
        self.hpet_offset = 0
        self.rtc_irq_level = 0
        self.reset()

    def _capability(self) -> int:
        return (0x8086A001 | (self.num_timers - 1) << ID_NUM_TIM_SHIFT
                | (CLK_PERIOD_NS * FS_PER_NS) << 32)

    def reset(self) -> None:
        for t in self.timers[:self.num_timers]:
            self._del_timer(t)
            t.cmp = U64
            t.config = TN_PERIODIC_CAP | TN_SIZE_CAP | (TN_FSB_CAP if self.msi else 0)
            t.config |= self.intcap << 32
            t.period = 0
            t.wrap_flag = 0
        self.pit_enabled.set(1)
        self.hpet_counter = 0
        self.hpet_offset = 0
        self.config = 0
        self.rtc_irq_level = 0

    # -- the main counter ------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.config & CFG_ENABLE)

    @property
    def legacy(self) -> bool:
        return bool(self.config & CFG_LEGACY)

    def ticks(self) -> int:
        """The running counter: (virtual ns + offset) / period, in QEMU's
        unsigned 64-bit arithmetic (so a counter loaded above 2**64 / 10
        does not come back as written)."""
        return ((self.clock.now + self.hpet_offset) & U64) // CLK_PERIOD_NS

    def counter(self) -> int:
        return self.ticks() if self.enabled else self.hpet_counter

    # -- comparators -------------------------------------------------------------
    @staticmethod
    def _diff(t: _Comparator, current: int) -> int:
        """Ticks until the comparator matches; a comparator at or behind the
        counter (by signed difference) counts as one tick away."""
        bits = 32 if t.config & TN_32BIT else 64
        diff = _signed(t.cmp - current, bits)
        return diff if diff > 0 else 1

    def _arm(self, t: _Comparator, ticks: int) -> None:
        if ticks < ARM_LIMIT_TICKS:
            t.timer.mod(self.clock.now + ticks * CLK_PERIOD_NS)
        else:
            t.timer.delete()

    def _set_timer(self, t: _Comparator) -> None:
        current = self.ticks()
        t.wrap_flag = 0
        diff = self._diff(t, current)
        if t.config & TN_32BIT and not t.config & TN_PERIODIC:
            # a 32-bit one-shot also interrupts when the counter reaches
            # 0xffffffff; the comparator's own match is armed after that
            to_wrap = U32 - (current & U32)
            if to_wrap < (diff & U32):
                diff = to_wrap
                t.wrap_flag = 1
        self._arm(t, diff)

    def _del_timer(self, t: _Comparator) -> None:
        t.timer.delete()
        self._update_irq(t, False)

    def _expired(self, t: _Comparator) -> None:
        current = self.ticks()
        periodic = t.config & TN_PERIODIC
        if periodic and t.period:
            bits = 32 if t.config & TN_32BIT else 64
            mask = (1 << bits) - 1
            behind = _signed(t.cmp - current, bits)
            if behind >= 0:
                self._arm(t, self._diff(t, current))
            elif t.period & mask:
                steps = _steps_until_not_behind(behind, t.period & mask, bits)
                t.cmp = (t.cmp + steps * (t.period & mask)) & mask
                self._arm(t, self._diff(t, current))
            # else only the period's high half is set in 32-bit mode: QEMU
            # adds 0 for ever and hangs; a model that must return stops
            # the timer instead of firing every tick
        elif t.config & TN_32BIT and not periodic and t.wrap_flag:
            self._arm(t, self._diff(t, current))
            t.wrap_flag = 0
        self._update_irq(t, True)

    def _route(self, t: _Comparator) -> int:
        if t.tn <= 1 and self.legacy:
            return 0 if t.tn == 0 else LEGACY_RTC_GSI
        return (t.config & TN_INT_ROUTE_MASK) >> TN_INT_ROUTE_SHIFT

    def _line(self, route: int) -> IrqLine | None:
        """Routes past the I/O APIC's inputs are wired to nothing on pc."""
        return self.gsi[route] if route < len(self.gsi) else None

    def _update_irq(self, t: _Comparator, assert_: bool) -> None:
        line = self._line(self._route(t))
        mask = 1 << t.tn
        fsb = t.config & TN_FSB_ENABLE
        if not assert_ or not t.config & TN_ENABLE or not self.enabled:
            self.isr &= ~mask
            if not fsb and line is not None:
                line.lower()
        elif fsb:
            if self.memory is not None:
                self.memory.write(t.fsb >> 32, 4, t.fsb & U32)
        elif t.config & TN_TYPE_LEVEL:
            self.isr |= mask
            if line is not None:
                line.raise_()
        else:
            self.isr &= ~mask
            if line is not None:
                line.pulse()

    # -- legacy inputs (the PIT's and the RTC's interrupt outputs) --------------
    def pit_input(self, level: int) -> None:
        if not self.legacy:
            self.gsi[0].set(level)

    def rtc_input(self, level: int) -> None:
        self.rtc_irq_level = 1 if level else 0
        if not self.legacy:
            self.gsi[LEGACY_RTC_GSI].set(level)

    # -- registers ---------------------------------------------------------------
    def _timer_at(self, offset: int) -> _Comparator | None:
        """The comparator whose block holds ``offset``, or None when QEMU's
        range check refuses it.  The check lets index ``num_timers`` through."""
        index = (offset - TIMER_BASE) // TIMER_STRIDE
        if index > self.num_timers:
            return None
        return self.timers[index]

    def _read(self, offset: int, size: int) -> int:
        if TIMER_BASE <= offset < HPET_LEN:
            t = self._timer_at(offset)
            if t is None:
                return 0
            reg = (offset - TIMER_BASE) % TIMER_STRIDE
            if reg in (TN_CFG, TN_CFG + 4):
                value = t.config
            elif reg in (TN_CMP, TN_CMP + 4):
                value = t.cmp
            elif reg in (TN_ROUTE, TN_ROUTE + 4):
                value = t.fsb
            else:
                return 0
            return value >> 32 if reg & 4 else value
        if offset == REG_ID:
            return self.capability
        if offset == REG_PERIOD:
            return self.capability >> 32
        if offset == REG_CFG:
            return self.config
        if offset == REG_COUNTER:
            return self.counter()
        if offset == REG_COUNTER + 4:
            return self.counter() >> 32
        if offset == REG_STATUS:
            return self.isr
        return 0

    def _write(self, offset: int, size: int, value: int) -> None:
        old = self._read(offset, 4)
        if TIMER_BASE <= offset < HPET_LEN:
            t = self._timer_at(offset)
            if t is not None:
                self._write_timer(t, (offset - TIMER_BASE) % TIMER_STRIDE, old, value)
            return
        if offset == REG_CFG:
            self._write_config(old, value)
        elif offset == REG_STATUS:
            cleared = value & self.isr
            for t in self.timers[:self.num_timers]:
                if cleared & (1 << t.tn):
                    self._update_irq(t, False)
        elif offset == REG_COUNTER:
            self.hpet_counter = (self.hpet_counter & HI32) | value
        elif offset == REG_COUNTER + 4:
            self.hpet_counter = (self.hpet_counter & U32) | (value << 32)

    def _write_config(self, old: int, value: int) -> None:
        self.config = (self.config & ~CFG_WRITE_MASK) | (value & CFG_WRITE_MASK)
        if _rising(old, value, CFG_ENABLE):
            self.hpet_offset = (self.hpet_counter * CLK_PERIOD_NS - self.clock.now) & U64
            for t in self.timers[:self.num_timers]:
                if t.cmp != U64:
                    self._set_timer(t)
        elif _falling(old, value, CFG_ENABLE):
            self.hpet_counter = self.ticks()
            for t in self.timers[:self.num_timers]:
                self._del_timer(t)
        if _rising(old, value, CFG_LEGACY):
            self.pit_enabled.set(0)
            self.gsi[0].lower()
            self.gsi[LEGACY_RTC_GSI].lower()
        elif _falling(old, value, CFG_LEGACY):
            self.gsi[0].lower()
            self.pit_enabled.set(1)
            self.gsi[LEGACY_RTC_GSI].set(self.rtc_irq_level)

    def _write_timer(self, t: _Comparator, reg: int, old: int, value: int) -> None:
        if reg == TN_CFG:
            if _rising(old, value, TN_FSB_ENABLE):
                self._update_irq(t, False)
            t.config = (t.config & ~TN_CFG_WRITE_MASK) | (value & TN_CFG_WRITE_MASK)
            if value & TN_32BIT:
                t.cmp &= U32
                t.period &= U32
            if _rising(old, value, TN_ENABLE) and self.enabled:
                self._set_timer(t)
            elif _falling(old, value, TN_ENABLE):
                self._del_timer(t)
        elif reg in (TN_CMP, TN_CMP + 4):
            periodic = t.config & TN_PERIODIC
            loads_cmp = not periodic or t.config & TN_SETVAL
            period_mask = (U32 if t.config & TN_32BIT else U64) >> 1
            if reg == TN_CMP + 4:
                if loads_cmp:
                    t.cmp = (t.cmp & U32) | (value << 32)
                else:
                    t.period = (t.period & U32) | ((value & period_mask) << 32)
            else:
                if loads_cmp:
                    t.cmp = (t.cmp & HI32) | value
                if periodic:
                    t.period = (t.period & HI32) | (value & period_mask)
            t.config &= ~TN_SETVAL
            if self.enabled:
                self._set_timer(t)
        elif reg == TN_ROUTE:
            t.fsb = (t.fsb & HI32) | value
        elif reg == TN_ROUTE + 4:
            t.fsb = (value << 32) | (t.fsb & U32)

    # -- state -------------------------------------------------------------------
    @fresh_state
    def get_state(self) -> HpetState:
        """A snapshot as QEMU saves it: the counter refreshed while running."""
        stray = self.timers[self.num_timers].state() if self.num_timers < MAX_TIMERS else None
        return HpetState(
            config=self.config,
            isr=self.isr,
            hpet_counter=self.counter(),
            num_timers=self.num_timers,
            timer=[t.state() for t in self.timers[:self.num_timers]],
            rtc_irq_level=self.rtc_irq_level,
            hpet_offset=self.hpet_offset,
            stray_timer=stray,
            msi=self.msi,
        )

    def set_state(self, state: HpetState) -> None:
        """Rebuild from a snapshot as QEMU's post_load does, re-arming every
        comparator at its saved deadline."""
        state = copy_state(state)
        if not MIN_TIMERS <= state.num_timers <= MAX_TIMERS:
            raise ValueError(f"hpet: num_timers {state.num_timers} is outside "
                             f"{MIN_TIMERS}..{MAX_TIMERS}")
        if len(state.timer) != state.num_timers:
            raise ValueError(f"hpet: {len(state.timer)} timers for num_timers {state.num_timers}")
        self.config = state.config
        self.isr = state.isr
        self.hpet_counter = state.hpet_counter
        self.num_timers = state.num_timers
        self.rtc_irq_level = state.rtc_irq_level
        for t, saved in zip(self.timers, state.timer):
            t.load(saved)
        if state.stray_timer is not None and self.num_timers < MAX_TIMERS:
            self.timers[self.num_timers].load(state.stray_timer)
        if state.hpet_offset is None:
            self.hpet_offset = (self.hpet_counter * CLK_PERIOD_NS - self.clock.now) & U64
        else:
            self.hpet_offset = state.hpet_offset
        self.capability = self._capability()
        self.msi = bool(self.timers[0].config & TN_FSB_CAP)
