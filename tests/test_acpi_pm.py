"""The ACPI PM timer of PIIX4's PM function, from the ACPI specification's
arithmetic: a 24-bit counter at 3,579,545 Hz, TMR_STS when bit 23 toggles,
the SCI while a status bit and its enable are both set."""
from vmstate.machine.pc import PcMachine
from vmstate.core.observe import Edge

FREQ = 3_579_545
PMBA = 0x600
PM1_STS, PM1_EN, PM1_CNT, PM_TMR = PMBA, PMBA + 2, PMBA + 4, PMBA + 8
# Bit 23 first toggles after 2**23 ticks: 2**23 * 1e9 / 3579545 = 2343484437.6 ns,
# and QEMU compares the clock against the truncated value.
FIRST_TOGGLE_NS = (1 << 23) * 1_000_000_000 // FREQ


def pm_machine(enable=True) -> PcMachine:
    m = PcMachine()
    m.session.intercepting = True
    m.io_write(0xCF8, 4, 0x80000B40)   # bus 0, device 1, function 3, register 0x40 (PMBA)
    m.io_write(0xCFC, 4, PMBA | 1)
    m.io_write(0xCF8, 4, 0x80000B80)   # PMREGMISC
    m.io_write(0xCFC, 4, 1 if enable else 0)
    return m


def ticks(ns: int) -> int:
    return ns * FREQ // 1_000_000_000


def test_counter_runs_at_the_pm_timer_frequency():
    m = pm_machine()
    for ns in (0, 1_000_000, 123_456_789):
        m.clock_set(ns)
        assert m.io_read(PM_TMR, 4) == ticks(ns) & 0xFFFFFF
    assert ticks(1_000_000) == 0x0DFB


def test_counter_wraps_at_24_bits():
    m = pm_machine()
    wrap_ns = -(-(1 << 24) * 1_000_000_000 // FREQ)  # first ns at which 2**24 ticks have passed
    m.clock_set(wrap_ns - 1)
    assert m.io_read(PM_TMR, 4) == 0xFFFFFF
    m.clock_set(wrap_ns)
    assert m.io_read(PM_TMR, 4) == 0


def test_block_is_absent_until_enabled_and_moves_with_pmba():
    m = pm_machine(enable=False)
    assert m.io_read(PM_TMR, 4) == 0xFFFFFFFF
    m.io_write(0xCF8, 4, 0x80000B80)
    m.io_write(0xCFC, 4, 1)
    m.clock_set(1_000_000)
    assert m.io_read(PM_TMR, 4) == 0x0DFB
    m.io_write(0xCF8, 4, 0x80000B40)
    m.io_write(0xCFC, 4, 0x701)
    assert m.io_read(PM_TMR, 4) == 0xFFFFFFFF
    assert m.io_read(0x708, 4) == 0x0DFB


def test_tmr_sts_is_set_once_bit_23_toggles_and_cleared_by_writing_one():
    m = pm_machine()
    m.io_write(PM1_STS, 2, 1)           # clear the status set at reset (overflow time 0)
    assert m.io_read(PM1_STS, 2) == 0
    m.clock_set(FIRST_TOGGLE_NS - 1)
    assert m.io_read(PM1_STS, 2) == 0
    m.clock_set(FIRST_TOGGLE_NS)
    assert m.io_read(PM1_STS, 2) & 1


def test_sci_follows_status_and_enable_at_the_toggle_time():
    m = pm_machine()
    m.io_write(PM1_STS, 2, 1)
    m.io_write(PM1_EN, 2, 1)            # TMR_EN: armed for the next toggle of bit 23
    assert m.pm.timer.expire == FIRST_TOGGLE_NS
    m.clock_set(FIRST_TOGGLE_NS + 1)    # the first ns at which 2**23 ticks have passed
    m.io_write(PM1_STS, 2, 1)           # acknowledge: SCI drops
    edges = [(e.time, e.line, e.level) for e in m.session.observations.events
             if isinstance(e, Edge) and e.line == 9]
    assert edges == [(FIRST_TOGGLE_NS, 9, 1), (FIRST_TOGGLE_NS + 1, 9, 0)]
    # the next toggle comes 2**23 ticks later
    assert m.pm.timer.expire == (2 << 23) * 1_000_000_000 // FREQ


def test_enable_without_timer_status_raises_nothing():
    m = pm_machine()
    m.io_write(PM1_STS, 2, 1)
    m.io_write(PM1_EN, 2, 0x0020)       # RTC enable only; no RTC status
    assert not [e for e in m.session.observations.events if isinstance(e, Edge) and e.line == 9]


def test_control_register_keeps_its_bits_but_not_slp_en():
    m = pm_machine()
    m.io_write(PM1_CNT, 2, 0x2001 | (5 << 10))
    assert m.io_read(PM1_CNT, 2) == 0x0001 | (5 << 10)


def test_timer_register_accepts_narrow_reads_as_the_low_bytes():
    m = pm_machine()
    m.clock_set(1_000_000)
    assert m.io_read(PM_TMR, 1) == 0xFB
    assert m.io_read(PM_TMR, 2) == 0x0DFB


def test_state_round_trips_and_rearms_the_timer():
    m = pm_machine()
    m.io_write(PM1_STS, 2, 1)
    m.io_write(PM1_EN, 2, 1)
    state = m.pm.get_state()
    twin = PcMachine()
    twin.pm.set_state(state)
    assert twin.pm.get_state() == state
    assert twin.pm.timer.expire == FIRST_TOGGLE_NS
    twin.clock_set(FIRST_TOGGLE_NS)
    assert twin.io_read(PMBA, 2) & 1


def test_fidelity_tmr_sts_is_set_right_after_reset():
    """ACPI: TMR_STS is set when bit 23 of the counter toggles.  QEMU starts
    with an overflow time of 0, so PM1a_STS reads TMR_STS set as soon as the
    block is enabled, before any toggle."""
    m = pm_machine()
    assert m.io_read(PM1_STS, 2) == 0x0001


def test_fidelity_timer_accepts_byte_and_word_reads():
    """ACPI: PM_TMR_LEN is 4 and the register is read as a DWORD.  QEMU
    accepts 1- to 4-byte reads and returns the low bytes of the count."""
    m = pm_machine()
    m.clock_set(1_000_000)
    assert [m.io_read(PM_TMR, n) for n in (1, 2, 4)] == [0xFB, 0x0DFB, 0x0DFB]


def test_fidelity_acknowledging_at_the_truncated_toggle_time_reasserts_tmr_sts():
    """ACPI: writing 1 clears TMR_STS until bit 23 next toggles.  QEMU sets it
    at the toggle time truncated to whole ns, when the count is still
    2**23 - 1; an acknowledgement then recomputes the same overflow time and
    TMR_STS (and the SCI) stay asserted."""
    m = pm_machine()
    m.io_write(PM1_STS, 2, 1)
    m.io_write(PM1_EN, 2, 1)
    m.clock_set(FIRST_TOGGLE_NS)
    assert m.io_read(PM_TMR, 4) == (1 << 23) - 1
    m.io_write(PM1_STS, 2, 1)
    assert m.io_read(PM1_STS, 2) & 1
    assert m.gsi_levels[9] == 1
