"""The names a user gives the devices, and the versions maps that use them.

Every command and trace line that names a device (``--from``, ``--to``,
``--versions``, ``--device``, a ``migrate`` line's ``from=``/``to=``) goes
through :func:`device`, so that one spelling works everywhere: the key of
the device in ``PcMachine.devices`` (``i8254``), its section's idstr
(``0000:00:01.3/piix4_pm``), QEMU's type name (``isa-pit``) or a short alias
(``pit``), in any case.  Versions are ``DEVICE:N`` or ``DEVICE=N``, with N in
ASCII digits as QEMU's option syntax has it.
"""
from __future__ import annotations

import re

from vmstate.core.errors import UsageError

#: The devices of a pc machine whose state migrates, by their canonical name.
DEVICES = ("timer", "PCIHost", "hpet", "mc146818rtc", "i8254", "pcspk", "piix4_pm")

_ALIASES = {
    "clock": "timer", "virtual-clock": "timer",
    "pcihost": "PCIHost", "pci": "PCIHost", "i440fx-pcihost": "PCIHost",
    "rtc": "mc146818rtc", "cmos": "mc146818rtc",
    "pit": "i8254", "isa-pit": "i8254", "kvm-pit": "i8254",
    "speaker": "pcspk", "isa-pcspk": "pcspk", "port61": "pcspk",
    "pm": "piix4_pm", "acpi": "piix4_pm", "pm-timer": "piix4_pm", "piix4-pm": "piix4_pm",
    "0000:00:01.3/piix4_pm": "piix4_pm",
}
_CANONICAL = {name.lower(): name for name in DEVICES} | _ALIASES
_VERSION = re.compile(r"[0-9]+")


def device(name: str) -> str:
    """The canonical name of a device, or a UsageError listing them."""
    canonical = _CANONICAL.get(name.strip().lower())
    if canonical is None:
        raise UsageError(f"no device {name!r}: one of {', '.join(DEVICES)} "
                         f"(or {', '.join(sorted(_ALIASES))})")
    return canonical


def parse_versions(text: str) -> dict[str, int]:
    """``i8254:2,hpet=1`` as ``{"i8254": 2, "hpet": 1}``."""
    versions: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        sep = ":" if ":" in item and "=" not in item else "="
        name, found, value = item.rpartition(sep) if sep == ":" else item.partition(sep)
        if not found or not name or not _VERSION.fullmatch(value):
            raise UsageError(f"versions are DEVICE:N,... (N in digits), not {item!r}")
        versions[device(name)] = int(value)
    return versions


def format_versions(versions: dict[str, int]) -> str:
    """A versions map as ``parse_versions`` reads it back."""
    return ",".join(f"{name}:{number}" for name, number in sorted(versions.items()))
