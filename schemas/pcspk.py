"""``pcspk``: port 0x61's stored bits, version 1.

``data_on`` is bit 1 of the last write, and ``dummy_refresh_clock`` the
refresh bit as a read returns it (QEMU toggles bit 4, so 0 or 0x10).  QEMU
writes the section unless the device's ``migrate`` property is off (pc-2.7
and older); a stream without it leaves the destination's values.
"""
from devices.pcspk import REFRESH_BIT
from vmstate.wire.kinds import UINT8
from vmstate.wire.table import Description, Field

PCSPK = Description("pcspk", version=1, minimum=1, fields=[
    Field("data_on", UINT8, valid=range(0, 2)),
    Field("dummy_refresh_clock", UINT8, valid=frozenset({0, REFRESH_BIT})),
])
