"""The PIIX4 PM function and its ACPI PM timer, as firmware and an OS drive them."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from typing import Sequence

from devices.acpi_pm import DEVFN, GPE_BASE, PM1_CNT, PM1_EN, PM1_STS, PM_TMR, PMBA, PMREGMISC, SLP_EN
from devices.pci import COMMAND, CONFIG_ADDRESS, CONFIG_DATA, INTERRUPT_LINE, VENDOR_ID, config_address
from vmstate.strategies._base import Chunk, _hex, _weighted, require
from vmstate.trace.snippets import pci_write, pm_bring_up

#: Where the PM block is placed: QEMU's default and other free I/O ranges
#: (nothing else decodes there on pc, and vmstate models the same).
PM_BASES = (0x600, 0xB000, 0x1000, 0x4000)


def _pci_write(reg: int, value: int) -> Chunk:
    return pci_write(DEVFN, reg, value)


@st.composite
def _pm_place(draw, bases: SearchStrategy[int]) -> Chunk:
    """PMBA (config 0x40) and/or PMREGMISC's enable (config 0x80)."""
    lines: Chunk = []
    if draw(st.booleans()) or draw(st.booleans()):
        lines += _pci_write(PMBA, draw(bases) | 1)
    if draw(st.booleans()) or draw(st.booleans()) or not lines:
        lines += _pci_write(PMREGMISC, draw(st.sampled_from([1, 0])))
    return lines


@st.composite
def _pm_access(draw, bases: SearchStrategy[int]) -> Chunk:
    """PM1 status/enable/control and the timer, at one of the bases."""
    base = draw(bases)
    kind = draw(st.sampled_from(["tmr", "sts", "en", "ack", "cnt", "tmr-narrow", "cnt-write"]))
    if kind == "tmr":
        return [f"inl {_hex(base + PM_TMR)}"]
    if kind == "tmr-narrow":
        return [f"{draw(st.sampled_from(['inb', 'inw']))} {_hex(base + PM_TMR)}"]
    if kind == "sts":
        return [f"inw {_hex(base + PM1_STS)}"]
    if kind == "en":
        return [f"outw {_hex(base + PM1_EN)} {_hex(draw(st.sampled_from([1, 0, 0x21, 0x521, 0xFFFF])))}"]
    if kind == "ack":
        return [f"outw {_hex(base + PM1_STS)} {_hex(draw(st.sampled_from([1, 0xFFFF, 0x20])))}"]
    if kind == "cnt":
        return [f"inw {_hex(base + PM1_CNT)}"]
    return [f"outw {_hex(base + PM1_CNT)} {_hex(draw(st.integers(0, 0xFFFF)) & ~SLP_EN)}"]


_pm_config_read = st.sampled_from([VENDOR_ID, COMMAND, PMBA, PMREGMISC, INTERRUPT_LINE]).map(
    lambda r: [f"outl {_hex(CONFIG_ADDRESS)} {_hex(config_address(DEVFN, r))}", f"inl {_hex(CONFIG_DATA)}"])
_pm_gpe = st.one_of(
    st.integers(0, 3).map(lambda o: [f"inb {_hex(GPE_BASE + o)}"]),
    st.tuples(st.integers(0, 3), st.integers(0, 0xFF)).map(lambda t: [f"outb {_hex(GPE_BASE + t[0])} {_hex(t[1])}"]),
)
#: PM1 enable values an OS writes: TMR_EN alone, with GBL_EN, with the
#: power button and RTC alarm too; or none.
_pm_enables = st.sampled_from([1, 0x21, 0x121, 0x521, 0x100, 0])
#: What an acknowledge writes to PM1 status: TMR_STS, everything, or the
#: wake and power-button bits.
_pm_acks = st.sampled_from([1, 0xFFFF, 0x8001, 0x100, 0x20])


@st.composite
def _pm_bringup(draw, bases: SearchStrategy[int]) -> Chunk:
    """Firmware places the block (PMBA, then PMREGMISC's enable; QEMU's
    default 0x600 most often), and the OS takes it over: acknowledges what
    PM1 status holds (TMR_STS is set from reset; acknowledging it arms the
    next toggle of bit 23, about 2.34 s of PM ticks later), enables the
    timer's interrupt (TMR_EN), and sometimes reads the status back."""
    base = draw(bases)
    lines = pm_bring_up(base, draw(_pm_acks), draw(_pm_enables))
    if draw(st.booleans()):
        lines.append(f"inw {_hex(base + PM1_STS)}")
    return lines


#: Waits of an OS for the PM timer's interrupt: to the next deadline (the
#: armed toggle of bit 23), or 100 ms to 5 s (past a toggle, ~2.34 s apart).
_pm_wait = st.one_of(st.just("clock_step"),
                     st.integers(100_000_000, 5_000_000_000).map(lambda ns: f"clock_step {ns}"))


@st.composite
def _pm_sci_handler(draw, bases: SearchStrategy[int]) -> Chunk:
    """The OS's SCI handler: sometimes after waiting for the interrupt, it
    reads PM1 status (and often the timer), writes back what it
    acknowledges, and sometimes reads the status again."""
    base = draw(bases)
    lines: Chunk = []
    if draw(st.booleans()):
        lines.append(draw(_pm_wait))
    lines.append(f"inw {_hex(base + PM1_STS)}")
    if draw(st.booleans()):
        lines.append(f"inl {_hex(base + PM_TMR)}")
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"outw {_hex(base + PM1_STS)} {_hex(draw(_pm_acks))}")
    if draw(st.booleans()):
        lines.append(f"inw {_hex(base + PM1_STS)}")
    return lines


def pm_operations(bases: Sequence[int] = PM_BASES) -> SearchStrategy[Chunk]:
    """The ACPI PM function as firmware and an OS drive it.

    Draws one chunk: a bring-up (the block placed and enabled, PM1 status
    acknowledged, TMR_EN set: the PM timer armed for its next toggle); the
    OS's SCI handler (a wait for the interrupt, to the next deadline or
    long enough to cross a toggle of bit 23, then PM1 status read,
    acknowledged and read again, the timer read); the block placed through
    PCI configuration of 00:01.3 (PMBA at 0x40, the enable bit of
    PMREGMISC at 0x80, via 0xcf8/0xcfc) at one of :data:`PM_BASES`; PM1
    status reads and write-one-to-clear acknowledges, PM1 enable writes
    (TMR_EN among them), PM1 control reads and writes (never SLP_EN: QEMU
    would power off), PM timer reads of every width; configuration reads;
    GPE0 block accesses.  Accesses pick a base from the same list, so that
    some hit the block and some miss it.

    ``bases`` are where the block is placed and accessed, the first most
    often (default :data:`PM_BASES`, QEMU's 0x600 first); each must be
    64-byte aligned, as PMBA's writable bits are, and decode to nothing else
    on pc (the caller's to ensure)."""
    bases = tuple(bases)
    require(bases and all(0 < b < 0x10000 and b % 64 == 0 for b in bases),
            f"bases are 64-byte aligned I/O ports, not {bases!r}")
    favoured = bases[:1]
    place = st.sampled_from(favoured * 4 + bases[1:])     # accesses: mostly where the block usually is
    bring_up = st.sampled_from(favoured * 6 + bases[1:])
    return _weighted((2, _pm_bringup(bring_up)), (2, _pm_sci_handler(place)), (1, _pm_place(place)),
                     (3, _pm_access(place)), (1, _pm_config_read), (1, _pm_gpe))
