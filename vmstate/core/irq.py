"""Interrupt wires.

A device drives an output line; whatever is connected (an I/O APIC input, or
another device such as the HPET's legacy-replacement inputs) sees every call,
as with QEMU's ``qemu_set_irq``, including calls that do not change the
level: level changes are the receiver's business.
"""
from __future__ import annotations

from typing import Callable


class IrqLine:
    __slots__ = ("_sink",)

    def __init__(self, sink: Callable[[int], None] | None = None):
        self._sink = sink

    def connect(self, sink: Callable[[int], None] | None) -> None:
        self._sink = sink

    def set(self, level: int) -> None:
        if self._sink is not None:
            self._sink(1 if level else 0)

    def raise_(self) -> None:
        self.set(1)

    def lower(self) -> None:
        self.set(0)

    def pulse(self) -> None:
        self.set(1)
        self.set(0)
