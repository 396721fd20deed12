"""PCI configuration mechanism #1 (ports 0xcf8/0xcfc) on the i440fx host.

It exists here to reach the PIIX4 power-management function's configuration
registers, which place the ACPI PM block in the I/O space.  Every function
of the pc machine has QEMU 7.2's configuration bytes and write masks; only
the PM function's registers have effects.
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
CAPABILITY_LIST = 0x34
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D
DEVICE_SPECIFIC = 0x40
# QEMU's subsystem ids for a device that sets none (Red Hat, QEMU)
QEMU_SUBSYSTEM_VENDOR = 0x1AF4
QEMU_SUBSYSTEM = 0x1100


BAR4 = 0x20
# Bits of the status word a write of 1 clears (PCI_STATUS parity and abort
# errors: QEMU's pci_init_w1cmask).
STATUS_W1C = 0xF900
CAP_LIST = 0x10      # status bit 4: the capability list pointer is valid


def header_masks(io_bar: tuple[int, int] | None = None) -> tuple[bytes, bytes, bytes]:
    """QEMU 7.2's masks of a type-0 function (hw/pci/pci.c pci_init_wmask,
    pci_init_w1cmask, pci_init_cmask, pci_register_bar): what a guest may
    write (command IO|MEMORY|MASTER|SERR|INTX_DISABLE, cache line,
    interrupt line, every device-specific byte), what a write of 1 clears
    (the status error bits), and what a load must find equal to the
    destination's own (ids, revision, class, header type, the capability
    bit and pointer, BAR type bits).  ``io_bar`` is an I/O BAR's (offset,
    size)."""
    wmask, w1cmask, cmask = bytearray(CONFIG_SIZE), bytearray(CONFIG_SIZE), bytearray(CONFIG_SIZE)
    wmask[COMMAND:COMMAND + 2] = (0x0507).to_bytes(2, "little")
    wmask[CACHE_LINE_SIZE] = wmask[INTERRUPT_LINE] = 0xFF
    wmask[DEVICE_SPECIFIC:] = b"\xff" * (CONFIG_SIZE - DEVICE_SPECIFIC)
    w1cmask[STATUS:STATUS + 2] = STATUS_W1C.to_bytes(2, "little")
    for reg in (*range(VENDOR_ID, COMMAND), *range(REVISION_ID, CACHE_LINE_SIZE), HEADER_TYPE, CAPABILITY_LIST):
        cmask[reg] = 0xFF
    cmask[STATUS] = CAP_LIST
    if io_bar is not None:
        offset, size = io_bar
        wmask[offset:offset + 4] = (~(size - 1) & 0xFFFFFFFF).to_bytes(4, "little")
        cmask[offset:offset + 4] = b"\xff" * 4
    return bytes(wmask), bytes(w1cmask), bytes(cmask)


def load_mismatch(own: bytes, loaded: bytes, io_bar: tuple[int, int] | None = None) -> int | None:
    """The first byte a load of ``loaded`` over a function whose own
    configuration is ``own`` must refuse (QEMU's get_pci_config_device:
    "Bad config data"), or None."""
    wmask, w1cmask, cmask = _MASKS.get(io_bar) or _MASKS.setdefault(io_bar, header_masks(io_bar))
    for i, (a, b) in enumerate(zip(own, loaded)):
        if (a ^ b) & cmask[i] & ~wmask[i] & ~w1cmask[i]:
            return i
    return None


_MASKS: dict = {}


class PciFunction:
    """A function's 256-byte configuration space with QEMU 7.2's masks (see
    :func:`header_masks`).  ``values`` are the bytes its code sets besides
    the identity and the header type (status, prog-if, reset values of
    device-specific registers); ``io_bar`` an I/O BAR's (offset, size)."""

    def __init__(self, devfn: int, vendor: int, device: int, revision: int, class_code: int,
                 header_type: int = 0, values: dict[int, int] | None = None,
                 io_bar: tuple[int, int] | None = None):
        self.devfn = devfn
        self.io_bar = io_bar
        self.config = bytearray(CONFIG_SIZE)
        wmask, w1cmask, _ = _MASKS.get(io_bar) or _MASKS.setdefault(io_bar, header_masks(io_bar))
        self.wmask, self.w1cmask = wmask, w1cmask
        self._set16(VENDOR_ID, vendor)
        self._set16(DEVICE_ID, device)
        self.config[REVISION_ID] = revision
        self._set16(CLASS_DEVICE, class_code)
        self.config[HEADER_TYPE] = header_type
        if header_type & 0x7F == 0:
            self._set16(SUBSYSTEM_VENDOR_ID, QEMU_SUBSYSTEM_VENDOR)
            self._set16(SUBSYSTEM_ID, QEMU_SUBSYSTEM)
        for reg, value in (values or {}).items():
            self.config[reg] = value

    def _set16(self, reg: int, value: int) -> None:
        self.config[reg:reg + 2] = value.to_bytes(2, "little")

    def config_read(self, addr: int, size: int) -> int:
        return int.from_bytes(self.config[addr:addr + size], "little")

    def config_write(self, addr: int, size: int, value: int) -> None:
        """QEMU's pci_default_write_config: writable bits take the value,
        then the write-1-to-clear bits the value has set are cleared."""
        for i in range(size):
            mask = self.wmask[addr + i]
            byte = (value >> (8 * i)) & 0xFF
            self.config[addr + i] = ((self.config[addr + i] & ~mask) | (byte & mask)) & ~(byte & self.w1cmask[addr + i])
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


def pc_functions(ram_size: int) -> list[PciFunction]:
    """The functions QEMU 7.2's ``pc`` machine has with ``-nodefaults``, bar
    the PM function, with the bytes their code sets (hw/pci-host/i440fx.c,
    hw/isa/piix3.c, hw/ide/piix.c): the i440FX host bridge (DRAM rows at
    0x57 in 8 MiB units, SMRAM 0x72), the PIIX3 ISA bridge (multifunction;
    PIRQ routing, TOM, MBDMA, SMI and APM defaults) and the PIIX3 IDE (bus
    master I/O BAR4 of 16 bytes).  Only the bytes are modelled: a write to
    the i440FX's PAM or the PIIX3's PIRQ registers changes no mapping
    here."""
    return [
        PciFunction(0x00, 0x8086, 0x1237, 0x02, 0x0600, values={0x57: ram_size >> 23, 0x72: 0x02}),
        PciFunction(0x08, 0x8086, 0x7000, 0x00, 0x0601, header_type=0x80,
                    values={STATUS + 1: 0x02, 0x4C: 0x4D, 0x4E: 0x03, 0x60: 0x80, 0x61: 0x80, 0x62: 0x80,
                            0x63: 0x80, 0x69: 0x02, 0x70: 0x80, 0x76: 0x0C, 0x77: 0x0C, 0x78: 0x02, 0xA0: 0x08,
                            0xA8: 0x0F}),
        PciFunction(0x09, 0x8086, 0x7010, 0x00, 0x0101, values={STATUS: 0x80, STATUS + 1: 0x02, 0x09: 0x80,
                                                                 BAR4: 0x01}, io_bar=(BAR4, 16)),
    ]
