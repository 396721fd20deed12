"""The MC146818 real-time clock and its CMOS, as QEMU 7.2's ``pc`` machine has it.

QEMU never ticks the clock: the time of day is ``base_rtc`` (epoch seconds
when the time was last set) plus the RTC clock's progress since
``last_update`` plus a sub-second ``offset``, turned into CMOS bytes only when
something looks at them.  One "update timer" stands for the chip's update
cycle: it fires each second while UF is clear, and once UF waits unread it
sleeps until the next alarm, so an idle guest costs one event a day.  The
periodic interrupt has its own timer, armed only while PIE is set.

Everything here follows ``hw/rtc/mc146818rtc.c`` of QEMU 7.2, including where
it departs from the MC146818A datasheet (the tests named ``test_fidelity_*``
pin each such place), with the ``pc`` machine's settings: base year 2000
(so the century byte 0x32 counts), interrupt line 8, and the default
lost-tick policy ``discard``, under which missed periodic ticks are dropped
rather than reinjected.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from vmstate.core.bus import Region, Sizes
from vmstate.core.clock import NANOSECONDS_PER_SECOND as NS
from vmstate.core.clock import muldiv64
from vmstate.core.device import Device
from vmstate.core.state import fresh_state, take
from vmstate.core.irq import IrqLine

RTC_CLOCK_RATE = 32768
RTC_PORT = 0x70          # index at 0x70, data at 0x71
RTC_INDEX, RTC_DATA = RTC_PORT, RTC_PORT + 1
UIP_HOLD_NS = 8 * NS // RTC_CLOCK_RATE  # the last 244,140 ns before an update
MAX_CLOCK_JUMP_NS = 60 * NS
REINJECT_ON_ACK_LIMIT = 20
U64 = (1 << 64) - 1

SECONDS, SECONDS_ALARM, MINUTES, MINUTES_ALARM, HOURS, HOURS_ALARM = range(6)
DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR = range(6, 10)
REG_A, REG_B, REG_C, REG_D = range(10, 14)
CENTURY = 0x32
PS2_CENTURY = 0x37
TIME_REGISTERS = (SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY)
ALARM_REGISTERS = (SECONDS_ALARM, MINUTES_ALARM, HOURS_ALARM)

A_UIP = 0x80
B_SET, B_PIE, B_UIE, B_DM, B_24H = 0x80, 0x40, 0x10, 0x04, 0x02  # AIE, SQWE, DSE act only through C
C_IRQF, C_PF, C_AF, C_UF = 0x80, 0x40, 0x20, 0x10
C_FLAGS = C_PF | C_AF | C_UF

# What the pc machine (hw/i386/pc.c, x86.c) stores at start with -m 8,
# -nodefaults, one CPU and the default boot order "cad", besides the clock.
PC_CMOS = {
    0x14: 0x06,  # equipment: FPU, PS/2 mouse, no floppy
    0x15: 0x80, 0x16: 0x02,  # 640 KiB of base memory
    0x17: 0x00, 0x18: 0x1C,  # 7168 KiB above 1 MiB
    0x30: 0x00, 0x31: 0x1C,  # the same, where later BIOSes look
    0x38: 0x30,  # third boot device CD-ROM; floppy signature check on
    0x3D: 0x12,  # first boot device disk, second floppy
}


def period_ticks(rate: int) -> int:
    """Periodic interval in 32 kHz cycles for rate selector RS; rates 1 and 2
    give 256 Hz and 128 Hz, the datasheet's values for a 32.768 kHz base."""
    if not rate:
        return 0
    if rate <= 2:
        rate += 7
    return 1 << (rate - 1)


def ticks_to_ns(ticks: int) -> int:
    return muldiv64(ticks, NS, RTC_CLOCK_RATE)


def _cdiv(a: int, b: int) -> int:
    """C's integer division, truncating toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a: int, b: int) -> int:
    return a - b * _cdiv(a, b)


def _signed64(value: int) -> int:
    value &= U64
    return value - (1 << 64) if value >> 63 else value


def mktimegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """QEMU's ``mktimegm`` (util/cutils.c).  Written out rather than taken
    from ``calendar.timegm`` because the guest can store any byte in the
    date registers, and QEMU's arithmetic accepts months and days out of
    range where the standard library refuses them."""
    if month < 3:
        month += 12
        year -= 1
    days = (day + _cdiv(153 * month - 457, 5) + 365 * year + _cdiv(year, 4)
            - _cdiv(year, 100) + _cdiv(year, 400) - 719469)
    return _signed64(86400 * days) + 3600 * hour + 60 * minute + second


@dataclass
class RtcState:
    """The device's full state, named as QEMU's ``mc146818rtc`` VMSD names it.

    Timer fields hold the absolute deadline on the RTC clock, or -1 when the
    timer is idle.  The CMOS time bytes are current as of the snapshot, as
    QEMU's pre_save leaves them.
    """

    cmos_data: bytes
    cmos_index: int
    periodic_timer: int
    next_periodic_time: int
    irq_coalesced: int
    period: int
    base_rtc: int
    last_update: int
    offset: int
    update_timer: int
    next_alarm_time: int
    irq_reinject_on_ack_count: int = 0
    # Set by a load from a stream without the time base (versions 1 and 2):
    # the time of day is then re-based on the CMOS bytes, as QEMU does.
    time_from_cmos: bool = False


class Rtc(Device):
    """``on_time_set`` is told of every re-basing of the time (QEMU sends
    QMP's RTC_CHANGE event then; the machine's monitor rate-limits it)."""

    name = "mc146818rtc"
    converts_on_save = True

    def __init__(self, clock, host, irq: IrqLine, base: int, clock_mode: str = "vm",
                 on_time_set: Callable[[], None] | None = None):
        if clock_mode not in ("vm", "host"):
            raise ValueError(f"RTC clock must be 'vm' or 'host', not {clock_mode!r}")
        self.clock_mode = clock_mode
        self.rtc_clock = host if clock_mode == "host" else clock
        self.irq = irq
        self.cmos = bytearray(128)
        self.cmos_index = 0
        self.irq_coalesced = 0
        self.irq_reinject_on_ack_count = 0
        self.period = 0
        self.next_periodic_time = 0
        self.next_alarm_time = 0
        self.periodic_timer = self.rtc_clock.timer(self._periodic_fired, "rtc-periodic")
        self.update_timer = self.rtc_clock.timer(self._update_fired, "rtc-update")
        self.on_time_set = on_time_set
        self._flagged_until: int | None = None
        self.region = Region("rtc", 2, self._read, self._write, impl=Sizes(1, 1))

        self.cmos[REG_A] = 0x26
        self.cmos[REG_B] = B_24H
        self.cmos[REG_D] = 0x80
        for index, value in PC_CMOS.items():
            self.cmos[index] = value
        now = self.rtc_clock.now
        # QEMU's -rtc base= anchors the virtual clock's zero; the host clock
        # already carries the base in its epoch.
        self.base_rtc = now // NS if clock_mode == "host" else base + now // NS
        self.last_update = now
        self.offset = 0
        self._write_time_to_cmos(self.base_rtc)
        self._check_update_timer()

    # -- time of day ---------------------------------------------------------
    def now(self) -> int:
        """The time of the clock the RTC follows (QEMU's ``rtc_clock``)."""
        return self.rtc_clock.now

    def _running(self) -> bool:
        return not self.cmos[REG_B] & B_SET and (self.cmos[REG_A] & 0x70) <= 0x20

    def divider_held(self) -> bool:
        """Register A's divider bits 11x: the divider chain held in reset."""
        return (self.cmos[REG_A] & 0x60) == 0x60

    def guest_ns(self) -> int:
        """The guest's time of day in epoch nanoseconds, as an unsigned 64-bit
        value (QEMU's arithmetic)."""
        return (self.base_rtc * NS + self.now() - self.last_update + self.offset) & U64

    def _to_bcd(self, value: int) -> int:
        if self.cmos[REG_B] & B_DM:
            return value & 0xFF
        if value >= 0:
            # C's division and remainder, as below, for the usual case:
            # every save writes the time registers through here.
            return ((value // 10) << 4 | value % 10) & 0xFF
        return ((_cdiv(value, 10) << 4) | _cmod(value, 10)) & 0xFF

    def _from_bcd(self, value: int) -> int:
        """A register's value, or -1 for a don't-care byte (0xC0 to 0xFF)."""
        if value & 0xC0 == 0xC0:
            return -1
        if self.cmos[REG_B] & B_DM:
            return value
        return (value >> 4) * 10 + (value & 0x0F)

    def _write_time_to_cmos(self, seconds: int) -> None:
        try:
            tm = time.gmtime(seconds)
        except (OverflowError, OSError, ValueError):
            return
        cmos = self.cmos
        cmos[SECONDS] = self._to_bcd(tm.tm_sec)
        cmos[MINUTES] = self._to_bcd(tm.tm_min)
        if cmos[REG_B] & B_24H:
            cmos[HOURS] = self._to_bcd(tm.tm_hour)
        else:
            cmos[HOURS] = self._to_bcd(tm.tm_hour % 12 or 12) | (0x80 if tm.tm_hour >= 12 else 0)
        # Python counts weekdays from Monday = 0, the chip from Sunday = 1.
        cmos[DAY_OF_WEEK] = self._to_bcd((tm.tm_wday + 1) % 7 + 1)
        cmos[DAY_OF_MONTH] = self._to_bcd(tm.tm_mday)
        cmos[MONTH] = self._to_bcd(tm.tm_mon)
        cmos[YEAR] = self._to_bcd(_cmod(tm.tm_year, 100))
        cmos[CENTURY] = self._to_bcd(_cdiv(tm.tm_year, 100))

    def _update_time(self) -> None:
        """Bring the CMOS time bytes up to the live time, unless SET holds them."""
        seconds = _cdiv(_signed64(self.guest_ns()), NS)
        if not self.cmos[REG_B] & B_SET:
            self._write_time_to_cmos(seconds)

    def _cmos_seconds(self) -> int:
        cmos = self.cmos
        hour = self._from_bcd(cmos[HOURS] & 0x7F)
        if not cmos[REG_B] & B_24H:
            hour = _cmod(hour, 12) + (12 if cmos[HOURS] & 0x80 else 0)
        year = self._from_bcd(cmos[YEAR]) + 100 * self._from_bcd(cmos[CENTURY])
        return mktimegm(year, self._from_bcd(cmos[MONTH]), self._from_bcd(cmos[DAY_OF_MONTH]),
                        hour, self._from_bcd(cmos[MINUTES]), self._from_bcd(cmos[SECONDS]))

    def _set_time(self) -> None:
        """Re-base the clock on what the CMOS time bytes say now."""
        self.base_rtc = self._cmos_seconds() & U64
        self.last_update = self.now()
        if self.on_time_set is not None:
            self.on_time_set()

    # -- the update cycle and the alarm ---------------------------------------
    def _hour_24(self, hour: int) -> int:
        """QEMU's alarm arithmetic: a 12-hour value taken whole (PM bit and
        all) modulo 12, plus 12 when the *current* hour has its PM bit."""
        if not self.cmos[REG_B] & B_24H:
            hour = _cmod(hour, 12) + (12 if self.cmos[HOURS] & 0x80 else 0)
        return hour

    def _seconds_to_alarm(self) -> int:
        """Seconds from the current second to the next alarm match, 1 to 86400."""
        self._update_time()
        cmos = self.cmos
        a_sec = self._from_bcd(cmos[SECONDS_ALARM])
        a_min = self._from_bcd(cmos[MINUTES_ALARM])
        a_hour = self._from_bcd(cmos[HOURS_ALARM])
        a_hour = -1 if a_hour == -1 else self._hour_24(a_hour)
        sec = self._from_bcd(cmos[SECONDS])
        minute = self._from_bcd(cmos[MINUTES])
        hour = self._hour_24(self._from_bcd(cmos[HOURS]))

        if a_hour == -1:
            a_hour = hour
            if a_min == -1:
                a_min = minute
                if a_sec == -1:
                    a_sec = sec + 1
                elif sec > a_sec:
                    a_min += 1
            elif minute == a_min:
                if a_sec == -1:
                    a_sec = sec + 1
                elif sec > a_sec:
                    a_hour += 1
                if a_sec == 60:
                    a_sec = 0
                    a_hour += 1
            elif minute > a_min:
                a_hour += 1
        elif hour == a_hour:
            if a_min == -1:
                a_min = minute
                if a_sec == -1:
                    a_sec = sec + 1
                elif sec > a_sec:
                    a_min += 1
                if a_sec == 60:
                    a_sec = 0
                    a_min += 1
                a_min = _cmod(a_min, 60)
            elif minute == a_min:
                if a_sec == -1:
                    a_sec = sec + 1
                a_sec = _cmod(a_sec, 60)

        if a_min == -1:
            a_min = 0
        if a_sec == -1:
            a_sec = 0
        if a_sec == 60:
            a_sec = 0
            a_min += 1
        if a_min == 60:
            a_min = 0
            a_hour += 1
        a_hour = _cmod(a_hour, 24)

        delta = ((a_hour - hour) * 60 + a_min - minute) * 60 + a_sec - sec
        return delta + 86400 if delta <= 0 else delta

    def _check_update_timer(self) -> None:
        cmos = self.cmos
        if self.divider_held():
            self.update_timer.delete()
            return
        next_update = self.now() + NS - self.guest_ns() % NS
        self.next_alarm_time = (next_update + (self._seconds_to_alarm() - 1) * NS) & U64
        # With UF still unacknowledged, only the alarm can change C: sleep
        # until then, or altogether when AF cannot change either.
        if not cmos[REG_A] & A_UIP and cmos[REG_C] & C_UF:
            if cmos[REG_B] & B_SET or cmos[REG_C] & C_AF:
                self.update_timer.delete()
                return
            next_update = self.next_alarm_time
        if next_update != self.update_timer.expire:
            self.update_timer.mod(next_update)

    def _update_fired(self) -> None:
        cmos = self.cmos
        self._update_time()
        cmos[REG_A] &= ~A_UIP & 0xFF
        flags = C_UF
        if self.now() >= self.next_alarm_time:
            flags |= C_AF
        new = flags & ~cmos[REG_C]
        cmos[REG_C] |= flags
        if new & cmos[REG_B]:
            cmos[REG_C] |= C_IRQF
            self.irq.raise_()
        self._check_update_timer()

    def _update_in_progress(self) -> bool:
        """UIP as QEMU reports it: latched once the update timer is within
        the hold window, else read off the live sub-second."""
        if not self._running():
            return False
        if self.update_timer.pending and self.now() >= self.update_timer.expire - UIP_HOLD_NS:
            self.cmos[REG_A] |= A_UIP
            return True
        return _cmod(_signed64(self.guest_ns()), NS) >= NS - UIP_HOLD_NS

    # -- the periodic interrupt -------------------------------------------------
    def _periodic_clock_ticks(self) -> int:
        if not self.cmos[REG_B] & B_PIE:
            return 0
        return period_ticks(self.cmos[REG_A] & 0x0F)

    def _periodic_update(self, now: int, old_period: int, period_change: bool) -> None:
        """Re-arm the periodic timer.  When the rate or PIE changes, the
        interval already elapsed since the last tick counts toward the next
        one, up to one period (the discard policy drops whatever is older)."""
        period = self._periodic_clock_ticks()
        self.period = period
        if not period:
            self.irq_coalesced = 0
            self.periodic_timer.delete()
            return
        cur = muldiv64(now, RTC_CLOCK_RATE, NS)
        lost = 0
        if old_period and period_change:
            last = muldiv64(self.next_periodic_time, RTC_CLOCK_RATE, NS) - old_period
            lost = cur - last
        lost = min(lost, period)
        self.next_periodic_time = ticks_to_ns(cur + period - lost) + 1
        self.periodic_timer.mod(self.next_periodic_time)

    def _periodic_fired(self) -> None:
        at = self.next_periodic_time
        horizon = self.rtc_clock.horizon
        flagged = self.cmos[REG_C] & (C_PF | C_IRQF) == C_PF | C_IRQF
        if flagged and self._flagged_until == horizon:
            at = self._skip_periods(at, horizon)
        # A tick that finds PF and IRQF set changes nothing a guest or a
        # qtest client can see, but the next deadline: once one such tick
        # has passed in a clock step, the step skips whole periods.
        self._flagged_until = horizon if flagged else None
        self._periodic_update(at, self.period, False)
        self.cmos[REG_C] |= C_PF
        if self.cmos[REG_B] & B_PIE:
            self.cmos[REG_C] |= C_IRQF
            self.irq.raise_()

    def _skip_periods(self, at: int, horizon: int) -> int:
        """The tick whole periods after ``at`` and two periods before
        ``horizon`` (ticks fall on the 32 kHz grid, one period apart)."""
        tick = muldiv64(at, RTC_CLOCK_RATE, NS)
        periods = (muldiv64(horizon, RTC_CLOCK_RATE, NS) - tick) // self.period - 2
        return ticks_to_ns(tick + periods * self.period) + 1 if periods > 0 else at

    # -- the ports -----------------------------------------------------------
    def _write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if not offset & 1:
            self.cmos_index = value & 0x7F
            return
        index = self.cmos_index
        if index in ALARM_REGISTERS:
            self.cmos[index] = value
            self._check_update_timer()
        elif index == PS2_CENTURY or index in TIME_REGISTERS:
            if index == PS2_CENTURY:
                index = self.cmos_index = CENTURY
            self.cmos[index] = value
            if self._running():
                self._set_time()
                self._check_update_timer()
        elif index == REG_A:
            self._write_a(value)
        elif index == REG_B:
            self._write_b(value)
        elif index not in (REG_C, REG_D):
            self.cmos[index] = value

    def _write_a(self, value: int) -> None:
        cmos = self.cmos
        rate_changed = (cmos[REG_A] ^ value) & 0x0F
        old_period = self._periodic_clock_ticks()
        if value & 0x60 == 0x60:
            if self._running():
                self._update_time()
            cmos[REG_A] &= ~A_UIP & 0xFF
        elif self.divider_held() and (value & 0x70) <= 0x20:
            # Leaving divider reset: the first update comes half a second later.
            if not cmos[REG_B] & B_SET:
                self.offset = NS // 2
                self._set_time()
            cmos[REG_A] &= ~A_UIP & 0xFF
        cmos[REG_A] = (value & ~A_UIP) | (cmos[REG_A] & A_UIP)
        if rate_changed:
            self._periodic_update(self.now(), old_period, True)
        self._check_update_timer()

    def _write_b(self, value: int) -> None:
        cmos = self.cmos
        pie_changed = (cmos[REG_B] ^ value) & B_PIE
        old_period = self._periodic_clock_ticks()
        if value & B_SET:
            if self._running():
                self._update_time()
            cmos[REG_A] &= ~A_UIP & 0xFF
            value &= ~B_UIE
        elif cmos[REG_B] & B_SET and (cmos[REG_A] & 0x70) <= 0x20:
            # Leaving SET keeps the sub-second phase of the divider chain.
            self.offset = self.guest_ns() % NS
            self._set_time()
        if value & cmos[REG_C] & C_FLAGS:
            cmos[REG_C] |= C_IRQF
            self.irq.raise_()
        else:
            cmos[REG_C] &= ~C_IRQF & 0xFF
            self.irq.lower()
        cmos[REG_B] = value
        if pie_changed:
            self._periodic_update(self.now(), old_period, True)
        self._check_update_timer()

    def _read(self, offset: int, size: int) -> int:
        if not offset & 1:
            return 0xFF
        cmos = self.cmos
        index = self.cmos_index
        if index == PS2_CENTURY or index in TIME_REGISTERS:
            if index == PS2_CENTURY:
                index = self.cmos_index = CENTURY
            if self._running():
                self._update_time()
            return cmos[index]
        if index == REG_A:
            return cmos[REG_A] | (A_UIP if self._update_in_progress() else 0)
        if index == REG_C:
            return self._read_c()
        return cmos[index]

    def _read_c(self) -> int:
        cmos = self.cmos
        value = cmos[REG_C]
        self.irq.lower()
        cmos[REG_C] = 0
        if value & (C_UF | C_AF):
            self._check_update_timer()
        if (self.irq_coalesced and cmos[REG_B] & B_PIE
                and self.irq_reinject_on_ack_count < REINJECT_ON_ACK_LIMIT):
            # Only a loaded stream can bring coalesced ticks under the
            # discard policy.  Under qtest's interception nothing reaches a
            # CPU, so QEMU counts the reinjected tick as undelivered.
            self.irq_reinject_on_ack_count += 1
            cmos[REG_C] |= C_IRQF | C_PF
            self.irq.raise_()
        return value

    # -- state -----------------------------------------------------------------
    @fresh_state
    def get_state(self) -> RtcState:
        """The state as QEMU saves it: its pre_save brings the CMOS time
        bytes up to the running time (even while the divider holds it:
        QEMU 7.2 does, and a held clock then jumps on the destination)."""
        state = self.live_state()
        if not self.cmos[REG_B] & B_SET:
            live = self.cmos[:]
            self._update_time()
            state.cmos_data, self.cmos[:] = bytes(self.cmos), live
        return state

    def live_state(self) -> RtcState:
        """The state as the device holds it, CMOS bytes as last written."""
        return RtcState(
            cmos_data=bytes(self.cmos),
            cmos_index=self.cmos_index,
            periodic_timer=self.periodic_timer.expire,
            next_periodic_time=self.next_periodic_time,
            irq_coalesced=self.irq_coalesced,
            period=self.period,
            base_rtc=self.base_rtc,
            last_update=self.last_update,
            offset=self.offset,
            update_timer=self.update_timer.expire,
            next_alarm_time=self.next_alarm_time,
            irq_reinject_on_ack_count=self.irq_reinject_on_ack_count,
        )

    def set_state(self, state: RtcState) -> None:
        """Load a version-3 state as QEMU's post_load does: the time base is
        taken as saved; the period is recomputed from the registers; and a
        periodic deadline in the future, or more than a minute stale, is
        re-armed one period from now."""
        take(self, state, skip=("cmos_data", "periodic_timer", "update_timer", "period", "time_from_cmos"))
        self.cmos[:] = state.cmos_data
        self.periodic_timer.load(state.periodic_timer)
        self.update_timer.load(state.update_timer)
        if state.time_from_cmos:
            self._set_time()
            self.offset = 0
            self._check_update_timer()
        self.period = self._periodic_clock_ticks()
        now = self.now()
        if now < self.next_periodic_time or now > self.next_periodic_time + MAX_CLOCK_JUMP_NS:
            self._periodic_update(now, self.period, False)
