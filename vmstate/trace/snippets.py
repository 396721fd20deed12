"""Trace fragments that bring a device up the way firmware and an OS do,
for the scenarios written in code (the demo, the tests) and the strategies."""
from __future__ import annotations

from devices.acpi_pm import DEVFN, PM1_EN, PM1_STS, PMBA, PMREGMISC, TMR_EN, TMR_STS
from devices.pci import CONFIG_ADDRESS, CONFIG_DATA, config_address


def pci_write(devfn: int, reg: int, value: int) -> list[str]:
    """A 32-bit configuration write through 0xcf8/0xcfc."""
    return [f"outl {CONFIG_ADDRESS:#x} {config_address(devfn, reg):#x}", f"outl {CONFIG_DATA:#x} {value:#x}"]


def pm_bring_up(base: int = 0x600, ack: int = TMR_STS, enable: int = TMR_EN) -> list[str]:
    """The PM block placed at ``base`` (PMBA, then PMREGMISC's enable) and
    taken over: PM1 status acknowledged with ``ack`` (TMR_STS is set from
    reset; acknowledging it arms the next toggle of bit 23) and PM1 enable
    written with ``enable`` (TMR_EN: the timer's interrupt)."""
    return (pci_write(DEVFN, PMBA, base | 1) + pci_write(DEVFN, PMREGMISC, 1)
            + [f"outw {base + PM1_STS:#x} {ack:#x}", f"outw {base + PM1_EN:#x} {enable:#x}"])
