"""Steps of the virtual clock."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from vmstate.strategies._base import HOUR_NS, Chunk, _weighted, require


def time_steps(min_ns: int = 1, max_ns: int = 2 * HOUR_NS, to_deadline: bool = True) -> SearchStrategy[Chunk]:
    """``clock_step NS`` with NS from ``min_ns`` to ``max_ns`` (default 1 ns
    to two hours), and, with ``to_deadline``, ``clock_step`` without an
    argument, which QEMU answers by moving exactly to the next timer
    deadline.

    Steps are drawn by decade (ns, us, ms, s, hours) so that every scale is
    visited, and shrink towards short ones: a shrunk counterexample does
    not wait an hour unless it must."""
    bounds = [(1, 999), (1_000, 999_999), (1_000_000, 999_999_999), (10**9, 59 * 10**9), (60 * 10**9, max_ns)]
    ranges = [(max(lo, min_ns), min(hi, max_ns)) for lo, hi in bounds if max(lo, min_ns) <= min(hi, max_ns)]
    require(ranges, f"no time step between {min_ns} and {max_ns} ns")
    # Scales are drawn with weights (microseconds and milliseconds most,
    # hours least): a long step is only affordable while the machine is
    # quiet, and most interesting instants are a few periods apart.
    weights = [1, 3, 4, 1, 1][:len(ranges)] if len(ranges) == len(bounds) else [1] * len(ranges)
    scale = st.sampled_from([i for i, w in enumerate(weights) for _ in range(w)])
    steps = scale.flatmap(lambda i: st.integers(*ranges[i])).map(lambda ns: [f"clock_step {ns}"])
    # One step in four goes to the next deadline.
    return _weighted((3, steps), (1, st.just(["clock_step"]))) if to_deadline else steps
