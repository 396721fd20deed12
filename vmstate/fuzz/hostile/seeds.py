"""Valid streams from busy machines, and where their values lie."""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import by_idstr
from vmstate.core.paths import FIXTURES
from vmstate.machine import migration
from vmstate.trace.load import run_to_first_migrate
from vmstate.wire import stream
from vmstate.wire.markers import EOF_MARKER, FULL
from vmstate.wire.table import Leaf

# -- valid streams and where their bytes are -----------------------------------------
# A value a mutation can make lie is a Leaf of the stream's layout: a field
# of a section (by its description) or a length or count of the framing.
def read_value(leaf: Leaf, data: bytes) -> int:
    return struct.unpack_from(">" + leaf.entry.kind.fmt, data, leaf.offset)[0]


def write_value(leaf: Leaf, data: bytes, value: int) -> bytes:
    kind = leaf.entry.kind
    bits = 8 * kind.size
    value &= (1 << bits) - 1
    if kind.lo < 0 and value >> (bits - 1):
        value -= 1 << bits
    return data[:leaf.offset] + struct.pack(">" + kind.fmt, value) + data[leaf.offset + kind.size:]


def bounds(leaf: Leaf) -> tuple[int, int]:
    """The values a field's bytes can hold (a bool is a byte)."""
    kind = leaf.entry.kind
    return (kind.lo, kind.hi) if kind.lo < 0 else (0, (1 << 8 * kind.size) - 1)


def layout(data: bytes) -> stream.Layout:
    """The layout of a valid stream, or of its device sections up to the
    first section that is not one (QEMU's RAM)."""
    return stream.layout(data, lambda idstr: getattr(by_idstr(idstr), "description", None))


@dataclass
class Seed:
    """A valid stream, the machine options it restores on, and a busy
    machine to restore it into.  ``clock`` is the virtual time a stream
    without a ``timer`` section restores at (the time of the machine that
    ran the trace: QEMU's clock under qtest is not in the stream)."""

    name: str
    data: bytes
    options: dict
    machine: Any
    layout: stream.Layout = None
    clock: int | None = None

    def __post_init__(self):
        self.layout = layout(self.data)
        if not any(s.idstr == "timer" for s in self.layout.sections):
            self.clock = self.machine.clock.now
        self._fields = [leaf for leaf in self.layout.values if not leaf.counter]
        self._starts = [leaf.offset for leaf in self._fields]
        self.offsets: dict[str, set[int]] = {}
        for leaf in self._fields:
            self.offsets.setdefault(leaf.path, set()).add(leaf.offset)

    def offsets_in(self, data: bytes) -> dict[str, set[int]] | None:
        """Where the seed's fields are in ``data`` (a path may have two
        places: a format that repeats a field), when ``data`` is the seed
        with at most one field's bytes changed (so nothing moved), else
        None.  The comparison is one XOR of the two as integers."""
        if len(data) != len(self.data):
            return None
        diff = int.from_bytes(data, "big") ^ int.from_bytes(self.data, "big")
        if not diff:
            return self.offsets
        first = len(data) - 1 - (diff.bit_length() - 1) // 8
        last = len(data) - 1 - ((diff & -diff).bit_length() - 1) // 8
        i = bisect.bisect_right(self._starts, first) - 1
        if i >= 0 and last < self._fields[i].offset + self._fields[i].size:
            return self.offsets
        return None


def _run_to_migrate(path: Path):
    machine = run_to_first_migrate(path.read_text())
    return machine, dict(machine.options)


def qemu_device_sections(data: bytes) -> bytes:
    """QEMU's own stream cut down to what a device-state stream holds: its
    header and configuration, its FULL sections of devices vmstate models
    (without ``timer``: under qtest QEMU's devices run on the qtest clock,
    which that section does not carry), and EOF."""
    (n,) = struct.unpack_from(">I", data, 9)
    out = [data[:13 + n]]
    for schema_idstr in ("PCIHost", "hpet", "mc146818rtc", "i8254", "pcspk", "0000:00:01.3/piix4_pm"):
        name = schema_idstr.encode()
        at = data.find(bytes([len(name)]) + name)
        while at >= 0 and data[at - 5] != FULL:
            at = data.find(bytes([len(name)]) + name, at + 1)
        (section_id,) = struct.unpack_from(">I", data, at - 4)
        end = data.find(b"\x7e" + struct.pack(">I", section_id), at) + 5
        out.append(data[at - 5:end])
    out.append(bytes([EOF_MARKER]))
    return b"".join(out)


OLD_VERSIONS = ({"mc146818rtc": 1}, {"mc146818rtc": 2}, {"hpet": 1, "i8254": 2})


def seeds(root: Path = FIXTURES, scenarios: int | None = None) -> list[Seed]:
    """Valid streams from busy machines: each scenario run up to its first
    ``migrate`` (the first ``scenarios`` of them, sorted; the first also
    at older versions), and each real
    QEMU stream's device sections, restored into a machine that ran the
    same trace."""
    found = []
    for path in sorted((root / "scenarios").glob("*.trace"))[:scenarios]:
        machine, options = _run_to_migrate(path)
        found.append(Seed(path.stem, migration.save(machine), options, machine))
    # The first scenario at older versions too, for the conversions a load
    # of an old stream runs (the RTC's time re-based on its CMOS bytes).
    first = found[0] if found else None
    for versions in OLD_VERSIONS if first else ():
        name = ",".join(f"{k}:{v}" for k, v in versions.items())
        found.append(Seed(f"{first.name}@{name}", migration.save(first.machine, versions), first.options,
                          first.machine))
    for path in sorted((root / "streams").glob("*.bin")):
        machine, options = _run_to_migrate(path.with_suffix(".trace"))
        found.append(Seed(path.stem, qemu_device_sections(path.read_bytes()), options, machine))
    return found


def destination_of(pool: list[Seed], i: int) -> tuple[str, int]:
    """Where seed ``i``'s mutations are restored: into the next seed's busy
    machine, so that "unchanged" is about a machine other than the
    stream's; a stream without a ``timer`` section (QEMU's device sections)
    is on the destination's clock, and only its own machine is at that
    time."""
    if any(s.idstr == "timer" for s in pool[i].layout.sections):
        return "other", (i + 1) % len(pool)
    return "own", i
