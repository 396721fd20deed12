"""The HPET, checked against the IA-PC HPET specification 1.0a.

Expected values come from the specification's arithmetic, not from the model.
The pc HPET's COUNTER_CLK_PERIOD is 10,000,000 fs = 10 ns, so the main
counter runs at 1e15 / 1e7 = 100 MHz: after t ns of running it has advanced
floor(t / 10) ticks, and a comparator k ticks ahead of the counter matches
10 * k ns later.

Register offsets (spec section 2.3): GCAP_ID 0x000, GEN_CONF 0x010,
GINTR_STA 0x020, MAIN_CNT 0x0f0, and per timer n at 0x100 + 0x20 * n:
Tn_CONF 0x00, Tn_COMP 0x08, Tn_FSB_ROUTE 0x10.

Where QEMU 7.2 departs from the specification a ``test_fidelity_*`` test
pins QEMU's behaviour; its docstring says what the specification says.
"""
from __future__ import annotations

import pytest

from devices.hpet import Hpet, HpetState
from vmstate.core.bus import AddressSpace
from vmstate.core.clock import VirtualClock
from vmstate.core.irq import IrqLine
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Edge

BASE = 0xFED00000
GCAP_ID, GEN_CONF, GINTR_STA, MAIN_CNT = 0x000, 0x010, 0x020, 0x0F0
ENABLE_CNF, LEG_RT_CNF = 1 << 0, 1 << 1
# Tn_CONF bits (spec table 2-9)
INT_TYPE_LEVEL = 1 << 1
INT_ENB = 1 << 2
TYPE_PERIODIC = 1 << 3
PER_INT_CAP = 1 << 4
SIZE_CAP = 1 << 5
VAL_SET = 1 << 6
MODE32 = 1 << 8
FSB_EN = 1 << 14
PERIOD_NS = 10  # 10,000,000 fs


def route(gsi: int) -> int:
    return gsi << 9  # Tn_INT_ROUTE_CNF, bits 13:9


def tn(n: int, reg: int = 0) -> int:
    return 0x100 + 0x20 * n + reg


CONF, COMP, FSB = 0x00, 0x08, 0x10


class Rig:
    """A pc machine with interception on; HPET accesses by offset."""

    def __init__(self):
        self.m = PcMachine()
        self.m.session.intercepting = True

    def w(self, offset: int, value: int, size: int = 4) -> None:
        self.m.mem_write(BASE + offset, size, value)

    def r(self, offset: int, size: int = 4) -> int:
        return self.m.mem_read(BASE + offset, size)

    def step(self, ns: int) -> None:
        self.m.clock_step(ns)

    @property
    def now(self) -> int:
        return self.m.clock.now

    def edges(self, line: int | None = None) -> list[tuple[int, int, int]]:
        """(time, line, level) of each change the qtest client saw."""
        return [(e.time, e.line, e.level) for e in self.m.session.observations.events
                if isinstance(e, Edge) and (line is None or e.line == line)]

    def rises(self, line: int) -> list[int]:
        return [t for t, _, level in self.edges(line) if level]

    def oneshot(self, n: int, cmp: int, cfg: int = 0, gsi: int = 2) -> None:
        self.w(tn(n, COMP + 4), cmp >> 32)
        self.w(tn(n, CONF), INT_ENB | route(gsi) | cfg)
        self.w(tn(n, COMP), cmp & 0xFFFFFFFF)

    def periodic(self, n: int, first: int, period: int, cfg: int = 0, gsi: int = 2) -> None:
        """Linux's sequence: high half cleared, then VAL_SET, accumulator, period."""
        self.w(tn(n, COMP + 4), 0)
        self.w(tn(n, CONF), INT_ENB | TYPE_PERIODIC | VAL_SET | route(gsi) | cfg)
        self.w(tn(n, COMP), first)
        self.w(tn(n, COMP), period)


@pytest.fixture
def hp():
    return Rig()


# -- capabilities and reset ----------------------------------------------------------
def test_capabilities_register_fields(hp):
    # REV_ID 1 (bits 7:0), NUM_TIM_CAP = 3 timers - 1 (12:8), COUNT_SIZE_CAP
    # 64-bit (13), LEG_RT_CAP (15), VENDOR_ID 0x8086 (31:16), and
    # COUNTER_CLK_PERIOD 10 ns = 10,000,000 fs (63:32).
    expected = 0x01 | (3 - 1) << 8 | 1 << 13 | 1 << 15 | 0x8086 << 16 | 10_000_000 << 32
    assert expected == 0x009896808086A201
    assert hp.r(GCAP_ID, 8) == expected
    assert hp.r(GCAP_ID) == expected & 0xFFFFFFFF
    assert hp.r(GCAP_ID + 4) == 10_000_000


def test_timer_reset_values(hp):
    # Each timer: periodic-capable and 64-bit-capable, interrupt routing
    # capability bit 2 only (the pc machine's HPET may use GSI 2), all
    # configuration bits clear; comparators reset to all ones.
    for n in range(3):
        assert hp.r(tn(n, CONF), 8) == (1 << 2) << 32 | PER_INT_CAP | SIZE_CAP
        assert hp.r(tn(n, COMP), 8) == 2**64 - 1
        assert hp.r(tn(n, FSB), 8) == 0
    assert hp.r(GEN_CONF) == 0
    assert hp.r(GINTR_STA) == 0
    assert hp.r(MAIN_CNT, 8) == 0


def test_general_configuration_has_two_writable_bits(hp):
    hp.w(GEN_CONF, 0xFFFFFFFF)
    assert hp.r(GEN_CONF, 8) == ENABLE_CNF | LEG_RT_CNF
    hp.w(GEN_CONF, 0)
    assert hp.r(GEN_CONF) == 0


# -- the main counter ---------------------------------------------------------------
def test_counter_runs_at_100mhz_only_while_enabled(hp):
    hp.step(1_000_000)
    assert hp.r(MAIN_CNT, 8) == 0                     # halted from reset
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(1_000_000)
    assert hp.r(MAIN_CNT, 8) == 1_000_000 // 10       # 1 ms = 100,000 ticks
    hp.step(9)
    assert hp.r(MAIN_CNT) == 100_000                  # 9 ns: not yet a tick
    hp.step(1)
    assert hp.r(MAIN_CNT) == 100_001


def test_halting_and_restarting_keeps_the_value(hp):
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_500)                                     # 250 ticks
    hp.w(GEN_CONF, 0)
    hp.step(1_000_000)
    assert hp.r(MAIN_CNT, 8) == 250
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(500)                                       # +50
    assert hp.r(MAIN_CNT, 8) == 300


def test_counter_write_while_halted_by_halves(hp):
    hp.w(MAIN_CNT, 0x89ABCDEF)
    hp.w(MAIN_CNT + 4, 0x01234567)
    assert hp.r(MAIN_CNT, 8) == 0x0123456789ABCDEF
    assert hp.r(MAIN_CNT + 4) == 0x01234567
    hp.w(MAIN_CNT, 0xFFFFFFF0)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(200)                                       # 20 ticks: carries into the high half
    assert hp.r(MAIN_CNT, 8) == 0x0123456800000004


def test_counter_64bit_write_and_read(hp):
    hp.w(MAIN_CNT, 0x0000000FFFFFFF00, size=8)
    assert hp.r(MAIN_CNT, 8) == 0x0000000FFFFFFF00
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_570)                                     # 257 ticks = 0x101
    assert hp.r(MAIN_CNT, 8) == 0x0000001000000001


# -- one-shot comparators ---------------------------------------------------------------
def test_oneshot_interrupts_once_at_the_match(hp):
    hp.oneshot(0, 250)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(100_000)
    # 250 ticks after enabling at 0 ns: 2500 ns; edge mode, one pulse
    assert hp.edges(2) == [(2_500, 2, 1), (2_500, 2, 0)]
    assert hp.r(GINTR_STA) == 0
    assert hp.r(tn(0, COMP), 8) == 250                 # one-shot: comparator unchanged


def test_comparator_write_while_running_rearms(hp):
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.oneshot(0, 1_000)
    hp.step(5_000)                                     # counter 500
    hp.w(tn(0, COMP), 2_000)                           # the match moves to 2000 ticks
    hp.step(100_000)
    assert hp.rises(2) == [20_000]


def test_halt_cancels_and_enable_rearms_from_the_held_counter(hp):
    hp.oneshot(0, 500)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_000)                                     # counter 200
    hp.w(GEN_CONF, 0)
    hp.step(10_000)
    assert hp.rises(2) == []
    hp.w(GEN_CONF, ENABLE_CNF)                          # at 12,000 ns, counter 200
    hp.step(10_000)
    assert hp.rises(2) == [12_000 + (500 - 200) * PERIOD_NS]


# -- periodic comparators ------------------------------------------------------------------
def test_periodic_accumulator_with_val_set(hp):
    # VAL_SET: the first write sets the accumulator (300), the second the
    # period (200).  Matches at 300, 500, 700, ... ticks = 3000, 5000, 7000 ns;
    # after each the accumulator holds the next match.
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.periodic(0, 300, 200)
    assert hp.r(tn(0, CONF)) & VAL_SET == 0            # consumed by the first write
    assert hp.r(tn(0, COMP), 8) == 300
    hp.step(3_990)
    assert hp.r(tn(0, COMP), 8) == 500
    hp.step(6_000)
    assert hp.r(tn(0, COMP), 8) == 1_100
    assert {3_000, 5_000, 7_000, 9_000} <= set(hp.rises(2))


def test_periodic_without_val_set_writes_the_period_only(hp):
    hp.w(tn(0, COMP + 4), 0)
    hp.w(tn(0, COMP), 100)                              # one-shot: sets the comparator
    hp.w(tn(0, CONF), INT_ENB | TYPE_PERIODIC | route(2))
    hp.w(tn(0, COMP), 50)                               # periodic, no VAL_SET: the period
    assert hp.r(tn(0, COMP), 8) == 100
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_990)
    assert hp.r(tn(0, COMP), 8) == 300                  # 100 -> 150 -> 200 -> 250 -> 300
    assert {1_000, 1_500, 2_000, 2_500} <= set(hp.rises(2))


# -- 32-bit mode -------------------------------------------------------------------------------
def test_32bit_mode_truncates_comparator(hp):
    hp.w(tn(0, CONF), MODE32)
    assert hp.r(tn(0, COMP), 8) == 0xFFFFFFFF


def test_32bit_periodic_wraps_with_the_low_counter(hp):
    # counter 0xfffffe00, accumulator 0xffffff80 (0x180 = 384 ticks away),
    # period 0x100: matches at 3840 ns, then at 0x80 (0xffffff80 + 0x100
    # modulo 2**32, after the wrap) 2560 ns later, then 0x180.
    hp.w(MAIN_CNT, 0xFFFFFE00)
    hp.w(tn(0, CONF), INT_ENB | TYPE_PERIODIC | VAL_SET | MODE32 | route(2))
    hp.w(tn(0, COMP), 0xFFFFFF80)
    hp.w(tn(0, COMP), 0x100)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(3_850)
    assert hp.r(tn(0, COMP), 8) == 0x80
    hp.step(2_560)
    assert hp.r(tn(0, COMP), 8) == 0x180
    assert {3_840, 6_400} <= set(hp.rises(2))


def test_32bit_oneshot_interrupts_at_wrap_and_at_match(hp):
    # counter 0xffffff00, comparator 0x80: the counter's low half wraps
    # 0x100 ticks later and matches 0x180 ticks later (3840 ns): the spec's
    # one-shot 32-bit timer interrupts at both.
    hp.w(MAIN_CNT, 0xFFFFFF00)
    hp.oneshot(0, 0x80, MODE32)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(100_000)
    rises = hp.rises(2)
    assert len(rises) == 2
    assert rises[1] == 0x180 * PERIOD_NS


# -- interrupts ----------------------------------------------------------------------------------
def test_level_interrupt_sets_status_until_cleared(hp):
    hp.oneshot(1, 100, INT_TYPE_LEVEL, gsi=5)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(5_000)
    assert hp.edges(5) == [(1_000, 5, 1)]
    assert hp.r(GINTR_STA) == 1 << 1
    hp.w(GINTR_STA, 0)                                  # writing 0 changes nothing
    hp.w(GINTR_STA, ~(1 << 1) & 0xFFFFFFFF)
    assert hp.r(GINTR_STA) == 1 << 1
    hp.w(GINTR_STA, 1 << 1)                             # write 1 to clear
    assert hp.r(GINTR_STA) == 0
    assert hp.edges(5)[-1] == (5_000, 5, 0)


def test_edge_interrupt_leaves_status_clear(hp):
    hp.oneshot(2, 100, gsi=11)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(5_000)
    assert hp.edges(11) == [(1_000, 11, 1), (1_000, 11, 0)]
    assert hp.r(GINTR_STA) == 0


def test_legacy_replacement_routes_timers_0_and_1(hp):
    # LEG_RT_CNF: timer 0 takes the PIT's IRQ 0, timer 1 the RTC's IRQ 8,
    # whatever their route fields say; timer 2 keeps its route.
    hp.oneshot(0, 100, gsi=5)
    hp.oneshot(1, 200, gsi=5)
    hp.oneshot(2, 300, gsi=5)
    hp.w(GEN_CONF, ENABLE_CNF | LEG_RT_CNF)
    hp.step(5_000)
    assert hp.rises(0) == [1_000]
    assert hp.rises(8) == [2_000]
    assert hp.rises(5) == [3_000]


def test_legacy_replacement_silences_the_pit_and_rtc(hp):
    # The PIT runs in mode 3 from reset (count 65536 at 1,193,182 Hz): its
    # output would rise on GSI 0 every ~54.9 ms.  Under legacy replacement
    # nothing of it reaches GSI 0, and the RTC's output is held off GSI 8.
    hp.w(GEN_CONF, LEG_RT_CNF)
    hp.m.io_write(0x70, 1, 0x0B)
    hp.m.io_write(0x71, 1, 0x42)                        # RTC periodic interrupt enable
    hp.step(200_000_000)
    assert hp.edges(0) == [] and hp.edges(8) == []
    assert hp.m.hpet.rtc_irq_level == 1
    hp.w(GEN_CONF, 0)                                   # the RTC's held level comes back
    assert hp.edges(8) == [(200_000_000, 8, 1)]


# -- state ---------------------------------------------------------------------------------------
def _busy(hp: Rig) -> None:
    hp.periodic(0, 300, 700)
    hp.oneshot(1, 0x150, INT_TYPE_LEVEL | MODE32, gsi=5)
    hp.w(tn(2, FSB), 0x12345678)
    hp.w(tn(3, CONF), INT_ENB | TYPE_PERIODIC | route(7))    # the stray timer
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.w(tn(3, COMP), 0)
    hp.w(tn(3, COMP), 450)
    hp.step(1_237)


def _drive(hp: Rig) -> list[tuple[int, int, int]]:
    start = len(hp.edges())
    hp.step(20_003)
    hp.w(GINTR_STA, 2)
    hp.w(tn(1, COMP), 0x900)
    hp.step(40_000)
    return hp.edges()[start:] + [(hp.r(MAIN_CNT, 8), hp.r(GINTR_STA), hp.r(tn(0, COMP), 8))]


def test_reset_state_is_qemus(hp):
    from devices.hpet import HpetTimerState

    def idle(n: int, config: int, cmp: int) -> HpetTimerState:
        return HpetTimerState(tn=n, config=config, cmp=cmp, fsb=0, period=0, wrap_flag=0, expire=-1)

    reset = (1 << 2) << 32 | PER_INT_CAP | SIZE_CAP
    assert hp.m.hpet.get_state() == HpetState(
        config=0, isr=0, hpet_counter=0, num_timers=3,
        timer=[idle(n, reset, 2**64 - 1) for n in range(3)],
        rtc_irq_level=0, hpet_offset=0, stray_timer=idle(3, 0, 0), msi=False)


def test_state_snapshot_is_independent_and_refreshes_the_counter(hp):
    _busy(hp)
    state = hp.m.hpet.get_state()
    assert state.hpet_counter == hp.r(MAIN_CNT, 8) == 1_237 // 10
    assert hp.m.hpet.hpet_counter == 0                  # the device itself is untouched
    assert [t.tn for t in state.timer] == [0, 1, 2] and state.stray_timer.tn == 3
    assert state.timer[0].expire == hp.m.hpet.timers[0].timer.expire != -1
    state.timer[1].cmp = 0
    assert hp.m.hpet.timers[1].cmp == 0x150
    hp.step(10_000)                                     # timer 0's accumulator moves on
    assert state.hpet_counter == 123
    assert state.timer[0].cmp == 300 != hp.m.hpet.get_state().timer[0].cmp


def test_set_state_rebuilds_a_running_hpet():
    a, b = Rig(), Rig()
    _busy(a)
    state = a.m.hpet.get_state()
    b.m.clock_set(a.now)
    b.m.hpet.set_state(state)
    assert b.m.hpet.get_state() == a.m.hpet.get_state()
    assert _drive(b) == _drive(a)


def test_set_state_without_offset_derives_it_from_the_counter():
    # A stream without hpet/offset: offset = counter * 10 - now.  At 1237 ns
    # the counter reads 123, so the offset is 1230 - 1237 = -7 (mod 2**64):
    # the 7 ns into the current tick are lost, the counter reads the same.
    a, b = Rig(), Rig()
    _busy(a)
    state = a.m.hpet.get_state()
    state.hpet_offset = None
    b.m.clock_set(a.now)
    b.m.hpet.set_state(state)
    assert b.m.hpet.hpet_offset == (123 * 10 - 1_237) % 2**64
    assert b.r(MAIN_CNT, 8) == a.r(MAIN_CNT, 8) == 123
    b.step(3)
    a.step(3)
    assert (b.r(MAIN_CNT), a.r(MAIN_CNT)) == (123, 124)


def test_set_state_rejects_timer_count_out_of_range(hp):
    state = hp.m.hpet.get_state()
    bad = HpetState(**{**state.__dict__, "num_timers": 33})
    with pytest.raises(ValueError):
        hp.m.hpet.set_state(bad)


def test_set_state_pushes_timer_count_into_capabilities():
    clock = VirtualClock()
    hpet = Hpet(clock, [IrqLine() for _ in range(24)])
    state = hpet.get_state()
    state.num_timers = 4
    state.timer.append(state.stray_timer)
    hpet.set_state(state)
    mem = AddressSpace("memory", 1 << 64, unassigned_ones=False)
    mem.map(BASE, hpet.region)
    assert mem.read(BASE, 4) >> 8 & 0x1F == 3


# -- where QEMU 7.2 departs from the specification -------------------------------------------
def test_fidelity_periodic_interrupts_twice_per_period(hp):
    """Spec: a periodic timer interrupts once per period, when the counter
    equals the accumulator.  QEMU 7.2 advances the accumulator only once the
    counter is past it, so it interrupts at the match and again one tick
    (10 ns) later."""
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.periodic(0, 300, 200)
    hp.step(5_500)
    assert hp.rises(2) == [3_000, 3_010, 5_000, 5_010]


def test_fidelity_comparator_behind_the_counter_fires_next_tick(hp):
    """Spec: an interrupt happens when the counter equals the comparator, so
    a comparator already passed matches only after the counter wraps
    (2**64 ticks).  QEMU 7.2 compares by signed difference and fires one
    tick after the write; this includes a timer enabled with its comparator
    still at the reset value, all ones."""
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(5_000)
    hp.oneshot(0, 100)
    hp.step(1_000)
    assert hp.rises(2) == [5_010]
    hp.w(tn(1, CONF), INT_ENB | route(5))               # comparator still 0xffff...ffff
    hp.step(1_000)
    assert hp.rises(5) == [6_010]


def test_fidelity_counter_write_while_enabled_is_lost(hp):
    """Spec: software halts the counter before writing it (a write while
    running is not defined to take effect or not).  QEMU 7.2 stores the
    write in the halted copy, which the running counter ignores and halting
    overwrites: the write has no effect at all."""
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(1_000)
    hp.w(MAIN_CNT, 0x5000)
    hp.w(MAIN_CNT + 4, 7)
    assert hp.r(MAIN_CNT, 8) == 100
    hp.step(1_000)
    hp.w(GEN_CONF, 0)
    assert hp.r(MAIN_CNT, 8) == 200


def test_fidelity_counter_wraps_at_2_64_over_10(hp):
    """Spec: the 64-bit main counter counts up to 2**64 - 1 and wraps to 0.
    QEMU 7.2 keeps the running counter as a 64-bit nanosecond offset, so it
    wraps after 2**64 // 10 = 0x1999999999999999 ticks, and a value loaded
    above that is not the value it resumes from."""
    hp.w(MAIN_CNT, 0x99999990)
    hp.w(MAIN_CNT + 4, 0x19999999)
    hp.w(GEN_CONF, ENABLE_CNF)
    # 0x1999999999999990 * 10 = 2**64 - 96 ns of offset (2**64 = 10 *
    # 0x1999999999999999 + 6); 90 ns later (2**64 - 6) // 10 = 0x1999999999999999,
    # 60 ns after that (2**64 + 54) mod 2**64 // 10 = 5 where the spec has
    # 0x1999999999999990 + 15.
    hp.step(90)
    assert hp.r(MAIN_CNT, 8) == 0x1999999999999999
    hp.step(60)
    assert hp.r(MAIN_CNT, 8) == 5
    hp.w(GEN_CONF, 0)
    hp.w(MAIN_CNT + 4, 0x20000000)
    hp.w(MAIN_CNT, 5)
    hp.w(GEN_CONF, ENABLE_CNF)
    assert hp.r(MAIN_CNT, 8) == ((0x2000000000000005 * 10) % 2**64) // 10 != 0x2000000000000005


def test_fidelity_32bit_wrap_interrupt_one_tick_early(hp):
    """Spec: a 32-bit one-shot timer also interrupts when the counter's low
    32 bits roll over (0xffffffff -> 0).  QEMU 7.2 raises that interrupt
    when the counter reaches 0xffffffff, one tick before the rollover."""
    hp.w(MAIN_CNT, 0xFFFFFF00)
    hp.oneshot(0, 0x80, MODE32)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(100_000)
    assert hp.rises(2) == [0xFF * PERIOD_NS, 0x180 * PERIOD_NS]


def test_fidelity_32bit_mode_stores_high_halves(hp):
    """Spec: a timer in 32-bit mode is a 32-bit timer: its comparator's upper
    half takes no part (QEMU 9.1 ignores such writes).  QEMU 7.2 stores a
    high-half comparator write in one-shot mode, and in periodic mode puts
    it (masked to 31 bits) into the hidden period, and reads it back."""
    hp.w(tn(0, CONF), MODE32)
    hp.w(tn(0, COMP + 4), 0x12345678)
    assert hp.r(tn(0, COMP), 8) == 0x12345678FFFFFFFF
    hp.w(tn(0, CONF), MODE32 | TYPE_PERIODIC)
    hp.w(tn(0, COMP + 4), 0xFFFFFFFF)
    assert hp.m.hpet.timers[0].period == 0x7FFFFFFF << 32


def test_fidelity_val_set_covers_one_half_only(hp):
    """Spec: with Tn_VAL_SET_CNF set, software writes the (64-bit)
    accumulator directly.  QEMU 7.2 clears the bit after the first 32-bit
    write, so a 64-bit accumulator written low half then high half gets its
    high half in the period instead (writeq does exactly that)."""
    hp.w(tn(2, CONF), INT_ENB | TYPE_PERIODIC | VAL_SET | route(2))
    hp.w(tn(2, COMP), 0x0000000100000200, size=8)
    assert hp.r(tn(2, COMP), 8) == 0xFFFFFFFF00000200
    assert hp.m.hpet.timers[2].period == 0x0000000100000200


def test_fidelity_timer_registers_one_past_the_count(hp):
    """Spec: GCAP_ID's NUM_TIM_CAP says 3 timers; the registers of timers
    beyond them are reserved.  QEMU 7.2's range check is off by one: timer
    3's block works (no capabilities, but it can be armed and interrupts),
    blocks from timer 4 on read 0 and ignore writes."""
    assert hp.r(GCAP_ID) >> 8 & 0x1F == 2
    hp.w(tn(4, CONF), 0xFFFFFFFF)
    assert hp.r(tn(4, CONF), 8) == 0
    assert hp.r(tn(3, CONF), 8) == 0
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.w(tn(3, CONF), INT_ENB | route(5))
    hp.w(tn(3, COMP), 300)
    hp.step(5_000)
    assert hp.rises(5) == [3_000]


def test_fidelity_route_is_not_checked_against_capability(hp):
    """Spec: a route the timer cannot use (its bit clear in
    Tn_INT_ROUTE_CAP) does not read back as written.  QEMU 7.2 stores and
    uses any route: the pc HPET advertises only GSI 2, yet interrupts on
    GSI 11; routes 24-31 reach no input at all."""
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.oneshot(0, 100, gsi=11)
    hp.oneshot(1, 100, gsi=31)
    assert hp.r(tn(0, CONF)) >> 9 & 0x1F == 11
    hp.step(2_000)
    assert hp.rises(11) == [1_000]
    assert [e for e in hp.edges() if e[1] != 11] == []


def test_fidelity_fsb_delivery_without_capability(hp):
    """Spec: Tn_FSB_EN_CNF takes effect only when Tn_FSB_INT_DEL_CAP is set.
    The pc HPET clears that capability, yet QEMU 7.2 honours the enable bit
    and delivers the interrupt as a 32-bit store of Tn_FSB_INT_VAL to
    Tn_FSB_INT_ADDR, with no I/O APIC line and no status bit."""
    assert hp.r(tn(0, CONF)) & (1 << 15) == 0
    hp.w(tn(0, FSB), 0xCAFEF00D)
    hp.w(tn(0, FSB + 4), 0x1000)
    hp.oneshot(0, 100, FSB_EN | INT_TYPE_LEVEL)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_000)
    assert hp.m.mem_read(0x1000, 4) == 0xCAFEF00D
    assert hp.edges() == [] and hp.r(GINTR_STA) == 0


def test_fidelity_disabled_timer_sets_no_status_and_lowers_its_route(hp):
    """Spec: with Tn_INT_ENB_CNF clear the timer still runs and sets its
    status bit, but raises no interrupt.  QEMU 7.2 arms it but, when it
    expires, clears its status bit and lowers its route, even if another
    timer is holding that line high."""
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.oneshot(1, 100, INT_TYPE_LEVEL)                  # holds GSI 2 high
    hp.step(1_500)
    hp.w(tn(0, COMP + 4), 0)
    hp.w(tn(0, CONF), INT_TYPE_LEVEL | route(2))        # disabled
    hp.w(tn(0, COMP), 300)
    hp.step(2_000)
    assert hp.edges(2) == [(1_000, 2, 1), (3_000, 2, 0)]
    assert hp.r(GINTR_STA) == 1 << 1


def test_fidelity_halting_clears_level_status(hp):
    """Spec: a level-triggered status bit stays set until software writes 1
    to it.  QEMU 7.2 clears it, and deasserts the line, when the block is
    halted (ENABLE_CNF 1 -> 0)."""
    hp.oneshot(0, 100, INT_TYPE_LEVEL)
    hp.w(GEN_CONF, ENABLE_CNF)
    hp.step(2_000)
    assert hp.r(GINTR_STA) == 1
    hp.w(GEN_CONF, 0)
    assert hp.r(GINTR_STA) == 0
    assert hp.edges(2) == [(1_000, 2, 1), (2_000, 2, 0)]


def test_fidelity_accesses_are_aligned_32_bit_only(hp):
    """Spec: registers are accessed with 32- or 64-bit accesses, a 64-bit one
    being a single access.  QEMU 7.2 accepts only aligned 4-byte accesses:
    byte and word reads return 0 and such writes are dropped, and readq or
    writeq is split into two 32-bit accesses, low half first."""
    assert hp.r(GCAP_ID, 1) == 0 and hp.r(GCAP_ID, 2) == 0
    assert hp.r(GCAP_ID + 2) == 0                       # unaligned: a piece too small
    hp.w(GEN_CONF, ENABLE_CNF, size=1)
    hp.w(GEN_CONF, ENABLE_CNF, size=2)
    assert hp.r(GEN_CONF) == 0
    hp.w(MAIN_CNT, 0x1122334455667788, size=8)
    assert hp.r(MAIN_CNT) == 0x55667788 and hp.r(MAIN_CNT + 4) == 0x11223344


def test_fidelity_legacy_timer0_on_gsi0(hp):
    """Spec: in legacy replacement timer 0 goes to IRQ0 of the 8259 or
    input 2 of the I/O APIC.  QEMU 7.2 drives GSI 0, the PIT's line, which
    qtest reports as line 0 (its I/O APIC model folds input 0 into 2)."""
    hp.oneshot(0, 100)
    hp.w(GEN_CONF, ENABLE_CNF | LEG_RT_CNF)
    hp.step(2_000)
    assert hp.rises(0) == [1_000] and hp.rises(2) == []


# -- model internals that the traces cannot reach cheaply ---------------------------------
@pytest.mark.parametrize("bits", [6, 8])
def test_catch_up_closed_form_equals_the_loop(bits):
    """The periodic catch-up (add the period until the comparator is no
    longer behind, modulo 2**bits) in closed form, against the loop itself
    for every negative distance and nonzero period of a small width."""
    from devices.hpet import _signed, _steps_until_not_behind

    size = 1 << bits
    for period in range(1, size):
        for behind in range(-(size // 2), 0):
            steps, x = 0, behind
            while x < 0:
                x = _signed(x + period, bits)
                steps += 1
            assert _steps_until_not_behind(behind, period, bits) == steps


def test_migrating_a_copy_changes_nothing():
    """A deep copy of the machine (the runner's ``migrate``) carries the
    armed comparators with it: timers fire into the copy, and the client
    sees exactly what it sees without the migration."""
    from vmstate.trace.qtest import Runner, parse_trace

    text = (
        "irq_intercept_in ioapic\nwritel 0xfed0010c 0\nwritel 0xfed00010 1\n"
        "writel 0xfed00100 0x44e\nwritel 0xfed00108 300\nwritel 0xfed00108 200\n"
        "writel 0xfed00160 0xa04\nwritel 0xfed00168 700\n"
        "clock_step 4321\nmigrate\nwritel 0xfed00020 1\nclock_step 9000\nreadl 0xfed000f0\n"
        "readl 0xfed00020\n"
    )
    runner = Runner(PcMachine(), migrate=lambda machine, command: machine.clone())
    with_migration: list[str] = []
    for command in parse_trace(text):
        out = runner.execute(command)
        if command.name != "migrate":
            with_migration += out
    plain = Runner(PcMachine())
    straight = list(plain.run(parse_trace(text.replace("migrate\n", ""))))
    assert with_migration == straight

    def timed(r):
        return [(e.time, e.line, e.level) for e in r.session.observations.edges()]

    assert timed(runner) == timed(plain)
