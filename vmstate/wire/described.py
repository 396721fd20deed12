"""A section read by the JSON description QEMU writes after EOF.

For every device vmstate has no schema of, the stream's own description
says what its bytes are: each field's name, type and size (an array as one
entry with ``array_len``, or one entry per element with ``index``), structs
with their fields and subsections, and the subsections that were sent.
This is what QEMU's ``scripts/analyze-migration.py`` reads; here it gives
each value's path, offset and raw value, and refuses bytes that disagree
with the description (a subsection that is not where it should be, a
payload that ends early) naming the field where they stop making sense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from vmstate.core.errors import MalformedStream, TruncatedStream
from vmstate.wire.markers import SUBSECTION

#: Types whose bytes are a big-endian integer (signed when the name says so).
_SIGNED = ("int8", "int16", "int32", "int64", "int32 equal", "int32 le", "timer")
_UNSIGNED = ("uint8", "uint16", "uint32", "uint64", "uint32 equal", "uint8 equal", "uint16 equal", "bool",
             "uint64 equal")
#: The deepest nesting of structs and subsections a description may have;
#: QEMU's pc machine has four.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Value:
    """One value of a described section: its path (``pm.acpi_regs.tmr.timer``,
    ``timer[2].cmp``, ``hpet/offset.hpet_offset``), where its bytes are,
    its QEMU type name and its raw value (an int, or bytes)."""

    path: str
    offset: int
    size: int
    type: str
    value: Any


def _value(kind: str, raw: bytes) -> Any:
    if kind in _SIGNED and len(raw) in (1, 2, 4, 8):
        return int.from_bytes(raw, "big", signed=True)
    if kind in _UNSIGNED and len(raw) in (1, 2, 4, 8):
        return int.from_bytes(raw, "big")
    return raw


def _shape_error(message: str, offset: int, path: str) -> MalformedStream:
    return MalformedStream(f"the JSON description does not fit: {message}", offset, path)


def read(entry: dict, data: bytes, at: int, end: int, section: str) -> tuple[list[Value], int]:
    """The values of the section ``entry`` describes, read from ``data`` at
    ``at`` (no further than ``end``), and where its bytes end."""
    values: list[Value] = []
    stop = _fields(entry, data, at, end, section, "", values, 0)
    return values, stop


def _need(data: bytes, at: int, n: int, end: int, what: str, path: str) -> None:
    if at + n > end:
        raise TruncatedStream(f"stream ends inside {what}, which its JSON description says is {n} bytes",
                              at, path)


def _fields(desc: Any, data: bytes, at: int, end: int, section: str, prefix: str, out: list[Value],
            depth: int) -> int:
    if depth > MAX_DEPTH or not isinstance(desc, dict):
        raise _shape_error("nested deeper than any QEMU device", at, f"{section}.{prefix}")
    for field in desc.get("fields") or []:
        if not isinstance(field, dict) or not isinstance(field.get("name"), str):
            raise _shape_error("a field without a name", at, f"{section}.{prefix}")
        count = field.get("array_len", 1)
        size, kind = field.get("size"), field.get("type", "unknown")
        if not (isinstance(count, int) and isinstance(size, int) and 0 <= count < 1 << 24 and 0 <= size < 1 << 28):
            raise _shape_error(f"field {field['name']!r} has no size", at, f"{section}.{prefix}{field['name']}")
        for i in range(count):
            name = field["name"]
            if "array_len" in field:
                name = f"{name}[{i}]"
            elif "index" in field:
                name = f"{name}[{field['index']}]"
            path = f"{prefix}{name}"
            if kind in ("struct", "vstruct"):
                start = at
                at = _fields(field.get("struct"), data, at, end, section, f"{path}.", out, depth + 1)
                if at - start != size:
                    raise _shape_error(f"struct {path!r} is {at - start} bytes by its fields, {size} by its size",
                                       start, f"{section}.{path}")
                continue
            _need(data, at, size, end, repr(path), f"{section}.{path}")
            out.append(Value(path, at, size, kind, _value(kind, data[at:at + size])))
            at += size
    for sub in desc.get("subsections") or []:
        at = _subsection(sub, data, at, end, section, out, depth)
    return at


def _subsection(sub: Any, data: bytes, at: int, end: int, section: str, out: list[Value], depth: int) -> int:
    if not isinstance(sub, dict) or not isinstance(sub.get("vmsd_name"), str):
        raise _shape_error("a subsection without a name", at, section)
    name = sub["vmsd_name"]
    raw = name.encode()
    _need(data, at, 2 + len(raw) + 4, end, f"subsection {name!r}", f"{section}.{name}")
    if data[at] != SUBSECTION or data[at + 1] != len(raw) or data[at + 2:at + 2 + len(raw)] != raw:
        found = data[at + 2:at + 2 + data[at + 1]] if data[at] == SUBSECTION else bytes([data[at]])
        raise MalformedStream(f"subsection {name!r} expected here by the JSON description, found "
                              f"{found[:40]!r}", at, f"{section}.{name}")
    at += 2 + len(raw) + 4
    return _fields(sub, data, at, end, section, f"{name}.", out, depth + 1)


def devices(description: Any) -> Iterator[dict]:
    """The device entries of a JSON description, each a dict with ``name``."""
    if isinstance(description, dict):
        for entry in description.get("devices") or []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                yield entry


def write(entry: dict, values: list[Value]) -> bytes:
    """The bytes of a described section made again from its values: each
    value at its size and sign, each subsection's header from the
    description.  Equal to the bytes read, unless reading lost something."""
    out: list[bytes] = []
    given = iter(values)
    _write_fields(entry, given, out)
    return b"".join(out)


def _write_fields(desc: dict, given: Iterator[Value], out: list[bytes]) -> None:
    for field in desc.get("fields") or []:
        for _ in range(field.get("array_len", 1)):
            if field.get("type") in ("struct", "vstruct"):
                _write_fields(field.get("struct") or {}, given, out)
                continue
            value = next(given)
            if isinstance(value.value, int):
                out.append(value.value.to_bytes(value.size, "big", signed=value.value < 0))
            else:
                out.append(bytes(value.value))
    for sub in desc.get("subsections") or []:
        name = sub["vmsd_name"].encode()
        out.append(bytes([SUBSECTION, len(name)]) + name + int(sub.get("version", 0)).to_bytes(4, "big"))
        _write_fields(sub, given, out)
