"""Deliberately broken schema variants: proof that the migration checker can fail.

Each :class:`Planted` is a full replacement for :data:`schemas.SECTIONS` in
which one device's description carries one mistake a real device author
could make: a field dropped from the wire (replaced by ``Unused`` of the same
size, so every other byte keeps its place and the stream still loads), a
subsection whose ``needed`` rule is wrong, or a post_load conversion that
loses or forgets state.  The variants are derived from the real descriptions
at import time; ``schemas/`` itself is never touched.

Where dropping a field would leave the destination with a value one of the
description's own ``Check`` rules rejects (``read_state`` 0 beside
``rw_mode`` 3), the rules on that field go too: an author who forgot the
field wrote no rule for it either, and a variant the destination refuses
would test the validator, not the checker.

``field`` is the state path :func:`vmstate.check.report.changed_fields` names for
the lost state; ``device`` is the key in ``PcMachine.devices``.  The
interface (``Planted`` and ``PLANTED``) is imported by other tests and by the
fuzzing campaign: keep it stable.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

from devices.mc146818 import REG_C, TIME_REGISTERS
from schemas import SECTIONS, SectionSchema
from schemas.hpet import HPET, HPET_TIMER
from schemas.i8254 import I8254, PIT_CHANNEL
from schemas.mc146818rtc import MC146818RTC
from schemas.pcihost import PCIHOST
from schemas.pcspk import PCSPK
from schemas.piix4_pm import PIIX4_PM
from vmstate.wire.table import Buffer, Description, Field, Nested, Subsection, Unused


@dataclass(frozen=True)
class Planted:
    name: str
    device: str
    field: str
    sections: list
    why: str


# -- deriving broken descriptions ------------------------------------------------
def _size(entry: Field | Buffer) -> int:
    return entry.size(None, None)


def drop_field(description: Description, name: str) -> Description:
    """``description`` with field ``name`` written as zeros and skipped on
    load (the same layout, the value no longer restored), and without the
    cross-field rules that blame it."""
    found = False
    fields = []
    for entry in description.fields:
        if isinstance(entry, (Field, Buffer)) and entry.name == name:
            fields.append(Unused(_size(entry), since=entry.since, until=entry.until))
            found = True
        else:
            fields.append(entry)
    if not found:
        raise KeyError(f"{description.name} has no field {name!r}")
    checks = [check for check in description.checks if check.field_name != name]
    return dataclasses.replace(description, fields=fields, checks=checks)


def replace_nested(description: Description, inner: Description) -> Description:
    """``description`` with every Nested entry of ``inner``'s name using
    ``inner`` instead."""
    fields = []
    for entry in description.fields:
        if isinstance(entry, Nested) and entry.description.name == inner.name:
            entry = copy.copy(entry)
            entry.description = inner
        fields.append(entry)
    return dataclasses.replace(description, fields=fields)


def with_needed(description: Description, subsection: str, needed: Callable) -> Description:
    """``description`` with subsection ``subsection`` written by ``needed``."""
    if description.subsection(subsection) is None:
        raise KeyError(f"{description.name} has no subsection {subsection!r}")
    subsections = [Subsection(s.description, needed) if s.description.name == subsection else s
                   for s in description.subsections]
    return dataclasses.replace(description, subsections=subsections)


def with_hooks(description: Description, *, pre_load=None, post_load=None) -> Description:
    """``description`` with extra load steps run after its own pre_load and
    post_load."""
    own_pre, own_post = description.pre_load, description.post_load

    def chained_pre(state, version, aux):
        if own_pre is not None:
            own_pre(state, version, aux)
        pre_load(state, version, aux)

    def chained_post(state, version, aux):
        if own_post is not None:
            own_post(state, version, aux)
        post_load(state, version, aux)

    return dataclasses.replace(description,
                               pre_load=chained_pre if pre_load is not None else own_pre,
                               post_load=chained_post if post_load is not None else own_post)


def sections_with(description: Description) -> list[SectionSchema]:
    """A copy of SECTIONS with the section of ``description``'s name replaced."""
    out = [dataclasses.replace(s, description=description) if s.description.name == description.name else s
           for s in SECTIONS]
    if all(a.description is b.description for a, b in zip(out, SECTIONS)):
        raise KeyError(f"no section {description.name!r}")
    return out


def _pit_channel_without(name: str) -> list[SectionSchema]:
    return sections_with(replace_nested(I8254, drop_field(PIT_CHANNEL, name)))


def _hpet_timer_without(name: str) -> list[SectionSchema]:
    return sections_with(replace_nested(HPET, drop_field(HPET_TIMER, name)))


def _never(state) -> bool:
    return False


# -- load steps the broken variants add -----------------------------------------
def _keep_own_offset(hpet, version, aux) -> None:
    aux["planted.own_offset"] = hpet.hpet_offset


def _restore_own_offset(hpet, version, aux) -> None:
    hpet.hpet_offset = aux["planted.own_offset"]


def _disarm_update_timer(rtc, version, aux) -> None:
    rtc.update_timer = -1


def _clear_register_c(rtc, version, aux) -> None:
    cmos = bytearray(rtc.cmos_data)
    cmos[REG_C] = 0
    rtc.cmos_data = bytes(cmos)


def _keep_own_time_bytes(rtc, version, aux) -> None:
    aux["planted.own_time"] = {i: rtc.cmos_data[i] for i in TIME_REGISTERS}


def _restore_own_time_bytes(rtc, version, aux) -> None:
    cmos = bytearray(rtc.cmos_data)
    for index, value in aux["planted.own_time"].items():
        cmos[index] = value
    rtc.cmos_data = bytes(cmos)


# -- the catalogue --------------------------------------------------------------
_ALL = [
    Planted("pit-count-latched-dropped", "i8254", "i8254.channels[0].count_latched",
            _pit_channel_without("count_latched"),
            "treats a pending count latch as transient and does not migrate count_latched, so the "
            "latched value's remaining byte is read from the live counter instead"),
    Planted("pit-read-state-dropped", "i8254", "i8254.channels[0].read_state",
            _pit_channel_without("read_state"),
            "forgets that a lo/hi live read half done is state (read_state), so the destination "
            "restarts the read at the wrong byte"),
    Planted("pit-write-latch-dropped", "i8254", "i8254.channels[2].write_latch",
            _pit_channel_without("write_latch"),
            "does not carry write_latch, the first byte of a two-byte reload written before the "
            "migration, so the count loaded by the second byte has a zero low byte"),
    Planted("pit-write-state-dropped", "i8254", "i8254.channels[2].write_state",
            _pit_channel_without("write_state"),
            "does not carry write_state, so the destination takes the second byte of a two-byte "
            "reload as a new count on its own"),
    Planted("pit-status-latched-dropped", "i8254", "i8254.channels[1].status_latched",
            _pit_channel_without("status_latched"),
            "migrates the latched status byte but not the flag saying it is pending, so a read-back "
            "status is never returned after the migration"),
    Planted("hpet-offset-subsection-never-needed", "hpet", "hpet.hpet_offset",
            sections_with(with_needed(HPET, "hpet/offset", _never)),
            "never writes hpet/offset (the pre-2.12 format), so post_load rebuilds the offset from the "
            "counter and loses its sub-tick nanoseconds: the counter ticks over up to 9 ns late"),
    Planted("hpet-offset-not-rebased", "hpet", "hpet.hpet_offset",
            sections_with(with_hooks(with_needed(HPET, "hpet/offset", _never),
                                     pre_load=_keep_own_offset, post_load=_restore_own_offset)),
            "leaves the offset out of the stream and has a post_load that does not rebase it on the "
            "loaded counter, so an enabled counter runs on the destination's own offset"),
    Planted("hpet-period-dropped", "hpet", "hpet.timer[0].period",
            _hpet_timer_without("period"),
            "believes cmp is all a comparator needs and drops the period accumulator, so a periodic "
            "timer fires once more and is not re-armed"),
    Planted("hpet-isr-dropped", "hpet", "hpet.isr",
            sections_with(drop_field(HPET, "isr")),
            "treats the general interrupt status as derivable from the comparators, losing a "
            "level-triggered interrupt the guest has not acknowledged"),
    Planted("hpet-timer-expire-dropped", "hpet", "hpet.timer[0].expire",
            _hpet_timer_without("qemu_timer"),
            "assumes post_load re-arms each comparator from cmp, but it only restores the saved "
            "qemu_timer, so an armed one-shot never fires"),
    Planted("hpet-rtc-irq-level-never-needed", "hpet", "hpet.rtc_irq_level",
            sections_with(with_needed(HPET, "hpet/rtc_irq_level", _never)),
            "gets the needed rule of hpet/rtc_irq_level wrong, so the RTC's level held back under "
            "legacy replacement is lost and not passed on to GSI 8 when legacy mode ends"),
    Planted("rtc-update-timer-not-rearmed", "mc146818rtc", "mc146818rtc.update_timer",
            sections_with(with_hooks(MC146818RTC, post_load=_disarm_update_timer)),
            "applies the version-1/2 rule 'the update timer is re-armed after the load' to every "
            "version, but only the version-1/2 path re-arms it, so update-ended interrupts stop"),
    Planted("rtc-set-pending-time-lost", "mc146818rtc", "mc146818rtc.cmos_data",
            sections_with(with_hooks(MC146818RTC, pre_load=_keep_own_time_bytes,
                                     post_load=_restore_own_time_bytes)),
            "treats the CMOS time bytes as a cache of the time base and keeps the destination's, "
            "but while SET is on they hold a time the guest wrote and has not applied yet"),
    Planted("rtc-cmos-index-dropped", "mc146818rtc", "mc146818rtc.cmos_index",
            sections_with(drop_field(MC146818RTC, "cmos_index")),
            "does not migrate the index register, so a data-port access right after the migration "
            "reaches CMOS byte 0 instead of the register the guest selected"),
    Planted("rtc-register-c-cleared", "mc146818rtc", "mc146818rtc.cmos_data",
            sections_with(with_hooks(MC146818RTC, post_load=_clear_register_c)),
            "clears register C on load as if its flags were clear-on-read transients, losing "
            "interrupt flags the guest has not read yet"),
    Planted("pm-overflow-time-dropped", "piix4_pm", "piix4_pm.overflow_time",
            sections_with(drop_field(PIIX4_PM, "ar.tmr.overflow_time")),
            "migrates the armed PM timer but not its overflow time, which TMR_STS is computed from "
            "on every PM1 status read"),
    Planted("pcihost-config-reg-dropped", "PCIHost", "PCIHost.config_reg",
            sections_with(drop_field(PCIHOST, "config_reg")),
            "leaves 0xcf8 out (as machine types before 2.4 did), so a 0xcfc access after the "
            "migration goes nowhere"),
    Planted("pcspk-data-on-dropped", "pcspk", "pcspk.data_on",
            sections_with(drop_field(PCSPK, "data_on")),
            "thinks the speaker data bit only matters to the audio backend and drops it, but the "
            "guest reads it back in bit 1 of port 0x61"),
]

PLANTED: dict[str, Planted] = {bug.name: bug for bug in _ALL}
