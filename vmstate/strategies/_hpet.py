"""The HPET, as a driver programs it."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from typing import Sequence

from devices.hpet import (HPET_BASE, HPET_LEN, REG_CFG, REG_COUNTER, REG_STATUS, TIMER_BASE, TIMER_STRIDE,
                          TN_32BIT, TN_CFG, TN_CMP, TN_ENABLE, TN_INT_ROUTE_SHIFT, TN_PERIODIC, TN_ROUTE,
                          TN_SETVAL, TN_TYPE_LEVEL)
from vmstate.strategies._base import Chunk, _gentle_first, _hex, _weighted, require

_HPET_CFG = HPET_BASE + REG_CFG
_HPET_STATUS = HPET_BASE + REG_STATUS
_HPET_COUNTER = HPET_BASE + REG_COUNTER
_TN_LEVEL, _TN_ENABLE, _TN_PERIODIC, _TN_SETVAL, _TN_32BIT = TN_TYPE_LEVEL, TN_ENABLE, TN_PERIODIC, TN_SETVAL, TN_32BIT
#: Comparators whose register block lies inside the HPET's window.
REACHABLE = (HPET_LEN - TIMER_BASE) // TIMER_STRIDE

#: Comparator values in 10 ns ticks: within the first millisecond first
#: (what the time steps reach), then anywhere.
_hpet_cmp = _gentle_first(st.integers(0, 100_000), st.integers(100_001, 0xFFFFFFFF))
#: Periods: 1 ms to 100 ms first, then shorter (costly: 10 ns is 100 MHz)
#: and longer ones.
_hpet_period = st.one_of(st.integers(100_000, 10_000_000), st.integers(1, 99_999),
                         st.integers(10_000_001, 0xFFFFFFFF))


def _timer(n: int, reg: int) -> int:
    return HPET_BASE + TIMER_BASE + TIMER_STRIDE * n + reg


#: Timers 0-2, and now and then 3: one past the count, as QEMU lets it through.
_hpet_timers = st.sampled_from([0, 1, 2, 0, 1, 2, 3])


@st.composite
def _hpet_comparator(draw, timers: SearchStrategy[int]) -> Chunk:
    """A timer configured (enable, level, periodic, 32-bit, route) and its
    comparator written the ways drivers do: with Tn_VAL_SET_CNF (value, then
    period) or without, as two halves, or as one ``writeq``."""
    n = draw(timers)
    periodic = draw(st.booleans())
    setval = periodic and draw(st.booleans())
    bits32 = draw(st.booleans())
    route = draw(_gentle_first(st.just(2), st.integers(0, 31)))
    config = (_TN_ENABLE if draw(st.booleans()) or draw(st.booleans()) else 0) | route << TN_INT_ROUTE_SHIFT
    config |= _TN_LEVEL if draw(st.booleans()) else 0
    config |= (_TN_PERIODIC if periodic else 0) | (_TN_SETVAL if setval else 0) | (_TN_32BIT if bits32 else 0)
    value = draw(_hpet_period if periodic and not setval else _hpet_cmp)
    period = draw(_hpet_period)
    lines = [f"writel {_hex(_timer(n, 0))} {_hex(config)}"]
    how = draw(st.sampled_from(["low", "halves", "writeq"]))
    if how == "writeq":
        lines.append(f"writeq {_hex(_timer(n, 8))} {_hex(value)}")
    elif how == "halves":
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(value & 0xFFFFFFFF)}")
        lines.append(f"writel {_hex(_timer(n, 0xC))} {_hex(value >> 32)}")
    else:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(value & 0xFFFFFFFF)}")
    if setval:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(period & 0xFFFFFFFF)}")
    if draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 3])))}")
    return lines


_hpet_enable = st.sampled_from([1, 0, 3, 2]).map(lambda v: [f"writel {_hex(_HPET_CFG)} {_hex(v)}"])
_hpet_ack = st.integers(1, 7).map(lambda m: [f"writel {_hex(_HPET_STATUS)} {_hex(m)}"])
_hpet_counter = st.builds(
    lambda lo, hi, both: [f"writel {_hex(_HPET_COUNTER)} {_hex(lo)}"]
    + ([f"writel {_hex(_HPET_COUNTER + 4)} {_hex(hi)}"] if both else []),
    st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), st.booleans())
#: Ticks from the (re)started counter to a comparator's first interrupt:
#: 10 us to 10 ms first, then anything up to 32 bits.
_hpet_first = _gentle_first(st.integers(1_000, 1_000_000), st.integers(1, 0xFFFFFFFF))


@st.composite
def _hpet_session(draw, timers: SearchStrategy[int]) -> Chunk:
    """A driver bringing a comparator up and servicing it, as Linux's HPET
    clockevent code does: halt the block (often resetting the main counter
    to 0, so that comparator values mean what they say), configure the
    timer (enabled; edge or level; one-shot or periodic, a periodic one
    mostly with Tn_VAL_SET_CNF, its first comparator then its period,
    which differ), start the block (with or without legacy replacement),
    wait for the interrupt (to the next deadline, or one to three
    intervals and a few ns), then read the general interrupt status,
    often acknowledge the timer's bit, and sometimes read the counter."""
    lines: Chunk = []
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_CFG)} 0x0")
        if draw(st.booleans()) or draw(st.booleans()):
            lines += [f"writel {_hex(_HPET_COUNTER)} 0x0", f"writel {_hex(_HPET_COUNTER + 4)} 0x0"]
    n = draw(timers)
    level = draw(st.booleans())
    periodic = draw(st.booleans())
    setval = periodic and draw(st.sampled_from([True, True, False]))
    bits32 = draw(st.sampled_from([False, False, True]))
    route = draw(_gentle_first(st.just(2), st.integers(0, 31)))
    config = _TN_ENABLE | route << TN_INT_ROUTE_SHIFT | (_TN_LEVEL if level else 0) | (_TN_PERIODIC if periodic else 0)
    config |= (_TN_SETVAL if setval else 0) | (_TN_32BIT if bits32 else 0)
    first = draw(_hpet_first)
    period = draw(_hpet_period) if periodic else first
    lines.append(f"writel {_hex(_timer(n, 0))} {_hex(config)}")
    lines.append(f"writel {_hex(_timer(n, 8))} {_hex(first if setval or not periodic else period)}")
    if setval:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(period)}")
    lines.append(f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 1, 3])))}")
    if draw(st.sampled_from([False, True, True, True])):
        lines.append("clock_step")
    else:
        interval = first if not periodic or draw(st.booleans()) else period
        wait = draw(st.integers(1, 3)) * interval * 10 + draw(st.integers(0, 999))
        lines.append(f"clock_step {wait}")
    lines.append(f"readl {_hex(_HPET_STATUS)}")
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_STATUS)} {_hex(1 << n)}")
    if draw(st.booleans()):
        lines.append(f"readl {_hex(_HPET_COUNTER)}")
    return lines


#: Delays between counter reads: a few ns (inside one 10 ns tick) to a
#: millisecond.
_hpet_poll_delay = st.one_of(st.integers(1, 99), st.integers(100, 1_000_000))


@st.composite
def _hpet_counter_poll(draw) -> Chunk:
    """The main counter read the way a clocksource or a calibration loop
    reads it: a read, then one to three delays (a few ns to a millisecond,
    so that reads land at any phase within a tick) each followed by a read
    of the low half (sometimes the high half, or both with ``readq``)."""
    reads = st.sampled_from([f"readl {_hex(_HPET_COUNTER)}"] * 3 + [f"readl {_hex(_HPET_COUNTER + 4)}",
                                                                     f"readq {_hex(_HPET_COUNTER)}"])
    lines = [draw(reads)]
    for _ in range(draw(st.integers(1, 3))):
        lines += [f"clock_step {draw(_hpet_poll_delay)}", draw(reads)]
    return lines


@st.composite
def _hpet_legacy_handover(draw) -> Chunk:
    """Legacy replacement taken and handed back: ``GEN_CONF`` with LEG_RT
    (block enabled or not), a wait (to the next deadline, or 1 ms to 2 s)
    during which the PIT's and the RTC's interrupts are held back from GSI
    0 and 8, then ``GEN_CONF`` without it, as an OS does when it stops
    using the HPET (a clocksource switch, suspend): the RTC's held level
    reaches GSI 8 only then."""
    wait = draw(st.one_of(st.just("clock_step"),
                          st.integers(1_000_000, 2_000_000_000).map(lambda ns: f"clock_step {ns}")))
    return [f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([3, 2])))}", wait,
            f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 0])))}"]


def _hpet_reads(timers: SearchStrategy[int]) -> SearchStrategy[Chunk]:
    return st.sampled_from([
        _HPET_STATUS, _HPET_COUNTER, _HPET_STATUS, _HPET_COUNTER + 4, _HPET_CFG, HPET_BASE,
    ]).map(lambda a: [f"readl {_hex(a)}"]) | st.tuples(
        timers, st.sampled_from([TN_CFG, TN_CFG + 4, TN_CMP, TN_CMP + 4, TN_ROUTE])).map(
        lambda t: [f"readl {_hex(_timer(t[0], t[1]))}"]) | st.just([f"readq {_hex(_HPET_COUNTER)}"])


def _hpet_fsb(timers: SearchStrategy[int]) -> SearchStrategy[Chunk]:
    return st.builds(lambda n, v: [f"writel {_hex(_timer(n, TN_ROUTE))} {_hex(v)}"], timers,
                     st.integers(0, 0xFFFFFFFF))


def hpet_operations(timers: Sequence[int] | None = None) -> SearchStrategy[Chunk]:
    """The HPET as a driver programs it.

    Draws one chunk: a whole driver session (halt, counter reset, a
    comparator configured and its first value and period written, the block
    started, a wait for the interrupt, the status read and acknowledged,
    the counter read; see ``_hpet_session``), which is drawn most often;
    counter polling (reads a few ns to a millisecond apart); legacy
    replacement taken, held for a while and handed back; enable/halt and
    legacy replacement alone (``GEN_CONF`` values 0-3); a comparator
    programmed with its configuration (one-shot or periodic, with or
    without Tn_VAL_SET_CNF, edge or level, 32- or 64-bit, GSI 2 or any
    route) followed by the value written as a low half, as two halves or
    with ``writeq``; reads of status, counter, configuration and the timer
    registers; an acknowledge of status bits; a counter write (effective
    while halted); an FSB register write.  Driver sessions, polls and
    handovers contain ``clock_step`` lines: their waits are part of the
    sequence, so that a migration can fall inside them.

    ``timers`` are the comparators driven (default 0-2, and now and then 3,
    one past the advertised count, which QEMU's range check lets through);
    any up to the last whose registers lie in the block (0-29) may be
    named."""
    if timers is None:
        which = _hpet_timers
    else:
        timers = tuple(timers)
        require(timers and all(0 <= n < REACHABLE for n in timers),
                f"timers are comparators 0..{REACHABLE - 1}, not {timers!r}")
        which = st.sampled_from(timers)
    return _weighted((3, _hpet_session(which)), (2, _hpet_counter_poll()), (3, _hpet_legacy_handover()),
                     (1, _hpet_enable), (2, _hpet_comparator(which)), (2, _hpet_reads(which)), (1, _hpet_ack),
                     (1, _hpet_counter), (1, _hpet_fsb(which)))
