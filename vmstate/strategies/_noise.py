"""Raw accesses in and around the devices."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from typing import Iterable

from devices.acpi_pm import DEVFN, GPE_BASE, GPE_LEN, PMBA, PMREGMISC, SMBBA, SMBHSTCFG
from devices.hpet import HPET_BASE, HPET_LEN
from devices.i8254 import PIT_PORT
from devices.mc146818 import RTC_PORT
from devices.pci import COMMAND, CONFIG_ADDRESS, CONFIG_DATA, config_address
from devices.pcspk import SPEAKER_PORT
from vmstate.strategies._base import DEVICES, Chunk, _hex, require

#: Port ranges around each device that noise touches.  Chosen so that every
#: port is either the device's or decodes to nothing on QEMU's pc as well.
NOISE_PORTS = {
    "i8254": [(PIT_PORT, PIT_PORT + 7), (SPEAKER_PORT, SPEAKER_PORT)],
    "hpet": [],
    "mc146818rtc": [(RTC_PORT, RTC_PORT + 1)],
    "piix4_pm": [(0x600, 0x60F), (GPE_BASE, GPE_BASE + GPE_LEN - 1)],
}
NOISE_MEMORY = {"hpet": [(HPET_BASE, HPET_BASE + HPET_LEN - 1)]}
#: The PM function's registers noise leaves alone: those that place the
#: PM and SMBus blocks (the placement strategies own them) and SMBus host
#: configuration (an SMBus at a port nothing else modelled decodes).
_PM_PLACEMENT = {*range(PMBA, PMBA + 4), PMREGMISC, *range(SMBBA, SMBBA + 4), SMBHSTCFG}
_OUT = ("outb", "outw", "outl")
_IN = ("inb", "inw", "inl")
_WRITE = ("writeb", "writew", "writel", "writeq")
_READ = ("readb", "readw", "readl", "readq")


def noise(devices: Iterable[str] = DEVICES) -> SearchStrategy[Chunk]:
    """Raw accesses in and near ``devices``: any port or MMIO address of
    :data:`NOISE_PORTS` / :data:`NOISE_MEMORY`, any width, any value.

    Where a driver-like strategy keeps to sensible sequences, noise finds
    the states no driver reaches (a data byte with no control word before
    it, a misaligned HPET access, a PM1 access of the wrong width).  For the
    PM function, noise also writes PCI configuration of 00:01.3 outside the
    block-placement registers."""
    devices = tuple(devices)
    require(set(devices) <= set(NOISE_PORTS), f"noise is for {', '.join(NOISE_PORTS)}, not {devices!r}")
    choices: list[SearchStrategy[Chunk]] = []
    ports = [r for d in devices for r in NOISE_PORTS.get(d, [])]
    if ports:
        port = st.sampled_from(ports).flatmap(lambda r: st.integers(r[0], r[1]))
        choices.append(st.builds(lambda n, p, v: [f"{n} {_hex(p)} {_hex(v)}"], st.sampled_from(_OUT), port,
                                 st.integers(0, 0xFFFFFFFF)))
        choices.append(st.builds(lambda n, p: [f"{n} {_hex(p)}"], st.sampled_from(_IN), port))
    memory = [r for d in devices for r in NOISE_MEMORY.get(d, [])]
    if memory:
        addr = st.sampled_from(memory).flatmap(lambda r: st.integers(r[0], r[1]))
        choices.append(st.builds(lambda n, a, v: [f"{n} {_hex(a)} {_hex(v)}"], st.sampled_from(_WRITE), addr,
                                 st.integers(0, (1 << 64) - 1)))
        choices.append(st.builds(lambda n, a: [f"{n} {_hex(a)}"], st.sampled_from(_READ), addr))
    if "piix4_pm" in devices:
        safe = [r for r in range(COMMAND, 0x100) if r not in _PM_PLACEMENT]
        choices.append(st.builds(lambda r, v, w: [f"outl {_hex(CONFIG_ADDRESS)} {_hex(config_address(DEVFN, r))}",
                                                  f"out{w} {_hex(CONFIG_DATA + (r & 3 if w == 'b' else 0))} {_hex(v)}"],
                                 st.sampled_from(safe), st.integers(0, 0xFF), st.just("b")))
    if not choices:
        return st.nothing()
    return st.one_of(choices)
