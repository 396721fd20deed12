"""QEMU's section-type bytes (migration/savevm.c's QEMU_VM_*), said once
for the stream container, the section layer and the generated savers."""

EOF_MARKER = 0x00
START = 0x01
PART = 0x02
END = 0x03
FULL = 0x04
SUBSECTION = 0x05
VMDESCRIPTION = 0x06
CONFIGURATION = 0x07
COMMAND = 0x08
FOOTER = 0x7E
