"""Port-I/O and MMIO address spaces with QEMU's dispatch rules.

A guest access of N bytes does not simply call a device with N bytes: QEMU
splits it at region boundaries, bounds each piece by the region's valid access
sizes and alignment, refuses (reads as 0) accesses a region declares invalid,
and widens or splits what remains to the sizes the device implements.  Those
rules decide what ``inb`` of a 4-byte-only register or ``readq`` of a 4-byte
device returns, so they are reproduced here once, for every device.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

ReadFn = Callable[[int, int], int]
WriteFn = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Sizes:
    """A region's access-size constraints (QEMU's MemoryRegionOps valid/impl).
    Zero means QEMU's default: 1 for the minimum, 4 for the maximum."""

    min: int = 0
    max: int = 0
    unaligned: bool = False


class Region:
    """A device's window in an address space, with QEMU's access rules.

    ``valid`` says which guest accesses reach the device at all; ``impl`` says
    which sizes the device's callbacks handle, the dispatcher adapting the rest.
    """

    def __init__(self, name: str, size: int, read: ReadFn, write: WriteFn,
                 valid: Sizes = Sizes(), impl: Sizes = Sizes()):
        self.name = name
        self.size = size
        self.read = read
        self.write = write
        self.valid = valid
        self.impl = impl

    def __repr__(self) -> str:
        return f"<Region {self.name} size={self.size:#x}>"


class _Ram(Region):
    """Guest RAM: stored sparsely, since a qtest guest touches little of it."""

    def __init__(self, name: str, size: int):
        super().__init__(name, size, self._read, self._write, Sizes(1, 8, True), Sizes(1, 8, True))
        self.bytes: dict[int, int] = {}

    def _read(self, offset: int, size: int) -> int:
        get = self.bytes.get
        return sum(get(offset + i, 0) << (8 * i) for i in range(size))

    def _write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            byte = (value >> (8 * i)) & 0xFF
            if byte:
                self.bytes[offset + i] = byte
            else:
                self.bytes.pop(offset + i, None)


def _mask(size: int) -> int:
    return (1 << (8 * size)) - 1


def _pow2floor(n: int) -> int:
    return 1 << (n.bit_length() - 1)


class AddressSpace:
    """A flat view of non-overlapping regions over a background.

    ``unassigned`` is what a read of nothing returns per access: all ones in
    the I/O space (QEMU's ``unassigned_io_ops``), zero in memory.
    """

    def __init__(self, name: str, limit: int, unassigned_ones: bool):
        self.name = name
        self.limit = limit
        self._unassigned = Region(
            "unassigned", limit,
            (lambda o, s: _mask(8)) if unassigned_ones else (lambda o, s: 0),
            lambda o, s, v: None,
            # unassigned memory accepts nothing: every access reads 0
            valid=Sizes() if unassigned_ones else Sizes(1, 8, False),
        )
        self._mem_unassigned = not unassigned_ones
        self._starts: list[int] = []
        self._regions: list[tuple[int, Region]] = []
        self._overlays: list[tuple[int, Region]] = []

    def map(self, base: int, region: Region, overlay: bool = False) -> None:
        """Map ``region`` at ``base``.  An overlay may cover other regions and
        wins where it does, the latest overlay first (QEMU's subregion that
        is higher in priority, or equal and added later)."""
        end = base + region.size
        if overlay:
            self._overlays.insert(0, (base, region))
            return
        if base < 0 or end > self.limit:
            raise ValueError(f"{region.name} at {base:#x} lies outside {self.name}")
        i = bisect.bisect_right(self._starts, base)
        if i and self._regions[i - 1][0] + self._regions[i - 1][1].size > base:
            raise ValueError(f"{region.name} at {base:#x} overlaps {self._regions[i - 1][1].name}")
        if i < len(self._starts) and self._starts[i] < end:
            raise ValueError(f"{region.name} at {base:#x} overlaps {self._regions[i][1].name}")
        self._starts.insert(i, base)
        self._regions.insert(i, (base, region))

    def unmap(self, region: Region) -> None:
        self._overlays = [(b, r) for b, r in self._overlays if r is not region]
        for i, (_, r) in enumerate(self._regions):
            if r is region:
                del self._starts[i]
                del self._regions[i]
                return

    def ram(self, name: str, base: int, size: int) -> _Ram:
        region = _Ram(name, size)
        self.map(base, region)
        return region

    def _translate(self, addr: int) -> tuple[Region, int, int]:
        """The region at ``addr``, the offset in it, and how many bytes of the
        flat view remain in that section.  Only RAM accesses are cut at the
        section's end: a device access goes whole to the region it starts in,
        which sees offsets past its size (as in QEMU)."""
        for base, region in self._overlays:
            if base <= addr < base + region.size:
                return region, addr - base, base + region.size - addr
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            base, region = self._regions[i]
            if addr < base + region.size:
                return region, addr - base, base + region.size - addr
        nxt = self._starts[i + 1] if i + 1 < len(self._starts) else self.limit
        return self._unassigned, addr, nxt - addr

    @staticmethod
    def _piece(region: Region, length: int, offset: int) -> int:
        """QEMU's ``memory_access_size``."""
        top = region.valid.max or 4
        if not region.impl.unaligned:
            align = offset & -offset
            if align and align < top:
                top = align
        return _pow2floor(min(length, top))

    def _valid(self, region: Region, offset: int, size: int) -> bool:
        if region is self._unassigned and self._mem_unassigned:
            return False
        rules = region.valid
        if not rules.unaligned and offset & (size - 1):
            return False
        if not rules.max:
            return True
        return rules.min <= size <= rules.max

    @staticmethod
    def _impl_size(region: Region, size: int) -> int:
        lo = region.impl.min or 1
        hi = region.impl.max or 4
        return max(min(size, hi), lo)

    def read(self, addr: int, size: int) -> int:
        value = 0
        done = 0
        while done < size:
            region, offset, room = self._translate((addr + done) % self.limit)
            left = min(size - done, room) if isinstance(region, _Ram) else size - done
            length = self._piece(region, left, offset)
            if not self._valid(region, offset, length):
                piece = 0
            else:
                step = self._impl_size(region, length)
                amask = _mask(step)
                piece = 0
                for i in range(0, length, step):
                    piece |= (region.read(offset + i, step) & amask) << (8 * i)
            value |= (piece & _mask(length)) << (8 * done)
            done += length
        return value

    def write(self, addr: int, size: int, value: int) -> None:
        value &= _mask(size)
        done = 0
        while done < size:
            region, offset, room = self._translate((addr + done) % self.limit)
            left = min(size - done, room) if isinstance(region, _Ram) else size - done
            length = self._piece(region, left, offset)
            if self._valid(region, offset, length):
                piece = (value >> (8 * done)) & _mask(length)
                step = self._impl_size(region, length)
                amask = _mask(step)
                for i in range(0, length, step):
                    region.write(offset + i, step, (piece >> (8 * i)) & amask)
            done += length
