"""What a device model offers the machine and migration.

Every model (the PIT, the HPET, the RTC, the PM function, the speaker port,
the PCI host, and the virtual clock itself) is a :class:`Device`: a name
(the key of its section's schema), its state as a save writes it, a way to
take a loaded state back, and its state as it lives in the device, which is
what a checker compares across a migration.  The two differ only for a
device whose save applies a conversion first (the RTC's pre_save brings the
CMOS time bytes up to date).
"""
from __future__ import annotations

from typing import Any


class Device:
    name: str
    #: Whether a save converts the state first, so that :meth:`live_state`
    #: differs from :meth:`get_state` (then both are overridden).
    converts_on_save = False

    def get_state(self) -> Any:
        """The state as a save writes it."""
        raise NotImplementedError

    def set_state(self, state: Any) -> None:
        """Take a decoded and validated state back, as QEMU's post_load does."""
        raise NotImplementedError

    def live_state(self) -> Any:
        """The state as the device holds it, before a save's conversions."""
        return self.get_state()
