"""``0000:00:01.3/piix4_pm``: the PIIX4 power-management function, version 3.

vmstate models its PM1 registers, the PM timer (``ar.tmr.timer``, armed for
the next toggle of bit 23, and ``ar.tmr.overflow_time`` in PM ticks) and the
GPE0 block; the rest of the section (PCI interrupt state, APM, SMBus, PCI
and memory hotplug) is carried as QEMU writes it.  Layout as QEMU 7.2 sends
it: a 2,432-byte payload with the memory-hotplug subsection.
"""
import struct

from devices.acpi_pm import PM_TIMER_FREQUENCY
from devices.pci import load_mismatch
from vmstate.core.clock import MAX_VIRTUAL_NS, NANOSECONDS_PER_SECOND, muldiv64

from vmstate.wire.kinds import BOOL, INT64, TIMER, UINT16, UINT32, UINT8, Kind
from vmstate.wire.table import Buffer, Check, Description, Field, Nested, Subsection

# QEMU's "int32 le": a big-endian int32 that must be positive and at most the
# destination's own value (the PCI device section's version).
INT32_LE = Kind("int32 le", "i", 4, -(1 << 31), (1 << 31) - 1)


def _config_matches(state, aux) -> bool:
    """the read-only bytes QEMU compares with its own function (ids,
    revision, class, header type, capabilities): "Bad config data" """
    own = aux.get("pci.own_config")
    return own is None or load_mismatch(own, state.config) is None


def _irq_levels_valid(state) -> bool:
    levels = struct.unpack(">4i", state.irq_state)
    return all(level in (0, 1) for level in levels)


PCI_DEVICE = Description("PCIDevice", version=2, minimum=1, fields=[
    Field("version_id", INT32_LE, path="pci_version_id", valid=range(1, 3)),
    Buffer("config[0]", 256, path="config", kind_name="pci config"),
    Buffer("irq_state", 16, kind_name="pci irq state"),
], checks=[
    Check("config[0]", _config_matches, "a read-only byte differs from this machine's function: QEMU refuses "
          "the load (Bad config data)", uses_aux=True),
    Check("irq_state", _irq_levels_valid, "each of the four INTx levels must be 0 or 1"),
])

APM = Description("APM State", version=1, minimum=1, fields=[
    Field("apmc", UINT8),
    Field("apms", UINT8),
])

PMSMB = Description("pmsmb", version=1, minimum=1, fields=[
    Field("smb_stat", UINT8), Field("smb_ctl", UINT8), Field("smb_cmd", UINT8),
    Field("smb_addr", UINT8), Field("smb_data0", UINT8), Field("smb_data1", UINT8),
    Field("smb_index", UINT32, valid=range(0, 32)),
    Buffer("smb_data", 32, uint8_array=True),
    Field("smb_auxctl", UINT8), Field("smb_blkdata", UINT8),
    Field("i2c_enable", BOOL, valid=range(0, 2)), Field("op_done", BOOL, valid=range(0, 2)),
    Field("in_i2c_block_read", BOOL, valid=range(0, 2)),
    Field("start_transaction_on_status_read", BOOL, valid=range(0, 2)),
])

GPE = Description("gpe", version=1, minimum=1, fields=[
    Field("sts", UINT16, path="gpe_sts"),
    Field("en", UINT16, path="gpe_en"),
])

PCIHP_STATUS = Description("acpi_pcihp_pci_status", version=1, minimum=1, fields=[
    Field("up", UINT32),
    Field("down", UINT32),
])
# 256 slots of (up, down) that vmstate carries as opaque bytes; QEMU describes
# each slot separately because the array is conditional (not compressible).
PCIHP_SLOTS = 256
_PCIHP_JSON = [{"name": "acpi_pci_hotplug.acpi_pcihp_pci_status", "index": i, "type": "struct",
                "struct": PCIHP_STATUS.json(1), "size": 8} for i in range(PCIHP_SLOTS)]

MEMORY_HOTPLUG = Description("memory hotplug state", version=1, minimum=1, fields=[
    Field("selector", UINT32, path="memhp_selector"),
])

MEMHP = Description("piix4_pm/memhp", version=1, minimum=1, fields=[
    Nested("acpi_memory_hotplug", MEMORY_HOTPLUG, path=""),
])


def _armed_or_idle(value: int) -> bool:
    """-1 (idle) or a deadline at or after time 0"""
    return value >= -1


#: QEMU only ever sets the overflow to the first toggle of bit 23 after now
#: (acpi_pm_tmr_calc_overflow_time), and now stays below the clock's end.
LAST_OVERFLOW = muldiv64(MAX_VIRTUAL_NS, PM_TIMER_FREQUENCY, NANOSECONDS_PER_SECOND) + 0x800000


def _overflow_boundary(value: int) -> bool:
    """a non-negative multiple of 2**23 PM ticks (a toggle of bit 23), no
    later than the first after the end of virtual time"""
    return 0 <= value <= LAST_OVERFLOW and value % 0x800000 == 0


def _sts_consistent(state) -> bool:
    # A PM timer armed while its status is set, or while TMR_EN is clear,
    # is a state QEMU's update_sci never leaves behind.
    if state.timer_expire == -1:
        return True
    return bool(state.pm1_en & 1) and not state.pm1_sts & 1


def _pre_load(state, version: int, aux: dict) -> None:
    """The destination's own configuration, which a load's read-only bytes
    must match (QEMU's pci_device_load)."""
    aux["pci.own_config"] = state.config


PIIX4_PM = Description("piix4_pm", version=3, minimum=3, fields=[
    Nested("parent_obj", PCI_DEVICE, path=""),
    Field("ar.pm1.evt.sts", UINT16, path="pm1_sts"),
    Field("ar.pm1.evt.en", UINT16, path="pm1_en"),
    Field("ar.pm1.cnt.cnt", UINT16, path="pm1_cnt"),
    Nested("apm", APM, path=""),
    Nested("smb", PMSMB),
    Field("ar.tmr.timer", TIMER, path="timer_expire", valid=_armed_or_idle),
    Field("ar.tmr.overflow_time", INT64, path="overflow_time", valid=_overflow_boundary),
    Nested("ar.gpe", GPE, since=2, path=""),
    Field("acpi_pci_hotplug.hotplug_select", UINT32, path="hotplug_select"),
    Buffer("acpi_pci_hotplug.acpi_pcihp_pci_status", 8 * PCIHP_SLOTS, path="pcihp", json_as=_PCIHP_JSON),
    Field("acpi_pci_hotplug.acpi_index", UINT32, path="acpi_index"),
], subsections=[
    Subsection(MEMHP, needed=lambda state: True),
], checks=[
    Check("ar.tmr.timer", _sts_consistent, "the PM timer is armed although TMR_EN is clear or TMR_STS is set"),
], pre_load=_pre_load)
