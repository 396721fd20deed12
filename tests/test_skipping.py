"""A long clock step over a periodic source nobody can see (the PIT's
channel 0 while the qtest client does not intercept its line; the RTC's
periodic interrupt once its flags are up) skips whole periods instead of
firing each: the replies and every device's state must be exactly those of
firing every period."""
from __future__ import annotations

import contextlib
import time

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devices.i8254 import Pit
from devices.mc146818 import Rtc
from vmstate.core.clock import EventBudget
from vmstate.core.errors import EventBudgetExceeded
from vmstate.machine.pc import PcMachine
from vmstate.strategies import scenarios, time_steps
from vmstate.trace.qtest import Runner, parse_trace


@contextlib.contextmanager
def every_period():
    """Skipping turned off: the reference the skips must agree with."""
    pit_skip, rtc_skip = Pit._irq_timer_fired, Rtc._skip_periods
    Pit._irq_timer_fired = lambda self: self._update_irq(self.channels[0].next_transition_time)
    Rtc._skip_periods = lambda self, at, horizon: at
    try:
        yield
    finally:
        Pit._irq_timer_fired, Rtc._skip_periods = pit_skip, rtc_skip


def outcome(trace: str, budget: int | None = None):
    runner = Runner(PcMachine(budget=EventBudget(budget) if budget else None),
                    migrate=lambda machine, command: machine)
    replies = list(runner.run(parse_trace(trace)))
    m = runner.machine
    return replies, m.get_state(), list(m.gsi_levels), m.clock.deadline()


LONG = time_steps(min_ns=1_000_000, max_ns=3 * 10**9)
TRACES = st.booleans().flatmap(lambda watched: scenarios(
    devices=["i8254", "mc146818rtc"], steps=LONG, min_migrations=0, intercept=watched, max_chunks=10))


@settings(max_examples=120)
@given(TRACES)
def test_skipping_periods_gives_what_firing_every_period_gives(trace):
    with every_period():
        try:
            reference = outcome(trace, budget=300_000)
        except EventBudgetExceeded:
            assume(False)
    assert outcome(trace) == reference


def test_a_virtual_day_of_an_idle_machine_costs_no_events():
    machine = PcMachine(budget=EventBudget(100))
    started = time.process_time()
    machine.clock_step(86_400 * 10**9)
    assert time.process_time() - started < 1.0     # a bound on the work, not a timing
    assert machine.clock.budget.spent < 100


def test_a_channel_0_behind_its_clock_catches_up_in_closed_form():
    """A restored next_transition_time far behind the clock (a stream whose
    clock lies by 2^56 ns) is caught up without firing every edge."""
    machine = PcMachine(budget=EventBudget(1000))
    machine.clock.load(1 << 56)
    machine.pit.irq_timer.mod(machine.pit.channels[0].next_transition_time)
    machine.clock.run_due()
    assert machine.pit.channels[0].next_transition_time > 1 << 56
    assert machine.clock.budget.spent < 1000


@st.composite
def _periodic_sources(draw) -> str:
    """Channel 0 in mode 2 or 3 at any count, the RTC's periodic interrupt
    at any rate, then long steps with reads between (the periods skipped
    differ from step to step)."""
    lines = [f"outb 0x43 {0x30 | draw(st.sampled_from([2, 3])) << 1:#x}"]
    count = draw(st.integers(2, 0xFFFF))
    lines += [f"outb 0x40 {count & 0xFF:#x}", f"outb 0x40 {count >> 8:#x}"]
    if draw(st.booleans()):
        lines += ["outb 0x70 0xa", f"outb 0x71 {0x20 | draw(st.integers(3, 15)):#x}", "outb 0x70 0xb", "outb 0x71 0x42"]
    for _ in range(draw(st.integers(1, 4))):
        lines.append(f"clock_step {draw(st.integers(1, 4 * 10**9))}")
        lines += draw(st.sampled_from([[], ["inb 0x40"], ["outb 0x70 0xc", "inb 0x71"], ["outb 0x43 0x0", "inb 0x40"]]))
    return "\n".join(lines) + "\n"


@settings(max_examples=150)
@given(_periodic_sources())
def test_skips_agree_on_every_count_rate_and_step(trace):
    with every_period():
        try:
            reference = outcome(trace, budget=500_000)
        except EventBudgetExceeded:
            assume(False)
    assert outcome(trace) == reference
