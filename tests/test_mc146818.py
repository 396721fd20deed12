"""The MC146818 RTC, from the Motorola MC146818A datasheet's arithmetic and
the Gregorian calendar, on QEMU 7.2's pc machine.

Expected values are worked out here from the datasheet's tables and the
calendar (through the standard library), never taken from our own output.
Two QEMU facts shape every timing below: the time base is anchored at
virtual time 0 with no sub-second offset, so updates happen on whole
virtual seconds; and QEMU's 32.768 kHz divider chain is exact, so a
boundary of N cycles falls at N * 1e9 / 32768 ns (QEMU arms its timers one
nanosecond after the truncated value).

Where QEMU departs from the datasheet, a ``test_fidelity_*`` test pins
QEMU's behaviour and its docstring says what the datasheet says.
"""
import calendar
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

from devices.mc146818 import Rtc, RtcState
from vmstate.core.irq import IrqLine
from vmstate.machine.pc import PcMachine

NS = 1_000_000_000
SECONDS, SEC_ALARM, MINUTES, MIN_ALARM, HOURS, HOUR_ALARM = 0, 1, 2, 3, 4, 5
DOW, DATE, MONTH, YEAR, REG_A, REG_B, REG_C, REG_D = 6, 7, 8, 9, 10, 11, 12, 13
CENTURY = 0x32
IRQ8 = 8

# Datasheet, table "Periodic interrupt rate and square-wave output frequency",
# 32.768 kHz time base: RS3..RS0 -> interrupt rate in Hz (0 = none).
DATASHEET_RATES_HZ = {0: 0, 1: 256, 2: 128, 3: 8192, 4: 4096, 5: 2048, 6: 1024, 7: 512,
                      8: 256, 9: 128, 10: 64, 11: 32, 12: 16, 13: 8, 14: 4, 15: 2}
# Datasheet: UIP goes to 1 tBUC = 244 us before the update cycle, which then
# takes 1984 us (32.768 kHz time base).  QEMU's window is 8 cycles of 32768 Hz.
UIP_WINDOW_NS = 8 * NS // 32768  # 244140.625 truncated


def machine(base="2010-06-08T01:23:00", clock="vm") -> PcMachine:
    m = PcMachine(rtc_base=base, rtc_clock=clock)
    m.session.intercepting = True
    # PIT channel 0 to mode 0 with no count: it stops firing every 27.5 ms,
    # which keeps the long steps below cheap.
    m.io_write(0x43, 1, 0x30)
    return m


def rd(m, index):
    m.io_write(0x70, 1, index)
    return m.io_read(0x71, 1)


def wr(m, index, value):
    m.io_write(0x70, 1, index)
    m.io_write(0x71, 1, value)


def edges(m):
    """(time, level) of every reported change of the RTC's line."""
    return [(e.time, e.level) for e in m.session.observations.edges() if e.line == IRQ8]


def bcd(n):
    return (n // 10) << 4 | n % 10


def chip_weekday(y, mo, d):
    """The RTC's day of week, 1 = Sunday, from the calendar (Monday = 0)."""
    return (calendar.weekday(y, mo, d) + 1) % 7 + 1


def bcd_registers(when: datetime):
    """Seconds..year and century as BCD bytes in 24-hour mode."""
    return [bcd(when.second), bcd(when.minute), bcd(when.hour),
            bcd(chip_weekday(when.year, when.month, when.day)), bcd(when.day),
            bcd(when.month), bcd(when.year % 100), bcd(when.year // 100)]


TIME_INDEXES = (SECONDS, MINUTES, HOURS, DOW, DATE, MONTH, YEAR, CENTURY)


def read_time(m):
    return [rd(m, i) for i in TIME_INDEXES]


def at(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# -- time of day ------------------------------------------------------------------
def test_bcd_24_hour_time_and_date():
    # 2010-06-08 was a Tuesday: day 3 counting Sunday as 1.
    assert chip_weekday(2010, 6, 8) == 3
    m = machine("2010-06-08T01:23:45")
    assert read_time(m) == [0x45, 0x23, 0x01, 0x03, 0x08, 0x06, 0x10, 0x20]
    assert rd(m, REG_A) == 0x26 and rd(m, REG_B) == 0x02  # 32.768 kHz, RS=6; 24-hour


def test_binary_mode():
    # DM=1: the same values in binary: 45 = 0x2d, 23 = 0x17, 10 = 0x0a, 20 = 0x14.
    m = machine("2010-06-08T01:23:45")
    wr(m, REG_B, 0x06)
    assert read_time(m) == [45, 23, 1, 3, 8, 6, 10, 20]


@pytest.mark.parametrize("base, dm, hours", [
    ("2010-06-08T00:30:00", 0, 0x12),         # midnight hour is 12 AM
    ("2010-06-08T11:30:00", 0, 0x11),
    ("2010-06-08T12:30:00", 0, 0x80 | 0x12),  # noon is 12 PM
    ("2010-06-08T13:05:00", 0, 0x80 | 0x01),
    ("2010-06-08T23:05:00", 0, 0x80 | 0x11),
    ("2010-06-08T23:05:00", 1, 0x80 | 11),    # binary: 11 with the PM bit
    ("2010-06-08T12:05:00", 1, 0x80 | 12),
])
def test_12_hour_mode_with_pm_bit(base, dm, hours):
    m = machine(base)
    wr(m, REG_B, 0x04 if dm else 0x00)
    assert rd(m, HOURS) == hours


def test_time_advances_one_second_per_second():
    m = machine("2010-06-08T01:23:58")
    m.clock_step(NS - 1)
    assert rd(m, SECONDS) == 0x58
    m.clock_step(1)
    assert (rd(m, SECONDS), rd(m, MINUTES)) == (0x59, 0x23)
    m.clock_step(NS)
    assert (rd(m, SECONDS), rd(m, MINUTES)) == (0x00, 0x24)


def test_set_holds_the_time_and_takes_writes():
    # Datasheet: with SET=1 the program may initialize the time bytes
    # without an update occurring; clearing SET lets updates resume.
    m = machine()
    wr(m, REG_B, 0x82)
    new = at("1999-12-31T23:59:45")
    for index, value in zip(TIME_INDEXES, bcd_registers(new)):
        wr(m, index, value)
    m.clock_step(5 * NS)
    assert read_time(m) == bcd_registers(new)
    wr(m, REG_B, 0x02)
    m.clock_step(15 * NS)
    # 15 s after 23:59:45 on 1999-12-31 is 2000-01-01 00:00:00, a Saturday (7).
    assert read_time(m) == bcd_registers(new + timedelta(seconds=15))
    assert rd(m, DOW) == 7


def test_set_clears_uie():
    # Datasheet: "The RESET pin going low or the SET bit going high clears the UIE bit."
    m = machine()
    wr(m, REG_B, 0x92)
    assert rd(m, REG_B) == 0x82


def test_clearing_set_keeps_the_sub_second_phase():
    # The divider chain is not reset by SET: frozen 0.3 s into a second, the
    # next update comes 0.7 s after SET is cleared.
    m = machine()
    m.clock_step(1_300_000_000)
    wr(m, REG_B, 0x82)
    m.clock_step(5 * NS)
    wr(m, REG_B, 0x02)
    m.clock_step(699_999_999)
    assert rd(m, SECONDS) == 0x01
    m.clock_step(1)
    assert rd(m, SECONDS) == 0x02


# -- register A ---------------------------------------------------------------------
def test_uip_window_before_each_update():
    m = machine()
    m.clock_step(NS - UIP_WINDOW_NS - 1)
    assert rd(m, REG_A) == 0x26
    m.clock_step(1)
    assert rd(m, REG_A) == 0xA6
    assert rd(m, SECONDS) == 0x00  # the update has not happened yet
    m.clock_step(UIP_WINDOW_NS)
    assert rd(m, SECONDS) == 0x01
    assert rd(m, REG_A) == 0x26


def test_uip_is_read_only():
    m = machine()
    wr(m, REG_A, 0xA6)
    assert rd(m, REG_A) == 0x26


def test_divider_reset_stops_the_clock_and_restarts_half_a_second_later():
    # Datasheet: DV2-DV0 = 11x holds the divider in reset; "the first update
    # cycle begins one-half second later" after it is released.
    m = machine()
    m.clock_step(300_000_000)
    wr(m, REG_A, 0x76)
    m.clock_step(5 * NS)
    assert rd(m, SECONDS) == 0x00
    assert rd(m, REG_A) == 0x76  # no UIP while the divider is held
    wr(m, REG_A, 0x26)
    m.clock_step(NS // 2 - 1)
    assert rd(m, SECONDS) == 0x00
    m.clock_step(1)
    assert rd(m, SECONDS) == 0x01


def test_divider_reset_stops_update_interrupts():
    m = machine()
    wr(m, REG_B, 0x12)
    wr(m, REG_A, 0x66)
    m.clock_step(3 * NS)
    assert edges(m) == [] and rd(m, REG_C) == 0


# -- interrupts ----------------------------------------------------------------------
def test_update_ended_interrupt_and_register_c():
    m = machine()
    wr(m, REG_B, 0x12)
    m.clock_step(NS)
    assert edges(m) == [(NS, 1)]
    assert rd(m, REG_C) == 0x90  # IRQF | UF
    assert edges(m) == [(NS, 1), (NS, 0)]  # reading C lowers the line
    assert rd(m, REG_C) == 0x00  # and clears it
    m.clock_step(NS)
    assert edges(m)[-1] == (2 * NS, 1)


def test_flags_set_without_their_enable_raise_nothing():
    # Datasheet: UF is set at every update whatever UIE says; IRQF only with it.
    m = machine()
    m.clock_step(NS)
    assert edges(m) == []
    assert rd(m, REG_C) == 0x10


def test_enabling_a_pending_flag_interrupts_at_once():
    m = machine()
    m.clock_step(1_100_000_000)
    wr(m, REG_B, 0x12)
    assert edges(m) == [(1_100_000_000, 1)]
    wr(m, REG_B, 0x02)
    assert edges(m)[-1] == (1_100_000_000, 0)


@pytest.mark.parametrize("rs", range(1, 16))
def test_periodic_interrupt_rate(rs):
    period = Fraction(NS, DATASHEET_RATES_HZ[rs])
    first = int(period) + 1
    second = int(2 * period) + 1
    m = machine()
    wr(m, REG_A, 0x20 | rs)
    wr(m, REG_B, 0x42)
    m.clock_step(first - 1)
    assert edges(m) == []
    m.clock_step(1)
    assert edges(m) == [(first, 1)]
    assert rd(m, REG_C) == 0xC0  # IRQF | PF
    m.clock_step(second - first)
    assert edges(m)[-1] == (second, 1)


def test_periodic_rate_zero_is_off():
    m = machine()
    wr(m, REG_A, 0x20)
    wr(m, REG_B, 0x42)
    m.clock_step(NS // 2)
    assert edges(m) == [] and rd(m, REG_C) == 0


def test_unacknowledged_periodic_ticks_are_not_counted():
    # 16 Hz: ticks at k * 62.5 ms (+1 ns).  Unacknowledged for 15 ticks, the
    # line rises once and stays high; reading C reports one PF, and the 16th
    # tick, at 1 s, interrupts again.
    m = machine()
    wr(m, REG_A, 0x2C)
    wr(m, REG_B, 0x42)
    m.clock_step(NS - 1)
    assert edges(m) == [(NS // 16 + 1, 1)]
    assert rd(m, REG_C) == 0xC0
    assert edges(m)[-1] == (NS - 1, 0)
    m.clock_step(2)
    assert edges(m)[-1] == (NS + 1, 1)


def test_alarm_at_a_given_time():
    m = machine()
    wr(m, SEC_ALARM, 0x05)
    wr(m, MIN_ALARM, 0x23)
    wr(m, HOUR_ALARM, 0x01)
    wr(m, REG_B, 0x22)
    m.clock_step(5 * NS)  # 01:23:00 + 5 s
    assert edges(m) == [(5 * NS, 1)]
    assert rd(m, REG_C) == 0xB0  # IRQF | AF | UF


def test_alarm_with_dont_care_hours():
    # 0xC0-0xFF in an alarm byte matches every value: hours don't care with
    # 24:30 fires at 01:24:30 (90 s on) and 02:24:30 (3690 s on).
    m = machine()
    wr(m, SEC_ALARM, 0x30)
    wr(m, MIN_ALARM, 0x24)
    wr(m, HOUR_ALARM, 0xC0)
    wr(m, REG_B, 0x22)
    m.clock_step(90 * NS)
    assert edges(m) == [(90 * NS, 1)]
    rd(m, REG_C)
    m.clock_step(3600 * NS)
    assert edges(m)[-1] == (3690 * NS, 1)


def test_alarm_with_all_bytes_dont_care_fires_every_second():
    m = machine()
    for index in (SEC_ALARM, MIN_ALARM, HOUR_ALARM):
        wr(m, index, 0xFF)
    wr(m, REG_B, 0x22)
    for second in (1, 2, 3):
        m.clock_step(NS)
        assert edges(m)[-1] == (second * NS, 1)
        assert rd(m, REG_C) == 0xB0


# -- the calendar ---------------------------------------------------------------------
@pytest.mark.parametrize("last_second", [
    "2010-01-31T23:59:59",  # 31-day month
    "2010-04-30T23:59:59",  # 30-day month
    "2010-12-31T23:59:59",  # year
    "2023-02-28T23:59:59",  # not a leap year
    "2024-02-28T23:59:59",  # leap year: on to the 29th
    "2024-02-29T23:59:59",
    "2000-02-28T23:59:59",  # divisible by 400: leap
    "2000-02-29T23:59:59",
])
def test_roll_over(last_second):
    start = at(last_second)
    m = machine(last_second)
    assert read_time(m) == bcd_registers(start)
    m.clock_step(NS)
    assert read_time(m) == bcd_registers(start + timedelta(seconds=1))


def test_century_byte_rolls_with_the_year():
    m = machine("2099-12-31T23:59:59")
    assert (rd(m, YEAR), rd(m, CENTURY)) == (0x99, 0x20)
    m.clock_step(NS)
    assert (rd(m, YEAR), rd(m, CENTURY)) == (0x00, 0x21)


# -- the CMOS ----------------------------------------------------------------------------
def test_pc_machine_cmos_contents():
    """What hw/i386/pc.c writes for -m 8, one CPU and boot order "cad"."""
    m = machine()
    kib_base = 640
    kib_extended = (8 * 1024) - 1024
    expected = {
        0x10: 0x00,  # no floppy drives
        0x12: 0x00,  # no hard disks
        0x14: 0x02 | 0x04,  # FPU, PS/2 mouse
        0x15: kib_base & 0xFF, 0x16: kib_base >> 8,
        0x17: kib_extended & 0xFF, 0x18: kib_extended >> 8,
        0x30: kib_extended & 0xFF, 0x31: kib_extended >> 8,
        0x34: 0x00, 0x35: 0x00,  # nothing above 16 MiB
        0x3D: 0x1 << 4 | 0x2,  # boot: disk (2), then floppy (1)
        0x38: 0x3 << 4,  # then CD-ROM (3); floppy signature check on
        0x39: 0x00,
        0x5F: 0x00,  # CPUs - 1
    }
    for index, value in expected.items():
        assert rd(m, index) == value, hex(index)
    others = set(range(0x0E, 0x80)) - set(expected) - {CENTURY, 0x37}
    assert all(rd(m, i) == 0 for i in others)


def test_plain_cmos_bytes_are_storage():
    m = machine()
    for index in (0x0E, 0x40, 0x7F):
        wr(m, index, 0xA5)
        assert rd(m, index) == 0xA5


def test_registers_c_and_d_ignore_writes():
    m = machine()
    wr(m, REG_C, 0xFF)
    wr(m, REG_D, 0x00)
    assert (rd(m, REG_C), rd(m, REG_D)) == (0x00, 0x80)  # D: VRT, valid RAM and time


# -- the host clock ---------------------------------------------------------------------
def test_host_clock_moves_the_rtc_across_a_pause():
    m = machine(clock="host")
    m.clock_step(NS)
    m.host.pause(5 * NS)  # e.g. migration downtime: host time goes on
    assert rd(m, SECONDS) == 0x06


def test_vm_clock_ignores_host_pauses():
    m = machine(clock="vm")
    m.clock_step(NS)
    m.host.pause(5 * NS)
    assert rd(m, SECONDS) == 0x01


def test_host_clock_update_interrupt_follows_the_host_clock():
    m = machine(clock="host")
    wr(m, REG_B, 0x12)
    m.clock_step(NS // 2)
    m.host.pause(NS // 4)  # the next update is now 0.25 s of virtual time away
    m.clock_step(NS // 4)
    assert edges(m) == [(3 * NS // 4, 1)]


# -- state -------------------------------------------------------------------------------
def test_state_is_an_independent_snapshot_with_the_live_time():
    m = machine()
    wr(m, REG_B, 0x42)
    m.clock_step(3 * NS + 5)
    state = m.rtc.get_state()
    assert isinstance(state, RtcState)
    assert state.cmos_data[SECONDS] == 0x03  # pre_save brings the time bytes up to date
    assert state.base_rtc == calendar.timegm((2010, 6, 8, 1, 23, 0))
    assert state.update_timer == m.rtc.update_timer.expire
    m.clock_step(NS)
    assert state.cmos_data[SECONDS] == 0x03


def test_snapshot_does_not_disturb_a_held_divider():
    # In divider reset the live CMOS time is stale on purpose: the snapshot
    # carries the live time (as QEMU's pre_save writes it), the device keeps
    # its frozen bytes.
    m = machine()
    wr(m, REG_A, 0x76)
    m.clock_step(7 * NS)
    state = m.rtc.get_state()
    assert state.cmos_data[SECONDS] == 0x07
    assert rd(m, SECONDS) == 0x00


def test_set_state_rebuilds_the_device():
    source = machine()
    wr(source, SEC_ALARM, 0x10)
    wr(source, REG_B, 0x32)
    source.clock_step(2_500_000_000)
    state = source.rtc.get_state()

    dest = machine("1990-01-01T00:00:00")
    dest.clock.warp(source.clock.now)
    dest.rtc.set_state(state)
    assert dest.rtc.get_state() == state
    for m in (source, dest):
        m.clock_step(NS)
    assert [rd(source, i) for i in range(14)] == [rd(dest, i) for i in range(14)]


def test_set_state_rephases_a_future_periodic_deadline():
    """QEMU's post_load re-arms the periodic timer one period after the load
    whenever the saved deadline is still ahead (or over 60 s behind)."""
    source = machine()
    wr(source, REG_A, 0x2F)  # 2 Hz
    wr(source, REG_B, 0x42)
    source.clock_step(NS // 10)
    state = source.rtc.get_state()
    assert state.periodic_timer == NS // 2 + 1
    dest = machine()
    dest.clock.warp(NS // 10)
    dest.rtc.set_state(state)
    ticks = NS // 10 * 32768 // NS + 16384
    assert dest.rtc.periodic_timer.expire == ticks * NS // 32768 + 1


def test_set_state_on_a_qtest_destination():
    """A qtest destination loads the stream with its virtual clock still at 0
    and is moved to the source's time afterwards.  On QEMU 7.2, a 2 Hz
    periodic timer armed at 60 ms (due at 60 ms + 500 ms) and migrated at
    160 ms fires next at 500 ms + 1 ns: post_load re-armed it from 0."""
    source = machine()
    source.clock_step(60_000_000)
    wr(source, REG_A, 0x2F)
    wr(source, REG_B, 0x42)
    source.clock_step(100_000_000)
    state = source.rtc.get_state()
    assert state.periodic_timer == (60_000_000 * 32768 // NS + 16384) * NS // 32768 + 1
    dest = machine()
    dest.rtc.set_state(state)
    dest.clock.warp(source.clock.now)
    dest.clock_step(None)
    assert edges(dest)[-1] == (16384 * NS // 32768 + 1, 1)


def test_rtc_rejects_an_unknown_clock():
    m = machine()
    with pytest.raises(ValueError):
        Rtc(m.clock, m.host, IrqLine(), 0, "rt")


# -- where QEMU 7.2 departs from the datasheet -----------------------------------------
def test_fidelity_index_bit7_is_not_an_nmi_mask():
    """Datasheet: the MC146818A has no NMI; on a PC, bit 7 of port 0x70 masks
    the NMI and is no part of the address.  QEMU drops bit 7 (index & 0x7f)
    and emulates no NMI masking."""
    m = machine()
    m.io_write(0x70, 1, 0x80 | REG_A)
    assert m.io_read(0x71, 1) == 0x26


def test_fidelity_index_port_reads_0xff():
    """Datasheet: the address is latched from the bus and cannot be read back.
    QEMU answers every read of the index port with 0xff."""
    m = machine()
    m.io_write(0x70, 1, REG_B)
    assert m.io_read(0x70, 1) == 0xFF
    assert m.io_read(0x70, 2) == 0x02FF  # the data byte comes from 0x71


def test_fidelity_128_bytes_of_cmos():
    """Datasheet: 64 bytes (14 clock registers and 50 bytes of RAM).  QEMU
    stores 128, as a PC chipset's RTC has."""
    m = machine()
    wr(m, 0x7F, 0x5A)
    wr(m, 0x3F, 0xA5)
    assert (rd(m, 0x7F), rd(m, 0x3F)) == (0x5A, 0xA5)


def test_fidelity_ps2_century_alias():
    """Datasheet: byte 0x37 does not exist (or is plain RAM on 128-byte parts).
    QEMU treats index 0x37 (the IBM PS/2 century byte) as the century at
    0x32, and the access moves the index to 0x32."""
    m = machine("2031-03-04T05:06:07")
    assert rd(m, 0x37) == 0x20
    assert m.rtc.cmos_index == CENTURY
    wr(m, REG_B, 0x82)
    wr(m, 0x37, 0x19)
    assert rd(m, CENTURY) == 0x19


def test_fidelity_century_byte_is_a_clock_register():
    """Datasheet: the year counts 00-99 and wraps; byte 0x32 is user RAM.
    QEMU keeps the century in 0x32, advances it with the year, and takes it
    into account when the guest sets the time."""
    m = machine("2010-06-08T01:23:00")
    wr(m, CENTURY, 0x21)  # written while running: re-bases at once
    assert (rd(m, YEAR), rd(m, CENTURY)) == (0x10, 0x21)
    # 2110-06-08 is a Sunday; 2010-06-08 was a Tuesday.
    assert rd(m, DOW) == chip_weekday(2110, 6, 8) == 1


def test_fidelity_2100_is_not_a_leap_year():
    """Datasheet: leap years are the years divisible by 4 on the 2-digit year,
    so year 00 of 2100 would have a 29 February.  QEMU counts in full
    Gregorian years: 2100-02-28 is followed by 2100-03-01."""
    assert not calendar.isleap(2100)
    m = machine("2100-02-28T23:59:59")
    m.clock_step(NS)
    assert (rd(m, DATE), rd(m, MONTH)) == (0x01, 0x03)


def test_fidelity_uip_only_before_the_update():
    """Datasheet: UIP is 1 from 244 us before the update until the update
    cycle ends, 1984 us later.  QEMU's update is instantaneous: UIP reads 0
    right at the update."""
    m = machine()
    m.clock_step(NS)
    assert rd(m, REG_A) == 0x26
    m.clock_step(1000)
    assert rd(m, REG_A) == 0x26


def test_fidelity_periodic_flag_needs_pie():
    """Datasheet: PF is set at the selected rate whether or not PIE is set;
    PIE only decides whether IRQ follows.  QEMU runs the periodic timer only
    while PIE is set, so PF stays clear with PIE off."""
    m = machine()
    wr(m, REG_A, 0x23)  # 8192 Hz
    m.clock_step(NS // 100)
    assert rd(m, REG_C) & 0x40 == 0


def test_fidelity_sqwe_has_no_effect():
    """Datasheet: SQWE drives the SQW pin at the periodic rate.  QEMU has no
    such pin: the bit is stored and changes nothing."""
    m = machine()
    wr(m, REG_A, 0x23)
    wr(m, REG_B, 0x0A)
    m.clock_step(NS // 100)
    assert rd(m, REG_B) == 0x0A
    assert rd(m, REG_C) == 0 and edges(m) == []


def test_fidelity_dse_ignored():
    """Datasheet: DSE makes the clock jump from 01:59:59 to 03:00:00 on the
    last Sunday of April (and repeat 01:00 on the last Sunday of October).
    QEMU stores the bit and keeps UTC."""
    last_sunday_april = max(d for d in range(1, 31) if calendar.weekday(2010, 4, d) == 6)
    m = machine(f"2010-04-{last_sunday_april:02d}T01:59:59")
    wr(m, REG_B, 0x03)
    m.clock_step(NS)
    assert (rd(m, HOURS), rd(m, MINUTES)) == (0x02, 0x00)


def test_fidelity_register_d_is_constant():
    """Datasheet: VRT reports the battery, and is set by reading D.  QEMU's D
    holds 0x80 from the start and ignores writes."""
    m = machine()
    wr(m, REG_D, 0xFF)
    assert rd(m, REG_D) == 0x80


def test_fidelity_data_mode_switch_converts_the_time():
    """Datasheet: changing DM or 24/12 does not convert the time bytes; the
    program must rewrite them.  QEMU computes the bytes from its time base
    at each read, so a switch shows the same time in the new format."""
    m = machine("2010-06-08T13:45:56")
    wr(m, REG_B, 0x06)
    assert (rd(m, SECONDS), rd(m, MINUTES), rd(m, HOURS)) == (56, 45, 13)
    wr(m, REG_B, 0x00)
    assert rd(m, HOURS) == 0x81


def test_fidelity_day_of_week_follows_the_calendar():
    """Datasheet: the day-of-week register is a counter from 1 to 7 that the
    program sets; the chip only increments it at midnight.  QEMU computes it
    from the date (1 = Sunday) and discards what the guest wrote."""
    m = machine()
    wr(m, REG_B, 0x82)
    wr(m, DOW, 0x05)
    assert rd(m, DOW) == 0x05
    wr(m, REG_B, 0x02)
    assert rd(m, DOW) == chip_weekday(2010, 6, 8)


def test_fidelity_write_while_running_restarts_the_second():
    """Datasheet: a write to a time byte does not touch the divider chain, so
    the next update keeps its phase.  QEMU re-bases the time at the write:
    the next update comes a whole second after it."""
    m = machine()
    m.clock_step(NS // 2)
    wr(m, MINUTES, 0x40)
    m.clock_step(NS // 2)
    assert rd(m, SECONDS) == 0x00
    m.clock_step(NS // 2)
    assert (rd(m, SECONDS), rd(m, MINUTES)) == (0x01, 0x40)


def test_fidelity_updates_flag_uf_while_set():
    """Datasheet: with SET=1 update cycles are inhibited, so UF is not set.
    QEMU's update timer keeps running and sets UF every second."""
    m = machine()
    wr(m, REG_B, 0x82)
    m.clock_step(2 * NS)
    assert rd(m, REG_C) == 0x10


def test_fidelity_alarm_hour_in_12_hour_mode():
    """Datasheet: the alarm fires when the hours byte equals the alarm byte,
    PM bit included: 0x92 (12 PM) 15 s after 11:59:50 AM.  QEMU reads the
    alarm byte as a number with its PM bit (0x92 -> 92), takes it modulo 12
    and adds 12 only if the *current* hour is PM: 8 AM, 72015 s later."""
    m = machine("2010-06-08T11:59:50")
    wr(m, REG_B, 0x20)
    wr(m, SEC_ALARM, 0x05)
    wr(m, MIN_ALARM, 0x00)
    wr(m, HOUR_ALARM, 0x92)
    m.clock_step(20 * NS)
    assert edges(m) == []
    # 11:59:50 + 72015 s = 08:00:05 the next day.
    delta = (at("2010-06-09T08:00:05") - at("2010-06-08T11:59:50")).total_seconds()
    m.clock_step(int(delta) * NS - 20 * NS)
    assert edges(m) == [(int(delta) * NS, 1)]


def test_fidelity_divider_values_other_than_32khz():
    """Datasheet: DV = 000 and 001 select 4.194304 MHz and 1.048576 MHz time
    bases, and other values are test modes.  QEMU runs with DV 000, 001 and
    010 alike, and with 011 to 101 freezes what the time registers read."""
    m = machine()
    wr(m, REG_A, 0x06)
    m.clock_step(NS)
    assert rd(m, SECONDS) == 0x01
    wr(m, REG_A, 0x16)
    m.clock_step(NS)
    assert rd(m, SECONDS) == 0x02
