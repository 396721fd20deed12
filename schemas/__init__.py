"""Versioned binary schemas of each device's full state, in QEMU's wire format.

One module per section, each a :class:`vmstate.wire.table.Description` table
written from QEMU 7.2's VMStateDescription and the format's history.
:data:`SECTIONS` lists them in the order QEMU 7.2's ``pc`` machine writes
them, each with the name of the device whose state it carries (its key in
``PcMachine.devices``, and what ``--from``/``--to``/``--versions`` take).
"""
from __future__ import annotations

from dataclasses import dataclass

from schemas.hpet import HPET
from schemas.i8254 import I8254
from schemas.mc146818rtc import MC146818RTC
from schemas.pcihost import PCIHOST
from schemas.pcspk import PCSPK
from schemas.piix4_pm import PIIX4_PM
from schemas.timer import TIMER
from vmstate.wire.table import Description


@dataclass(frozen=True)
class SectionSchema:
    idstr: str
    device: str
    description: Description


SECTIONS: list[SectionSchema] = [
    SectionSchema("timer", "timer", TIMER),
    SectionSchema("PCIHost", "PCIHost", PCIHOST),
    SectionSchema("hpet", "hpet", HPET),
    SectionSchema("mc146818rtc", "mc146818rtc", MC146818RTC),
    SectionSchema("i8254", "i8254", I8254),
    SectionSchema("pcspk", "pcspk", PCSPK),
    SectionSchema("0000:00:01.3/piix4_pm", "piix4_pm", PIIX4_PM),
]


def by_idstr(idstr: str, sections: list[SectionSchema] = SECTIONS) -> SectionSchema | None:
    """The schema of the section a stream names ``idstr``."""
    for section in sections:
        if section.idstr == idstr:
            return section
    return None
