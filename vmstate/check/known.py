"""What the project knows of where a migration is visible to a guest, and why.

Two kinds of knowledge, each said once:

- :data:`KNOWN_DIVERGENCES`: where QEMU 7.2's own migration, at the same
  version, is visible (README, "Where QEMU 7.2's own migration is not
  invisible").  Each comes with a *correction*: a function that recognizes
  QEMU's conversion by the exact state it leaves in a destination and puts
  the source's state back, undoing nothing else, so that a lost field next
  to a known conversion still shows.  The checker's known-divergence search
  (:func:`vmstate.check.checker.known_divergence`) uses them.
- :data:`KNOWN_LIMITS`: what an old version of a section does not carry,
  read from the schemas and QEMU 7.2's VMStateDescriptions and post_load
  hooks, each with the smallest scenario that makes it visible.

The corrections are written against the devices' public state and register
names, as a reader of QEMU's code would state them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from devices.hpet import MAX_TIMERS
from devices.mc146818 import B_SET, REG_B, RTC_CLOCK_RATE, TIME_REGISTERS, ticks_to_ns
from schemas.hpet import pristine
from vmstate.core.clock import NANOSECONDS_PER_SECOND, muldiv64
from vmstate.machine.pc import PcMachine

Correction = Callable[[PcMachine, PcMachine], bool]


@dataclass(frozen=True)
class Divergence:
    """One of QEMU 7.2's own visible migrations: its name, why QEMU shows
    it, and the correction that undoes exactly it in a destination
    (``correct(source, destination)``, True when it applied)."""

    key: str
    why: str
    correct: Correction


def _undo_periodic_rephase(source: PcMachine, twin: PcMachine) -> bool:
    """rtc_post_load's re-phase, undone where the destination's periodic
    deadline is exactly the one it computes (one period from the load, on
    the 32 kHz grid) and the source's was another: then the source's
    deadline is put back.  A deadline that differs in any other way is left
    alone, so a real loss of ``next_periodic_time`` still shows."""
    src, dst = source.rtc, twin.rtc
    if not dst.period or dst.period != src.period or not dst.periodic_timer.pending:
        return False
    rephased = ticks_to_ns(muldiv64(dst.now(), RTC_CLOCK_RATE, NANOSECONDS_PER_SECOND) + dst.period) + 1
    if (dst.next_periodic_time, dst.periodic_timer.expire) != (rephased, rephased):
        return False
    if (src.next_periodic_time, src.periodic_timer.expire) == (rephased, rephased):
        return False
    dst.next_periodic_time = src.next_periodic_time
    dst.periodic_timer.load(src.periodic_timer.expire)
    return True


def _undo_divider_jump(source: PcMachine, twin: PcMachine) -> bool:
    """pre_save's running time in a held clock's CMOS, undone where the
    destination's time bytes are exactly what pre_save wrote and the
    source's live bytes (the frozen time) differ: those are put back."""
    src, dst = source.rtc, twin.rtc
    if not src.divider_held() or src.cmos[REG_B] & B_SET:
        return False
    saved = src.get_state().cmos_data
    changed = [i for i in TIME_REGISTERS if dst.cmos[i] != src.cmos[i]]
    if not changed or any(dst.cmos[i] != saved[i] for i in changed):
        return False
    for i in changed:
        dst.cmos[i] = src.cmos[i]
    return True


def _carry_change_throttle(source: PcMachine, twin: PcMachine) -> bool:
    """The monitor's RTC_CHANGE rate limiter, carried over as if it had
    been migrated (it is not device state)."""
    if not source.monitor.throttle.pending or twin.monitor.throttle.pending:
        return False
    twin.monitor.carry_on_from(source.monitor)
    return True


def _carry_stray_timer(source: PcMachine, twin: PcMachine) -> bool:
    """The HPET's stray comparator, carried over where the destination's is
    still untouched and the source's is not (QEMU never sends it)."""
    n = source.hpet.num_timers
    if n != twin.hpet.num_timers or n >= MAX_TIMERS:
        return False
    mine, theirs = twin.hpet.timers[n].state(), source.hpet.timers[n].state()
    if mine == theirs or mine != pristine(n):
        return False
    twin.hpet.timers[n].load(theirs)
    return True


KNOWN_DIVERGENCES: dict[str, Divergence] = {d.key: d for d in (
    Divergence("qemu-rtc-periodic-rephase",
               "rtc_post_load re-arms the periodic timer one period after the load whenever its deadline is "
               "ahead (always, on the virtual clock): the next periodic tick comes up to a period late",
               _undo_periodic_rephase),
    Divergence("qemu-rtc-divider-held-time-jump",
               "rtc pre_save copies the running time into CMOS although the divider holds the clock "
               "(register A 0x6x): the destination's time of day jumps to the running time",
               _undo_divider_jump),
    Divergence("qtest-rtc-change-throttle",
               "the monitor rate-limits RTC_CHANGE events with a timer on the virtual clock under qtest; it is "
               "no device's state and is not migrated, so an argumentless clock_step stops at it only on the "
               "source (a guest cannot see it: only a qtest client stepping to the next deadline can)",
               _carry_change_throttle),
    Divergence("qemu-hpet-stray-timer-not-migrated",
               "the comparator one past num_timers (timer 3 at 0xfed00160), which QEMU's off-by-one range "
               "check lets a guest program, is not in the hpet section: the destination has its own, at reset",
               _carry_stray_timer),
)}


@dataclass(frozen=True)
class Limit:
    """State an old version of a section does not carry.  ``lacks`` are the
    state paths (as the checker names suspects) a migration through such a
    stream changes; ``refuses`` the errors a destination may raise instead of
    loading a stream the loss makes inconsistent."""

    key: str
    device: str
    versions: tuple[int, ...]
    lacks: tuple[str, ...]
    instead: str
    scenario: str
    refuses: tuple[str, ...] = ()

    def explains(self, fields: tuple[str, ...] = (), error: str | None = None) -> bool:
        """Whether suspects (or a refusal) are this limit's: a field it
        lacks, or one under it (``timer.cpu_clock_offset`` under ``timer``)."""
        return any(s == p or s.startswith((p + ".", p + "[")) for s in fields for p in self.lacks) \
            or (error is not None and error in self.refuses)


KNOWN_LIMITS: tuple[Limit, ...] = (
    Limit("no-virtual-time", "timer", (1,), ("timer.cpu_clock_offset",),
          "cpu_clock_offset is VMSTATE_INT64_V(..., 2): the destination's virtual clock stays at its own "
          "time (0 on a fresh machine), so every later deadline and clock answer moves; with the HPET "
          "enabled its carried offset contradicts that time and the destination refuses the stream",
          "virtual-clock-after-time-zero", refuses=("InvalidField",)),
    Limit("no-irq-disabled", "i8254", (2,), ("i8254.irq_disabled", "i8254.irq_timer"),
          "channels[0].irq_disabled is VMSTATE_UINT32_V(..., 3): the destination keeps its own (0), so "
          "pit_post_load re-arms channel 0's timer while the HPET's legacy replacement holds IRQ 0; its "
          "edges are dropped by the HPET, but its deadline is one a bare clock_step stops at",
          "pit-interrupt-disabled-by-hpet-legacy"),
    Limit("no-time-base", "mc146818rtc", (1, 2),
          ("mc146818rtc.base_rtc", "mc146818rtc.last_update", "mc146818rtc.offset",
           "mc146818rtc.update_timer", "mc146818rtc.next_alarm_time"),
          "base_rtc, last_update, offset, update_timer and next_alarm_time are _V(..., 3): rtc_post_load "
          "re-bases the clock on the CMOS bytes with a sub-second offset of 0 (rtc_set_time) and re-arms "
          "the update timer, so the second restarts at the load and updates, UIP and alarms come late",
          "rtc-half-way-through-a-second"),
)


def limit_for(device: str, saved: int, fields: tuple[str, ...] = (), error: str | None = None) -> Limit | None:
    """The known limit of ``device`` at version ``saved`` that explains the
    suspects or the refusal, if any."""
    for limit in KNOWN_LIMITS:
        if limit.device == device and saved in limit.versions and limit.explains(fields, error):
            return limit
    return None


def limits_of(versions: dict[str, int]) -> list[Limit]:
    """The known limits of the older versions a source writes."""
    return [limit for limit in KNOWN_LIMITS if limit.device in versions and versions[limit.device] in limit.versions]
