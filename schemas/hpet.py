"""``hpet``: the HPET block, versions 1 and 2, each comparator an ``hpet_timer`` v1.

Version 2 added ``num_timers`` (QEMU checks it is 3..32 before reading the
timers: CVE-2013-4527); a v1 stream carries exactly 3 timers, which QEMU's
pre_load sets before the fields are read, and so does ours.  Subsections:
``hpet/rtc_irq_level`` when the RTC's level is up, ``hpet/offset`` when the
block is enabled and its offset is saved (the property ``hpet-offset-saved``,
on for pc-7.2; a state with ``hpet_offset=None`` writes without it, the
compat choice of pc-2.11 and older).

Conversions on load, as hpet_post_load does them:

- The offset is rebuilt from the counter (``counter * 10 - now``) when the
  stream has no ``hpet/offset``.  QEMU 7.2 keys this on its own property
  ``hpet-offset-saved``, not on the subsection's presence; both ends run the
  same machine type, so the property is the source's too.  A destination
  here has no such property and infers the source's: an enabled block
  without the subsection can only come from a source with it off, so its
  offset is rebuilt (``hpet_offset=None``: ``set_state`` does it).  A halted
  block never carries it, and then the destination keeps its own offset, as
  pc-7.2 (property on) does; a halted block's offset is unused anyway, since
  enabling the block recomputes it from the counter.
- Capability NUM_TIM is not state: ``set_state`` rebuilds it from
  ``num_timers``; MSI support is derived from timer 0's FSB capability.
- ``rtc_irq_level`` is 0 when its subsection is absent (that is what "not
  needed" means), not whatever the destination had.
- ``stray_timer``, the comparator one past ``num_timers`` that QEMU's
  off-by-one range check exposes, is not on the wire: the destination keeps
  its own comparator at that index, as QEMU does.

Validation goes beyond QEMU's one check.  Each rule is an invariant of
devices/hpet.py's (and hpet.c's) code paths; where a state looks odd but a
guest can reach it, there is deliberately no rule:

- ``config`` only ever holds ENABLE and LEG_RT (write mask 0x3, high half
  never set).
- A timer's bits outside the write mask 0x7f4e are what reset put there:
  periodic and 64-bit capable, FSB capable on every timer or none (MSI),
  routing capability 0x4 (GSI 2) as the pc machine sets ``hpet-intcap``.
  No rule: FSB delivery enabled without the capability, a route outside
  the capability (both writable), a 32-bit timer's high comparator half
  (QEMU stores high-half writes in 32-bit mode), a stale ``wrap_flag`` in
  another mode (changing mode does not clear it).
- In 32-bit mode a period's high half is written masked to 31 bits, after
  the switch truncated it: bit 63 is clear.
- ``tn`` is the timer's index (it picks the ISR bit and the legacy routes).
- ISR bits exist for timers only; a bit for timer ``i`` needs the block
  and the timer enabled and FSB delivery off (disabling either, or enabling
  FSB, clears it).  Bit ``num_timers`` belongs to the stray comparator,
  which a guest can drive while its registers are inside the block.
- A halted block has no armed comparator (halting deletes them all).  An
  enabled block's deadlines are after the stream's time and less than
  hpet_arm's limit (INT64_MAX / 2 ns) beyond it; its counter is a tick
  count of (now + offset) mod 2**64, so at most 2**64 / 10; with the offset
  carried, the counter is exactly that count at the stream's time.

The stream's time is the ``timer`` section's virtual clock.  A real QEMU run
under qtest drives its devices with the qtest clock, which that section does
not carry, so a stream of such a run with the HPET enabled only checks out
against the qtest clock (the interop tests load it so).
"""
from __future__ import annotations

from devices.hpet import (ARM_LIMIT_TICKS, CFG_ENABLE, CLK_PERIOD_NS, HPET_LEN, MAX_TIMERS, MIN_TIMERS,
                          PC_INTCAP, TIMER_BASE, TIMER_STRIDE, TN_32BIT, TN_CFG_WRITE_MASK, TN_ENABLE,
                          TN_FSB_CAP, TN_FSB_ENABLE, TN_PERIODIC_CAP, TN_SIZE_CAP, U64, HpetState,
                          HpetTimerState)
from vmstate.wire.kinds import TIMER, UINT64, UINT8
from vmstate.wire.table import Check, Description, Field, Nested, Subsection
from vmstate.core.errors import UsageError
from vmstate.core.state import copy_state

V1_TIMERS = MIN_TIMERS
RESET_CAPS = TN_PERIODIC_CAP | TN_SIZE_CAP | PC_INTCAP << 32
# Comparators whose register block lies inside the 0x400-byte region.
REACHABLE_TIMERS = (HPET_LEN - TIMER_BASE) // TIMER_STRIDE
ARM_LIMIT_NS = ARM_LIMIT_TICKS * CLK_PERIOD_NS


def pristine(tn: int) -> HpetTimerState:
    """A comparator no reset has touched: QEMU's zeroed HPETTimer."""
    return HpetTimerState(tn, 0, 0, 0, 0, 0, -1)


def _fixed_bits(config: int) -> bool:
    """the read-only bits reset sets for pc: 0x30 (+0x8000 with MSI), intcap 0x4"""
    return config & ~TN_CFG_WRITE_MASK in (RESET_CAPS, RESET_CAPS | TN_FSB_CAP)


HPET_TIMER = Description("hpet_timer", version=1, minimum=1, fields=[
    Field("tn", UINT8),
    Field("config", UINT64, valid=_fixed_bits),
    Field("cmp", UINT64),
    Field("fsb", UINT64),
    Field("period", UINT64),
    Field("wrap_flag", UINT8, valid=range(0, 2)),
    Field("qemu_timer", TIMER, path="expire"),
], checks=[
    Check("period", lambda t: not t.config & TN_32BIT or t.period >> 63 == 0,
          "in 32-bit mode the period's high half is written masked to 31 bits"),
])


def _enabled(hpet: HpetState) -> bool:
    return bool(hpet.config & CFG_ENABLE)


def _isr_timers(hpet: HpetState) -> bool:
    stray = 1 << hpet.num_timers if hpet.num_timers < REACHABLE_TIMERS else 0
    return not hpet.isr & ~((1 << hpet.num_timers) - 1 | stray)


def _isr_raised(hpet: HpetState) -> bool:
    return all(_enabled(hpet) and t.config & TN_ENABLE and not t.config & TN_FSB_ENABLE
               for i, t in enumerate(hpet.timer[:hpet.num_timers]) if hpet.isr >> i & 1)


def _nth(hpet: HpetState, i: int) -> HpetTimerState | None:
    return hpet.timer[i] if i < min(hpet.num_timers, len(hpet.timer)) else None


def _halted_idle(hpet: HpetState, i: int) -> bool:
    t = _nth(hpet, i)
    return t is None or _enabled(hpet) or t.expire == -1


def _deadline_ahead(hpet: HpetState, aux: dict, i: int) -> bool:
    t = _nth(hpet, i)
    if t is None or not _enabled(hpet) or t.expire == -1 or aux["now"] is None:
        return True
    return aux["now"] < t.expire < aux["now"] + ARM_LIMIT_NS


def _same_msi(hpet: HpetState, i: int) -> bool:
    t = _nth(hpet, i)
    return t is None or t.config & TN_FSB_CAP == hpet.timer[0].config & TN_FSB_CAP


def _own_index(hpet: HpetState, i: int) -> bool:
    t = _nth(hpet, i)
    return t is None or t.tn == i


def _timer_checks(i: int) -> list[Check]:
    """The rules on timer ``i`` that involve its index or the block."""
    return [
        Check(f"timer[{i}].tn", lambda hpet: _own_index(hpet, i), f"timer {i} must carry tn {i}"),
        Check(f"timer[{i}].config", lambda hpet: _same_msi(hpet, i),
              "FSB capability (MSI) is the same on every timer"),
        Check(f"timer[{i}].qemu_timer", lambda hpet: _halted_idle(hpet, i),
              "a halted HPET has no armed timer"),
        Check(f"timer[{i}].qemu_timer", lambda hpet, aux: _deadline_ahead(hpet, aux, i),
              "an enabled HPET's deadlines are after now and within hpet_arm's limit", uses_aux=True),
    ]


def _counter_matches_offset(hpet: HpetState, aux: dict) -> bool:
    return not _enabled(hpet) or aux["now"] is None or \
        hpet.hpet_counter == ((aux["now"] + hpet.hpet_offset) & U64) // CLK_PERIOD_NS


RTC_IRQ_LEVEL = Description("hpet/rtc_irq_level", version=1, minimum=1, fields=[
    Field("rtc_irq_level", UINT8, valid=range(0, 2)),
])

OFFSET = Description("hpet/offset", version=1, minimum=1, fields=[
    Field("hpet_offset", UINT64),
], checks=[
    Check("hpet_offset", _counter_matches_offset,
          "an enabled HPET's counter must be (now + hpet_offset) / 10 at the stream's time", uses_aux=True),
])


def _pre_save(hpet: HpetState, version: int) -> dict:
    if version < 2 and hpet.num_timers != V1_TIMERS:
        raise UsageError(f"hpet version 1 carries {V1_TIMERS} timers, not {hpet.num_timers}")
    return {}


def _pre_load(hpet: HpetState, version: int, aux: dict) -> None:
    """QEMU's pre_load (a v1 stream has 3 timers), and the destination's own
    comparators, one of which becomes the stray one."""
    aux["hpet.comparators"] = copy_state(hpet.timer[:hpet.num_timers] + [hpet.stray_timer])
    if version < 2:
        hpet.num_timers = V1_TIMERS
        del hpet.timer[V1_TIMERS:]


def _post_load(hpet: HpetState, version: int, aux: dict) -> None:
    if "hpet/offset" not in aux["subsections"] and _enabled(hpet):
        hpet.hpet_offset = None
    if "hpet/rtc_irq_level" not in aux["subsections"]:
        hpet.rtc_irq_level = 0
    own = aux["hpet.comparators"]
    n = hpet.num_timers
    hpet.stray_timer = None if n >= MAX_TIMERS else own[n] if n < len(own) and own[n] is not None else pristine(n)
    hpet.msi = bool(hpet.timer[0].config & TN_FSB_CAP)


HPET = Description("hpet", version=2, minimum=1, fields=[
    Field("config", UINT64, valid=range(0, 4)),
    Field("isr", UINT64),
    Field("hpet_counter", UINT64),
    Field("num_timers", UINT8, since=2, valid=range(MIN_TIMERS, MAX_TIMERS + 1)),
    Nested("timer", HPET_TIMER, count=V1_TIMERS, until=1),
    Nested("timer", HPET_TIMER, count="num_timers", since=2, make=pristine),
], subsections=[
    Subsection(RTC_IRQ_LEVEL, needed=lambda hpet: hpet.rtc_irq_level != 0),
    Subsection(OFFSET, needed=lambda hpet: _enabled(hpet) and hpet.hpet_offset is not None),
], checks=[
    Check("isr", _isr_timers, "ISR bits exist only for the timers (and the stray one past them)"),
    Check("isr", _isr_raised, "an ISR bit needs the HPET and its timer enabled, with FSB delivery off"),
    Check("hpet_counter", lambda hpet: not _enabled(hpet) or hpet.hpet_counter <= U64 // CLK_PERIOD_NS,
          "an enabled HPET's counter is (now + offset) mod 2**64 / 10"),
    *(check for i in range(MAX_TIMERS) for check in _timer_checks(i)),
], pre_load=_pre_load, post_load=_post_load, pre_save=_pre_save)
