"""What the strategy modules share: chunks, weighted choices, the devices."""
from __future__ import annotations

from typing import Iterable

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from vmstate.core.errors import UsageError
from vmstate.machine.names import device

HOUR_NS = 3600 * 10**9

#: The devices scenarios can drive, by their key in ``PcMachine.devices``
#: (the PC speaker port 0x61 belongs to ``i8254``'s operations, and PCI
#: configuration to ``piix4_pm``'s).
DEVICES = ("i8254", "hpet", "mc146818rtc", "piix4_pm")
# which device's operations drive each device's state
_DRIVEN_BY = {"i8254": "i8254", "pcspk": "i8254", "hpet": "hpet", "mc146818rtc": "mc146818rtc",
              "piix4_pm": "piix4_pm", "PCIHost": "piix4_pm"}


def device_names(names: Iterable[str]) -> tuple[str, ...]:
    """The devices whose operations drive the named ones, in any spelling
    :func:`vmstate.machine.names.device` takes (``pit``, ``rtc``, ``pm``;
    ``pcspk`` and ``PCIHost`` are driven by the PIT's and the PM function's
    operations).  Raises ``UsageError`` for a device no operations drive."""
    out: list[str] = []
    for name in names:
        canonical = device(name)
        if canonical not in _DRIVEN_BY:
            raise UsageError(f"no operations drive {canonical!r}: one of {', '.join(sorted(_DRIVEN_BY))}")
        if _DRIVEN_BY[canonical] not in out:
            out.append(_DRIVEN_BY[canonical])
    return tuple(out)


def require(condition, message: str) -> None:
    """Eager argument validation, as hypothesis's own strategies do it: a
    bad argument fails where the strategy is built, not when it is drawn."""
    if not condition:
        raise InvalidArgument(message)


Chunk = list[str]


def _hex(value: int) -> str:
    return f"{value:#x}"


def _gentle_first(gentle: SearchStrategy[int], harsh: SearchStrategy[int]) -> SearchStrategy[int]:
    """Either range, shrinking towards the gentle one (``one_of`` shrinks to
    its first branch)."""
    return st.one_of(gentle, harsh)


@st.composite
def _whole(draw, strategy: SearchStrategy):
    return draw(strategy)


def _weighted(*choices: tuple[int, SearchStrategy]) -> SearchStrategy:
    """One of ``choices`` (``(weight, strategy)`` pairs), each drawn with
    probability proportional to its weight, shrinking towards the first.

    ``st.one_of`` alone cannot weight: it flattens nested ``one_of``s into
    their branches (so a strategy counts as many times as it has branches)
    and drops a branch it has already seen (so listing one twice counts
    once).  Each choice is therefore wrapped, once per unit of weight, in a
    strategy of its own that ``one_of`` does not look into."""
    branches = [_whole(strategy) for weight, strategy in choices for _ in range(weight)]
    if not branches:
        raise ValueError("_weighted() needs at least one choice of positive weight")
    return st.one_of(branches)
