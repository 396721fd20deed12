"""Scalar wire types and the rules a loaded value must meet.

Kinds are named as QEMU's JSON description names them; every multi-byte
value is big-endian on the wire.  A rule is a ``range``, a ``frozenset`` or
a predicate whose docstring says what it wants, so that an error can say
what the value should have been.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Kind:
    """A scalar wire type: QEMU's name for it, its ``struct`` format
    character, its size in bytes and its range."""

    name: str
    fmt: str
    size: int
    lo: int
    hi: int


def _kind(name: str, fmt: str, size: int, signed: bool) -> Kind:
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return Kind(name, fmt, size, lo, hi)


UINT8 = _kind("uint8", "B", 1, False)
UINT16 = _kind("uint16", "H", 2, False)
UINT32 = _kind("uint32", "I", 4, False)
UINT64 = _kind("uint64", "Q", 8, False)
INT32 = _kind("int32", "i", 4, True)
INT64 = _kind("int64", "q", 8, True)
BOOL = Kind("bool", "B", 1, 0, 1)
# A timer travels as its expiry time in ns of its clock, or -1 when idle.
TIMER = Kind("timer", "q", 8, -(1 << 63), (1 << 63) - 1)

Rule = Callable[[Any], bool] | range | frozenset


def rule_text(rule: Rule) -> str:
    """What a rule wants, for an error message."""
    if isinstance(rule, range):
        return f"{rule.start:#x}..{rule.stop - 1:#x}"
    if isinstance(rule, frozenset):
        return "one of " + ", ".join(str(v) for v in sorted(rule))
    return (rule.__doc__ or rule.__name__).strip()


def accepts(rule: Rule, value: Any) -> bool:
    if isinstance(rule, (range, frozenset)):
        return value in rule
    return bool(rule(value))
