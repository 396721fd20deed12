"""Whole scenarios: operations, steps and migrations interleaved."""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from vmstate.strategies._base import DEVICES, Chunk, _weighted, device_names, require
from vmstate.strategies._hpet import hpet_operations
from vmstate.strategies._migrate import migrations as migrate_lines
from vmstate.strategies._noise import noise
from vmstate.strategies._pit import pit_operations
from vmstate.strategies._pm import pm_operations
from vmstate.strategies._rtc import rtc_operations
from vmstate.strategies._time import time_steps

DEVICE_OPERATIONS: dict[str, Callable[[], SearchStrategy[Chunk]]] = {
    "i8254": pit_operations,
    "hpet": hpet_operations,
    "mc146818rtc": rtc_operations,
    "piix4_pm": pm_operations,
}


def operations(devices: Iterable[str] = DEVICES, *, with_noise: bool = True,
               extra: Mapping[str, SearchStrategy[Chunk]] | None = None) -> SearchStrategy[Chunk]:
    """One chunk from any of ``devices``' operation strategies, from
    ``extra`` (name -> strategy, for devices of your own), and, with
    ``with_noise``, raw accesses around the built-in ones.

    Each device and each extra strategy is drawn equally often, whatever
    the number of alternatives inside it; noise, when on, as often as one
    quarter of a device (so a single device sees noise in one chunk of
    five)."""
    devices = device_names(devices)
    choices = [(4, DEVICE_OPERATIONS[d]()) for d in devices]
    choices += [(4, strategy) for strategy in (extra or {}).values()]
    if with_noise and devices:
        choices.append((1, noise(devices)))
    require(choices, "operations() needs at least one device or extra strategy")
    return _weighted(*choices)


# -- whole scenarios ---------------------------------------------------------------------------
@st.composite
def _cut(draw, ops: SearchStrategy[Chunk], migrate: SearchStrategy[Chunk]) -> Chunk:
    """A chunk of ``ops`` with a migration somewhere inside it (or after
    it, for a one-line chunk).  Shrinks towards a cut after the first line."""
    lines = list(draw(ops))
    where = draw(st.integers(1, max(1, len(lines) - 1)))
    return lines[:where] + draw(migrate) + lines[where:]


@st.composite
def _scenario(draw, chunks: SearchStrategy[list[Chunk]], migrate: SearchStrategy[Chunk], min_migrations: int,
              first: tuple[str, ...]) -> str:
    drawn = draw(chunks)
    have = sum(1 for c in drawn for line in c if line.startswith("migrate"))
    for _ in range(max(0, min_migrations - have)):
        where = draw(st.integers(0, len(drawn)))
        drawn.insert(where, draw(migrate))
    lines = list(first)
    for c in drawn:
        lines.extend(c)
    return "\n".join(lines) + "\n"


def scenarios(devices: Iterable[str] = DEVICES,
              operations: Mapping[str, SearchStrategy[Chunk]] | SearchStrategy[Chunk] | None = None,
              steps: SearchStrategy[Chunk] | None = None,
              migrations: SearchStrategy[Chunk] | None = None,
              min_chunks: int = 1, max_chunks: int = 16, min_migrations: int = 1,
              intercept: bool = True, with_noise: bool = True, pragma: str | None = None) -> SearchStrategy[str]:
    """A whole scenario as trace text, ready for :func:`vmstate.check.checker.check`
    (or :func:`vmstate.trace.load.load_trace` and a runner).

    - ``devices``: which built-in devices' operations to draw (names of
      :data:`DEVICES`; every spelling of :func:`vmstate.machine.names.device`
      is accepted, ``pit`` or ``rtc`` among them).
    - ``operations``: your own: a mapping name -> chunk strategy, added to
      the built-in devices' (pass ``devices=()`` to use only yours), or one
      chunk strategy that replaces them altogether.
    - ``steps``: the time-step strategy (default :func:`time_steps`).
    - ``migrations``: the migrate-line strategy (default
      :func:`migrations`: same-version, no downtime).
    - ``min_chunks``/``max_chunks``: how many chunks (operations, steps and
      migrations together); ``min_migrations``: at least this many
      ``migrate`` lines (inserted at drawn places if the draw had fewer).
    - ``intercept``: start with ``irq_intercept_in ioapic`` so that
      interrupt edges are observed too.
    - ``pragma``: a ``#!`` line to put first (e.g. ``rtc-base=... rtc-clock=host``).

    Operations are drawn twice as often as steps, steps twice as often as
    bare migrations; and a driver sequence is often cut by a migration
    (between a control word and its data bytes, a latch and its reads, an
    interrupt and its handler's status read), where lost state shows.  The
    strategy tree is built here, once, not on every draw.
    """
    require(0 <= min_chunks <= max_chunks, f"need 0 <= min_chunks <= max_chunks, not {min_chunks}, {max_chunks}")
    require(min_migrations >= 0, f"min_migrations cannot be negative ({min_migrations})")
    names = device_names(devices)
    if operations is None:
        ops = operations_of(names, with_noise)
    elif isinstance(operations, Mapping):
        require(names or operations, "scenarios() needs devices or operations")
        ops = _operations(names, with_noise=with_noise, extra=operations)
    else:
        ops = operations
    steps = steps if steps is not None else time_steps()
    migrate = migrations if migrations is not None else migrate_lines()
    chunk = _weighted((3, _cut(ops, migrate)), (4, ops), (2, steps), (1, migrate))
    first = ((f"#! {pragma}",) if pragma else ()) + (("irq_intercept_in ioapic",) if intercept else ())
    return _scenario(st.lists(chunk, min_size=min_chunks, max_size=max_chunks), migrate, min_migrations, first)


_operations = operations
_BUILT: dict[tuple, SearchStrategy[Chunk]] = {}


def operations_of(devices: tuple[str, ...], with_noise: bool) -> SearchStrategy[Chunk]:
    """:func:`operations` of built-in devices, built once per combination:
    every property and campaign over the same devices shares one tree."""
    key = (devices, with_noise)
    if key not in _BUILT:
        _BUILT[key] = _operations(devices, with_noise=with_noise)
    return _BUILT[key]
