"""The PIIX4 power-management function (PCI 00:01.3) and its ACPI PM timer.

The guest places the PM I/O block with PMBA (config 0x40) and enables it with
bit 0 of PMREGMISC (config 0x80).  The 24-bit PM timer counts at 3,579,545 Hz
from the virtual clock and is computed when read; TMR_STS is set once the
next toggle of bit 23 (``overflow_time``) has passed, and the SCI (GSI 9)
follows status AND enable.  The timer is armed only while TMR_EN is set and
TMR_STS is clear, exactly as in QEMU 7.2's ``hw/acpi/core.c``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from devices.pci import INTERRUPT_PIN, STATUS, PciFunction
from vmstate.core.bus import Region, Sizes
from vmstate.core.clock import NANOSECONDS_PER_SECOND, VirtualClock, muldiv64
from vmstate.core.device import Device
from vmstate.core.state import copy_state, fresh_state, take
from vmstate.core.irq import IrqLine

PM_TIMER_FREQUENCY = 3_579_545
TMR_STS = 1 << 0
TMR_EN = 1 << 0
PM1_COMMON_ENABLED = 0x0521  # power button, sleep button, RTC, global lock, timer
SCI_EN = 1 << 0
SLP_EN = 1 << 13
GPE_BASE = 0xAFE0
# The PM I/O block, from PMBA: PM1 event (status, enable), PM1 control, timer.
PM1_STS, PM1_EN, PM1_CNT, PM_TMR = 0, 2, 4, 8
GPE_LEN = 4
DEVFN = 0x0B  # device 1, function 3

# Function 3's configuration registers (PIIX4 datasheet, power management
# function) that QEMU 7.2's piix4.c sets or acts on.
PMBA = 0x40        # PM I/O base address; bit 0 reads 1
DEVACTB = 0x58     # device activity B; byte 3 bit 1: SMM "already set up" under qtest
DEVRESA = 0x5C     # device resource A; byte 3: 0x10 (and 0x80 with a parallel port)
DEVRESB = 0x60     # device resource B; byte 3: 0x60
PMREGMISC = 0x80   # bit 0 enables the PM I/O block at PMBA
SMBBA = 0x90       # SMBus I/O base address (0xb100 | 1)
SMBHSTCFG = 0xD2   # SMBus host configuration: 0x09, host enabled
SMB_IO_BASE = 0xB100


@dataclass
class PmSmbState:
    """The SMBus host controller's registers.  Not modeled, but carried so
    that a ``piix4_pm`` section round-trips exactly; the defaults are what a
    QEMU 7.2 ``pc`` machine saves after reset."""

    smb_stat: int = 0
    smb_ctl: int = 0
    smb_cmd: int = 0
    smb_addr: int = 0
    smb_data0: int = 0
    smb_data1: int = 0
    smb_index: int = 0
    smb_data: bytes = bytes(32)
    smb_auxctl: int = 2
    smb_blkdata: int = 0
    i2c_enable: int = 0
    op_done: int = 1
    in_i2c_block_read: int = 0
    start_transaction_on_status_read: int = 0


@dataclass
class PmState:
    """Everything the PM function holds.  The first fields are modeled; the
    rest (PCI interrupt state, APM, SMBus, PCI and memory hotplug) are not,
    but QEMU's ``piix4_pm`` section carries them, so they are kept as
    storage with the values QEMU saves after reset."""

    pm1_sts: int
    pm1_en: int
    pm1_cnt: int
    overflow_time: int
    timer_expire: int
    gpe_sts: int
    gpe_en: int
    config: bytes
    pci_version_id: int = 2
    irq_state: bytes = bytes(16)
    apmc: int = 0
    apms: int = 0
    smb: PmSmbState = field(default_factory=PmSmbState)
    hotplug_select: int = 0
    pcihp: bytes = bytes(256 * 8)
    acpi_index: int = 0
    memhp_selector: int = 0


class AcpiPm(PciFunction, Device):
    name = "piix4_pm"

    def __init__(self, clock: VirtualClock, sci: IrqLine, io, acpi_only: bool = False):
        super().__init__(DEVFN, 0x8086, 0x7113, 0x03, 0x0680)
        self.clock = clock
        self.sci = sci
        self.io = io
        self.acpi_only = acpi_only
        self.timer = clock.timer(self._timer_fired, "acpi-pm-tmr")
        self.evt_region = Region("acpi-evt", 4, self._evt_read, self._evt_write,
                                 valid=Sizes(1, 2), impl=Sizes(2, 0))
        self.cnt_region = Region("acpi-cnt", 2, self._cnt_read, self._cnt_write,
                                 valid=Sizes(1, 2), impl=Sizes(2, 0))
        self.tmr_region = Region("acpi-tmr", 4, self._tmr_read, lambda o, s, v: None,
                                 valid=Sizes(1, 4), impl=Sizes(4, 0))
        self.gpe_region = Region("acpi-gpe0", GPE_LEN, self._gpe_read, self._gpe_write,
                                 valid=Sizes(1, 4), impl=Sizes(1, 1))
        io.map(GPE_BASE, self.gpe_region)
        self.mapped_base: int | None = None
        # what the section carries that vmstate stores without modelling it
        take(self, PmState(0, 0, 0, 0, -1, 0, 0, b""), skip=("config", "timer_expire"))
        self.config[STATUS:STATUS + 2] = (0x0280).to_bytes(2, "little")  # medium DEVSEL, fast back-to-back
        self.config[INTERRUPT_PIN] = 0x01
        self.config[DEVRESA + 3] = 0x10
        self.config[DEVRESB + 3] = 0x60
        self.config[SMBBA:SMBBA + 2] = (SMB_IO_BASE | 1).to_bytes(2, "little")
        self.config[SMBHSTCFG] = 0x09
        self.reset()

    def reset(self) -> None:
        self.config[DEVACTB:DEVACTB + 4] = bytes(4)  # SMM counts as set up under qtest
        self.config[PMBA] = 0x01
        self.config[PMREGMISC] = 0
        self.pm1_sts = 0
        self.pm1_en = 0
        self.pm1_cnt = SCI_EN if self.acpi_only else 0
        self.overflow_time = 0
        self.timer.delete()
        self.gpe_sts = 0
        self.gpe_en = 0
        self._update_sci()
        self._update_io_space()

    # -- the PCI side: placing the block ---------------------------------
    @property
    def base(self) -> int:
        return int.from_bytes(self.config[PMBA:PMBA + 4], "little") & 0xFFC0

    @property
    def enabled(self) -> bool:
        return bool(self.config[PMREGMISC] & 1)

    def config_written(self, addr: int, size: int) -> None:
        if addr <= PMREGMISC < addr + size or (addr < PMBA + 4 and addr + size > PMBA):
            self._update_io_space()

    def _update_io_space(self) -> None:
        want = self.base if self.enabled else None
        if want == self.mapped_base:
            return
        for region in (self.evt_region, self.cnt_region, self.tmr_region):
            self.io.unmap(region)
        if want is not None:
            self.io.map(want + PM1_STS, self.evt_region, overlay=True)
            self.io.map(want + PM1_CNT, self.cnt_region, overlay=True)
            self.io.map(want + PM_TMR, self.tmr_region, overlay=True)
        self.mapped_base = want

    # -- the timer ---------------------------------------------------------
    def ticks(self) -> int:
        return muldiv64(self.clock.now, PM_TIMER_FREQUENCY, NANOSECONDS_PER_SECOND)

    def _overflow_ns(self) -> int:
        return muldiv64(self.overflow_time, NANOSECONDS_PER_SECOND, PM_TIMER_FREQUENCY)

    def _calc_overflow_time(self) -> None:
        self.overflow_time = (self.ticks() + 0x800000) & ~0x7FFFFF

    def _get_sts(self) -> int:
        if self.clock.now >= self._overflow_ns():
            self.pm1_sts |= TMR_STS
        return self.pm1_sts

    def _update_sci(self) -> None:
        sts = self._get_sts()
        level = bool(sts & self.pm1_en & PM1_COMMON_ENABLED) or bool(self.gpe_sts & self.gpe_en & 0xFF)
        self.sci.set(level)
        if self.pm1_en & TMR_EN and not sts & TMR_STS:
            self.timer.mod(self._overflow_ns())
        else:
            self.timer.delete()

    def _timer_fired(self) -> None:
        self._update_sci()

    # -- the I/O block -------------------------------------------------------
    def _evt_read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self._get_sts()
        if offset == 2:
            return self.pm1_en
        return 0

    def _evt_write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            if self._get_sts() & value & TMR_STS:
                self._calc_overflow_time()
            self.pm1_sts &= ~value & 0xFFFF
            self._update_sci()
        elif offset == 2:
            self.pm1_en = value & 0xFFFF
            self._update_sci()

    def _cnt_read(self, offset: int, size: int) -> int:
        return self.pm1_cnt

    def _cnt_write(self, offset: int, size: int, value: int) -> None:
        # Sleep requests (SLP_EN) would power the machine off or suspend it;
        # only the register's stored bits are modeled.
        self.pm1_cnt = value & ~SLP_EN & 0xFFFF

    def _tmr_read(self, offset: int, size: int) -> int:
        return self.ticks() & 0xFFFFFF

    def _gpe_read(self, offset: int, size: int) -> int:
        if offset < GPE_LEN // 2:
            return (self.gpe_sts >> (8 * offset)) & 0xFF
        if offset < GPE_LEN:
            return (self.gpe_en >> (8 * (offset - GPE_LEN // 2))) & 0xFF
        return 0

    def _gpe_write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset < GPE_LEN // 2:
            self.gpe_sts &= ~(value << (8 * offset))
        elif offset < GPE_LEN:
            shift = 8 * (offset - GPE_LEN // 2)
            self.gpe_en = (self.gpe_en & ~(0xFF << shift)) | (value << shift)
        self._update_sci()

    # -- state -----------------------------------------------------------------
    @fresh_state
    def get_state(self) -> PmState:
        return PmState(self.pm1_sts, self.pm1_en, self.pm1_cnt, self.overflow_time,
                       self.timer.expire, self.gpe_sts, self.gpe_en, bytes(self.config),
                       self.pci_version_id, self.irq_state, self.apmc, self.apms, copy_state(self.smb),
                       self.hotplug_select, self.pcihp, self.acpi_index, self.memhp_selector)

    def set_state(self, state: PmState) -> None:
        take(self, state, skip=("config", "timer_expire", "smb"))
        self.config[:] = state.config
        self.smb = copy_state(state.smb)
        self.timer.load(state.timer_expire)
        self._update_io_space()
