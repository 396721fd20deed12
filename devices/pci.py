"""PCI configuration mechanism #1 (ports 0xcf8/0xcfc) on the i440fx host.

It exists here to reach the PIIX4 power-management function's configuration
registers, which place the ACPI PM block in the I/O space.  Functions other
than the PM function answer their identity registers only.
"""
from __future__ import annotations

from dataclasses import dataclass

from vmstate.core.bus import Region, Sizes
from vmstate.core.device import Device
from vmstate.core.state import fresh_state

CONFIG_SIZE = 256
# Configuration mechanism #1: the address latch and the data window.
CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
CONFIG_ENABLE = 1 << 31


def config_address(devfn: int, reg: int = 0, bus: int = 0) -> int:
    """What a guest writes to 0xcf8 to reach register ``reg`` of a function."""
    return CONFIG_ENABLE | bus << 16 | devfn << 8 | (reg & 0xFC)

# The standard header (PCI Local Bus Specification, type 0).
VENDOR_ID = 0x00
DEVICE_ID = 0x02
COMMAND = 0x04
STATUS = 0x06
REVISION_ID = 0x08
CLASS_DEVICE = 0x0A
CACHE_LINE_SIZE = 0x0C
LATENCY_TIMER = 0x0D
HEADER_TYPE = 0x0E
SUBSYSTEM_VENDOR_ID = 0x2C
SUBSYSTEM_ID = 0x2E
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D
DEVICE_SPECIFIC = 0x40
# QEMU's subsystem ids for a device that sets none (Red Hat, QEMU)
QEMU_SUBSYSTEM_VENDOR = 0x1AF4
QEMU_SUBSYSTEM = 0x1100


class PciFunction:
    """A function's 256-byte configuration space with QEMU's write masks:
    the standard header is read-only but for the command register, cache line,
    latency timer and interrupt line; device-specific registers from 0x40 are
    writable."""

    def __init__(self, devfn: int, vendor: int, device: int, revision: int,
                 class_code: int, header_type: int = 0):
        self.devfn = devfn
        self.config = bytearray(CONFIG_SIZE)
        self.wmask = bytearray(CONFIG_SIZE)
        self._set16(VENDOR_ID, vendor)
        self._set16(DEVICE_ID, device)
        self.config[REVISION_ID] = revision
        self._set16(CLASS_DEVICE, class_code)
        self.config[HEADER_TYPE] = header_type
        if header_type & 0x7F == 0:
            self._set16(SUBSYSTEM_VENDOR_ID, QEMU_SUBSYSTEM_VENDOR)
            self._set16(SUBSYSTEM_ID, QEMU_SUBSYSTEM)
        self.wmask[COMMAND] = 0x47
        self.wmask[COMMAND + 1] = 0x05
        for reg in (CACHE_LINE_SIZE, LATENCY_TIMER, INTERRUPT_LINE):
            self.wmask[reg] = 0xFF
        # one slice, not 192 stores: a machine is built per migration
        self.wmask[DEVICE_SPECIFIC:CONFIG_SIZE] = b"\xff" * (CONFIG_SIZE - DEVICE_SPECIFIC)

    def _set16(self, reg: int, value: int) -> None:
        self.config[reg:reg + 2] = value.to_bytes(2, "little")

    def config_read(self, addr: int, size: int) -> int:
        return int.from_bytes(self.config[addr:addr + size], "little")

    def config_write(self, addr: int, size: int, value: int) -> None:
        for i in range(size):
            mask = self.wmask[addr + i]
            byte = (value >> (8 * i)) & 0xFF
            self.config[addr + i] = (self.config[addr + i] & ~mask) | (byte & mask)
        self.config_written(addr, size)

    def config_written(self, addr: int, size: int) -> None:
        """Hook for functions whose registers have side effects."""


@dataclass
class PciHostState:
    """The host bridge's migrated state: the latched configuration address,
    without which a guest's next 0xcfc access lands elsewhere."""

    config_reg: int


class PciHost(Device):
    """The config-address register at 0xcf8 and the data window at 0xcfc,
    plus PIIX3's reset-control register at 0xcf9, which overlays the former."""

    name = "PCIHost"

    def __init__(self):
        self.config_reg = 0
        self.rcr = 0
        self.functions: dict[int, PciFunction] = {}
        self.address_region = Region("pci-conf-idx", 4, self._addr_read, self._addr_write)
        self.data_region = Region("pci-conf-data", 4, self._data_read, self._data_write)
        self.rcr_region = Region("piix3-reset-control", 1, self._rcr_read, self._rcr_write,
                                 impl=Sizes(1, 1))

    def add(self, function: PciFunction) -> None:
        self.functions[function.devfn] = function

    def map(self, io) -> None:
        io.map(CONFIG_ADDRESS, self.address_region)
        io.map(CONFIG_DATA, self.data_region)
        io.map(0xCF9, self.rcr_region, overlay=True)

    def _addr_read(self, offset: int, size: int) -> int:
        return self.config_reg

    def _addr_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0 and size == 4:
            self.config_reg = value

    def _target(self, offset: int) -> tuple[PciFunction | None, int]:
        addr = self.config_reg | (offset & 3)
        if (addr >> 16) & 0xFF:
            return None, 0
        return self.functions.get((addr >> 8) & 0xFF), addr & 0xFF

    def _data_read(self, offset: int, size: int) -> int:
        if not self.config_reg & (1 << 31):
            return 0xFFFFFFFF
        function, reg = self._target(offset)
        if function is None:
            return 0xFFFFFFFF
        return function.config_read(reg, min(size, CONFIG_SIZE - reg))

    def _data_write(self, offset: int, size: int, value: int) -> None:
        if not self.config_reg & (1 << 31):
            return
        function, reg = self._target(offset)
        if function is not None:
            function.config_write(reg, min(size, CONFIG_SIZE - reg), value)

    @fresh_state
    def get_state(self) -> PciHostState:
        return PciHostState(self.config_reg)

    def set_state(self, state: PciHostState) -> None:
        self.config_reg = state.config_reg

    def _rcr_read(self, offset: int, size: int) -> int:
        return self.rcr

    def _rcr_write(self, offset: int, size: int, value: int) -> None:
        # Bit 2 requests a system reset, which a qtest trace cannot survive on
        # the reference either; only the stored bit is modeled.
        self.rcr = value & 0x02


def pc_functions() -> list[PciFunction]:
    """The functions QEMU 7.2's ``pc`` machine has with ``-nodefaults``, bar
    the PM function: host bridge, PIIX3 ISA bridge, PIIX3 IDE."""
    return [
        PciFunction(0x00, 0x8086, 0x1237, 0x02, 0x0600),
        PciFunction(0x08, 0x8086, 0x7000, 0x00, 0x0601, header_type=0x80),
        PciFunction(0x09, 0x8086, 0x7010, 0x00, 0x0101),
    ]
