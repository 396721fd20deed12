"""``PCIHost``: the i440fx host bridge's configuration address, version 1.

QEMU writes it unless ``x-config-reg-migration-enabled`` is off (machine
types before 2.4); without it a guest that migrates between writing 0xcf8
and touching 0xcfc reaches the wrong register.  Any 32-bit value is one a
guest can write, so there is no rule.
"""
from vmstate.wire.kinds import UINT32
from vmstate.wire.table import Description, Field

PCIHOST = Description("PCIHost", version=1, minimum=1, fields=[
    Field("config_reg", UINT32),
])
