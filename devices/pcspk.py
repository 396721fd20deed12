"""Port 0x61, the PC speaker port, as QEMU 7.2's ``isa-pcspk`` shows it.

Only what a guest can observe is modeled: channel 2's gate (bit 0, written
through to the PIT), the speaker-data enable (bit 1, stored), the refresh
bit (bit 4), which QEMU toggles on every read rather than deriving from a
15 us refresh clock, and channel 2's OUT (bit 5).  The other bits read 0.
Sound generation has no guest-visible effect and is left out.
"""
from __future__ import annotations

from dataclasses import dataclass

from devices.i8254 import Pit
from vmstate.core.bus import Region, Sizes
from vmstate.core.device import Device
from vmstate.core.state import fresh_state, take

REFRESH_BIT = 1 << 4
SPEAKER_PORT = 0x61


@dataclass
class PcspkState:
    """QEMU's ``pcspk`` VMSD v1: data_on is 0 or 1, dummy_refresh_clock 0
    or 0x10 (the bit as it is read back)."""

    data_on: int = 0
    dummy_refresh_clock: int = 0


class Pcspk(Device):
    name = "pcspk"

    def __init__(self, pit: Pit):
        self.pit = pit
        self.data_on = 0
        self.dummy_refresh_clock = 0
        self.region = Region("pcspk", 1, self._read, self._write, impl=Sizes(1, 1))

    def _read(self, offset: int, size: int) -> int:
        self.dummy_refresh_clock ^= REFRESH_BIT
        return (self.pit.gate(2) | self.data_on << 1 | self.dummy_refresh_clock
                | self.pit.out(2) << 5)

    def _write(self, offset: int, size: int, value: int) -> None:
        self.data_on = (value >> 1) & 1
        self.pit.set_gate(2, value & 1)

    @fresh_state
    def get_state(self) -> PcspkState:
        return PcspkState(self.data_on, self.dummy_refresh_clock)

    def set_state(self, state: PcspkState) -> None:
        take(self, state)
