"""``mc146818rtc``: the RTC and its CMOS, versions 1 to 3, with the
``irq_reinject_on_ack_count`` subsection.

Versions 1 and 2 carried the broken-down time (``current_tm``, seven int32)
and a one-second update machinery (``next_second_time`` and two timers);
QEMU 7.2 keeps their bytes as unused gaps, and version 3 replaced them with
the time base (``base_rtc``, ``last_update``, ``offset``) and one update
timer.  Version 2 added ``irq_coalesced`` and ``period``.

Conversions on load, as rtc_post_load does them:

- From a version 1 or 2 stream the time of day can only come from the CMOS
  bytes, which the source's pre_save brought up to date: the clock is
  re-based on them (``rtc_set_time``, sub-second offset 0) and the update
  timer re-armed.  The stream's moment is the destination's "now" on the RTC
  clock, which only the device knows, so post_load marks the state and
  ``Rtc.set_state`` re-bases it.
- ``period`` is not trusted: it is recomputed from registers A and B.
- A periodic deadline in the future, or more than a minute stale, is
  re-armed one period from now (``set_state`` does it, it needs the clock).
- Without its subsection the reinjection count keeps the destination's
  value, as QEMU leaves an absent subsection's fields alone.

Validation beyond QEMU's none, each rule an invariant of mc146818rtc.c's
(and devices/mc146818.py's) code paths:

- The index port masks bit 7 off (the NMI bit), so ``cmos_index`` < 128;
  QEMU indexes ``cmos_data[128]`` with it unchecked.
- Registers C and D are read-only: C holds only IRQF, PF, AF and UF, and D
  only VRT, which reset sets.
- A divider held in reset deletes the update timer, and QEMU asserts UIP is
  clear there: a stream with either would crash or stall a real destination.
- A latched UIP is cleared only by the update timer, which
  check_update_timer therefore keeps armed ("so that UIP is cleared"): a
  version-3 stream with UIP latched and no update timer would hold UIP up
  for a guest polling it.  (Versions 1 and 2 carry no update timer; the
  destination re-arms it.)
- ``offset`` is a sub-second: every writer takes it modulo one second.
- The reinjection count stops at its limit (20).
"""
from __future__ import annotations

from devices.mc146818 import (A_UIP, C_FLAGS, C_IRQF, REG_A, REG_C, REG_D, REINJECT_ON_ACK_LIMIT,
                              RtcState)
from vmstate.core.clock import NANOSECONDS_PER_SECOND as NS
from vmstate.wire.kinds import INT64, TIMER, UINT16, UINT32, UINT64, UINT8
from vmstate.wire.table import Buffer, Check, Description, Field, Subsection, Unused

DIVIDER_RESET = 0x60


def _divider_held(rtc: RtcState) -> bool:
    return rtc.cmos_data[REG_A] & DIVIDER_RESET == DIVIDER_RESET


def _pre_load(rtc: RtcState, version: int, aux: dict) -> None:
    aux["update_timer_carried"] = version >= 3
    if version <= 2:
        # Not on the wire: re-armed once the clock is re-based.  Cleared
        # before the rules run, so that the destination's own update timer
        # is not held against a v1/v2 stream whose divider is in reset.
        rtc.update_timer = -1


def _post_load(rtc: RtcState, version: int, aux: dict) -> None:
    rtc.time_from_cmos = version <= 2


IRQ_REINJECT_ON_ACK_COUNT = Description("mc146818rtc/irq_reinject_on_ack_count", version=1, minimum=1, fields=[
    Field("irq_reinject_on_ack_count", UINT16, valid=range(0, REINJECT_ON_ACK_LIMIT + 1)),
])

MC146818RTC = Description("mc146818rtc", version=3, minimum=1, fields=[
    Buffer("cmos_data", 128),
    Field("cmos_index", UINT8, valid=range(0, 128)),
    # QEMU's JSON numbers fields that share a name: unused[0], unused[1]
    Unused(7 * 4, name="unused[0]"),           # v1/v2: current_tm
    Field("periodic_timer", TIMER),
    Field("next_periodic_time", INT64),
    Unused(3 * 8, name="unused[1]"),           # v1/v2: next_second_time, second_timer, second_timer2
    Field("irq_coalesced", UINT32, since=2),
    Field("period", UINT32, since=2),
    Field("base_rtc", UINT64, since=3),
    Field("last_update", UINT64, since=3),
    Field("offset", INT64, since=3, valid=range(0, NS)),
    Field("update_timer", TIMER, since=3),
    Field("next_alarm_time", UINT64, since=3),
], subsections=[
    Subsection(IRQ_REINJECT_ON_ACK_COUNT, needed=lambda rtc: rtc.irq_reinject_on_ack_count != 0),
], checks=[
    Check("cmos_data", lambda rtc: not rtc.cmos_data[REG_C] & ~(C_IRQF | C_FLAGS),
          "register C (read-only) holds only IRQF, PF, AF and UF"),
    Check("cmos_data", lambda rtc: rtc.cmos_data[REG_D] == 0x80,
          "register D is read-only: VRT (0x80) as reset sets it"),
    Check("cmos_data", lambda rtc: not (_divider_held(rtc) and rtc.cmos_data[REG_A] & A_UIP),
          "UIP is never set while the divider is held in reset (QEMU asserts it)"),
    Check("update_timer", lambda rtc: not _divider_held(rtc) or rtc.update_timer == -1,
          "a divider held in reset has no update timer armed"),
    Check("update_timer", lambda rtc, aux: not aux.get("update_timer_carried", True) or _divider_held(rtc)
          or not rtc.cmos_data[REG_A] & A_UIP or rtc.update_timer != -1,
          "a latched UIP needs the update timer armed to clear it", uses_aux=True),
], pre_load=_pre_load, post_load=_post_load)
