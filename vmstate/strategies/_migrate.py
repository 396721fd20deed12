"""Migrate lines: versions, downtimes."""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from typing import Iterable

from schemas import SECTIONS
from vmstate.machine.names import device, format_versions
from vmstate.strategies._base import Chunk, require


def _schema_range(sections=None) -> dict[str, tuple[int, int]]:
    return {schema.device: (schema.description.minimum, schema.description.version)
            for schema in sections or SECTIONS}


def versions(devices: Iterable[str] | None = None, sections=None) -> SearchStrategy[dict[str, int]]:
    """A versions map (``{"i8254": 2, ...}``) for a ``migrate`` line's
    ``from=`` or ``to=``: each of ``devices`` (default every section with
    more than one version) either absent (current) or at a version within
    its schema's ``minimum..version``.  Shrinks towards the empty map, i.e.
    current versions everywhere."""
    ranges = _schema_range(sections)
    chosen = ranges if devices is None else [device(n) for n in devices]
    names = [n for n in chosen if n in ranges and ranges[n][0] < ranges[n][1]]
    if not names:
        return st.just({})
    return st.fixed_dictionaries({}, optional={n: st.integers(*ranges[n]).map(lambda v, n=n: ranges[n][1] + ranges[n][0] - v)
                                               for n in names})


def downtimes(max_ns: int = 10 * 10**9) -> SearchStrategy[int]:
    """Host time that passes while the machine is stopped: none, or up to
    ``max_ns`` (10 s by default; the RTC on ``rtc-clock=host`` sees it)."""
    require(isinstance(max_ns, int) and max_ns >= 1, f"max_ns must be a whole number of ns >= 1, not {max_ns!r}")
    return st.just(0) | st.integers(1, max_ns)


def migrations(source: SearchStrategy[dict[str, int]] | None = None,
               destination: SearchStrategy[dict[str, int]] | None = None,
               downtime: SearchStrategy[int] | None = None) -> SearchStrategy[Chunk]:
    """One ``migrate`` line.  ``source`` draws the versions the source
    writes (``from=``), ``destination`` the highest the destination loads
    (``to=``), ``downtime`` the pause; each defaults to "leave it out"
    (current versions, no downtime), so that by default every migration is a
    same-version one.  Pass :func:`versions` and :func:`downtimes` to vary
    them."""
    source = source if source is not None else st.just({})
    destination = destination if destination is not None else st.just({})
    downtime = downtime if downtime is not None else st.just(0)

    def line(src: dict, dst: dict, pause: int) -> Chunk:
        words = ["migrate"]
        if src:
            words.append(f"from={format_versions(src)}")
        if dst:
            words.append(f"to={format_versions(dst)}")
        if pause:
            words.append(f"downtime={pause}")
        return [" ".join(words)]

    return st.builds(line, source, destination, downtime)
