"""The MC146818 RTC and its CMOS, as a driver programs them."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from typing import Sequence

from devices.mc146818 import (ALARM_REGISTERS, B_24H, B_DM, B_SET, CENTURY, DAY_OF_MONTH, HOURS, MINUTES, MONTH,
                              REG_A, REG_B, REG_C, RTC_DATA, RTC_INDEX, SECONDS, YEAR)
from vmstate.strategies._base import Chunk, _hex, _weighted, require


def _rtc_write(index: int, value: int) -> Chunk:
    return [f"outb {_hex(RTC_INDEX)} {_hex(index)}", f"outb {_hex(RTC_DATA)} {_hex(value)}"]


def _rtc_read(index: int) -> Chunk:
    return [f"outb {_hex(RTC_INDEX)} {_hex(index)}", f"inb {_hex(RTC_DATA)}"]


#: Register A: rate select 15 (2 Hz) down to 1 shrinks towards the slow end;
#: divider 010 (running) first, then held (110, 111) and the others.
_rtc_rate = st.integers(0, 15).map(lambda k: 15 - k)
_rtc_divider = st.sampled_from([2, 6, 7, 0, 1, 3, 4, 5])
#: Register B: PIE, AIE, UIE, SQWE, DM, 24/12, DSE; SET is handled by the
#: time-programming chunk, but a raw B value may carry it too.  The values
#: drivers write (24-hour BCD with update, alarm or periodic interrupts
#: enabled, or none) come first, then any.
RTC_DRIVER_B = (0x02, 0x12, 0x42, 0x22, 0x32, 0x52, 0x72, 0x16, 0x06)
_rtc_b = st.one_of(st.sampled_from(RTC_DRIVER_B), st.integers(0, 0x7F), st.integers(0x80, 0xFF))


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


@st.composite
def _rtc_set_time(draw) -> Chunk:
    """Setting the clock the way a BIOS does: SET on, the time and date
    bytes written (BCD or binary as B says), SET off -- or left on, the
    written time pending."""
    b = draw(st.sampled_from([0x02, 0x06, 0x00, 0x04])) | (draw(st.sampled_from([0, 0x40, 0x20, 0x10])))
    enc = (lambda v: v) if b & B_DM else _bcd
    lines = _rtc_write(REG_B, b | B_SET)
    fields = {SECONDS: draw(st.integers(0, 59)), MINUTES: draw(st.integers(0, 59)),
              HOURS: draw(st.integers(0, 23)), DAY_OF_MONTH: draw(st.integers(1, 28)),
              MONTH: draw(st.integers(1, 12)), YEAR: draw(st.integers(0, 99)),
              CENTURY: draw(st.sampled_from([20, 19, 21]))}
    for index in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=7, unique=True)):
        value = fields[index]
        if index == HOURS and not b & B_24H:
            value = enc(value % 12 or 12) | (0x80 if value >= 12 else 0)   # bit 7: PM
        else:
            value = enc(value)
        lines += _rtc_write(index, value)
    if draw(st.booleans()) or draw(st.booleans()):
        lines += _rtc_write(REG_B, b)
    return lines


@st.composite
def _rtc_alarm(draw) -> Chunk:
    """An alarm: seconds, minutes, hours, each a value or don't-care (0xC0+)."""
    lines: Chunk = []
    for index, top in zip(ALARM_REGISTERS, (59, 59, 23)):
        if draw(st.booleans()):
            lines += _rtc_write(index, draw(st.one_of(st.integers(0, top).map(_bcd), st.integers(0xC0, 0xFF))))
    return lines or _rtc_write(0x01, 0xFF)


_rtc_reads = st.sampled_from([0x0C, 0x0A, 0x0B, 0x0D, 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32, 0x37,
                              0x01, 0x0E, 0x7F]).map(_rtc_read)
def _rtc_registers(rates: SearchStrategy[int]) -> SearchStrategy[Chunk]:
    return st.one_of(
        st.builds(lambda d, r: d << 4 | r, _rtc_divider, rates).map(lambda v: _rtc_write(REG_A, v)),
        _rtc_b.map(lambda v: _rtc_write(REG_B, v)),
        st.tuples(st.integers(0x0E, 0x7F), st.integers(0, 0xFF)).map(lambda t: _rtc_write(*t)),
        st.tuples(st.sampled_from([0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32, 0x0C, 0x0D]),
                  st.integers(0, 0xFF)).map(lambda t: _rtc_write(*t)),
    )


@st.composite
def _rtc_interrupts(draw, rates: SearchStrategy[int]) -> Chunk:
    """A driver turning an interrupt source on: the periodic rate in A
    (divider running; 2 Hz first, QEMU's 1024 Hz default among the rest),
    B with update-ended, alarm and/or periodic interrupts enabled (24-hour,
    BCD or binary), and a read of C to drop what was pending.  Sometimes
    the driver then waits for the interrupt (to the next deadline, or up to
    1.5 s) and its handler reads C, which acknowledges it."""
    lines = _rtc_write(REG_A, 0x20 | draw(rates)) if draw(st.booleans()) else []
    enables = draw(st.sampled_from([0x10, 0x40, 0x20, 0x50, 0x30, 0x70]))
    lines += _rtc_write(REG_B, enables | draw(st.sampled_from([0x02, 0x06, 0x00])))
    if draw(st.booleans()):
        lines += _rtc_read(REG_C)
    if draw(st.booleans()):
        lines.append(draw(st.one_of(st.just("clock_step"),
                                    st.integers(1_000_000, 1_500_000_000).map(lambda ns: f"clock_step {ns}"))))
        lines += _rtc_read(REG_C)
    return lines


_rtc_index = st.integers(0, 0xFF).map(lambda i: [f"outb {_hex(RTC_INDEX)} {_hex(i)}"]) | st.just(
    [f"inb {_hex(RTC_DATA)}"])


def rtc_operations(rates: Sequence[int] | None = None) -> SearchStrategy[Chunk]:
    """The MC146818 RTC and CMOS as a driver programs them.

    Draws one chunk: register A (rate and divider, held or running),
    register B (interrupt enables, data mode, 12/24 hours; the values
    drivers write, :data:`RTC_DRIVER_B`, among them), an interrupt source
    turned on (rate, enables, C cleared) and sometimes waited for and
    acknowledged by a read of C, the time and
    date written under SET (applied or left pending), an alarm (values or
    don't-care bytes), CMOS RAM writes, index-then-data reads of A, B, C
    (which acknowledges), D and the time bytes, or a lone index write or
    data read (the index register is state).

    ``rates`` are the periodic rate selects (register A's low 4 bits,
    1..15) written; by default any, shrinking towards 15 (2 Hz)."""
    if rates is None:
        which = _rtc_rate
    else:
        rates = tuple(rates)
        require(rates and all(0 <= r <= 15 for r in rates), f"rates are rate selects 0..15, not {rates!r}")
        which = st.sampled_from(rates)
    return _weighted((2, _rtc_reads), (4, _rtc_registers(which)), (2, _rtc_interrupts(which)), (1, _rtc_set_time()),
                     (1, _rtc_alarm()), (2, _rtc_index))
