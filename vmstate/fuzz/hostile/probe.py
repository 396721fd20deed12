"""One hostile input, judged against the rules a restore must keep."""
from __future__ import annotations

import copy
import signal
import time
import tracemalloc
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from vmstate.core.errors import StreamError
from vmstate.machine import migration

# A restore keeps at most a copy of the input, the destination's states and
# the parsed JSON description (itself bounded by stream.MAX_DESCRIPTION) on
# top of what it would hold for a valid stream: about 0.5 MB under
# tracemalloc for the scenarios' 69 KB streams.  A count or a length that
# lies must not push it past this.
ALLOCATION_BOUND = 4 << 20
# A valid stream restores in a few milliseconds; a restore still running
# after this long is looping on something the stream said.
DEADLINE_SECONDS = 2.0
# What a long campaign may add to the memory Python holds after its first
# WARM_UP inputs: caches keyed on what a stream brings must be bounded.
RETAINED_BOUND = 32 << 20
WARM_UP = 2000


class Hang(BaseException):
    """Raised by the alarm inside a restore that overran its deadline; a
    BaseException so that no ``except Exception`` in the code under test can
    swallow it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expired(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- one input -----------------------------------------------------------------------
@dataclass
class Outcome:
    """What restoring one input did: ``error`` is the typed refusal (None
    when it restored), ``violation`` names a broken rule (None when all
    held)."""

    error: StreamError | None = None
    violation: str | None = None
    detail: str = ""
    peak: int = 0
    seconds: float = 0.0

    @property
    def signature(self) -> tuple | None:
        if self.error is None:
            return None
        return type(self.error).__name__, self.error.offset, self.error.path


def snapshot(machine) -> dict:
    """The destination as a guest could tell it apart: every device's state
    and the virtual clock, copied so that later changes cannot alias it."""
    return copy.deepcopy(machine.get_state())


def probe(data: bytes, destination, before: dict | None = None, *, clock: int | None = None, measure: bool = True,
          seconds: float = DEADLINE_SECONDS, bound: int = ALLOCATION_BOUND) -> Outcome:
    """Restore ``data`` into ``destination`` and judge what happened.
    ``before`` is the destination's :func:`snapshot` when the caller has it
    already; ``measure`` traces allocations (a restore runs several times
    slower under tracemalloc)."""
    if before is None:
        before = snapshot(destination)
    out = Outcome()
    started = tracemalloc.is_tracing()
    if measure:
        if not started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    started_at = time.perf_counter()
    try:
        with deadline(seconds):
            migration.restore(data, destination, clock=clock)
    except Hang:
        out.violation, out.detail = "hang", f"still running after {seconds} s"
    except StreamError as err:
        out.error = err
    except Exception as err:  # noqa: BLE001 - anything untyped is what we are looking for
        out.violation = "untyped"
        out.detail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    finally:
        out.seconds = time.perf_counter() - started_at
        if measure:
            out.peak = tracemalloc.get_traced_memory()[1] - base
            if not started:
                tracemalloc.stop()
    if out.violation is None and out.error is not None and out.error.offset is None:
        out.violation, out.detail = "no offset", f"{type(out.error).__name__}: {out.error}"
    if out.violation is None and measure and out.peak > bound:
        out.violation, out.detail = "allocation", f"peak {out.peak} bytes > {bound}"
    if out.error is not None or out.violation is not None:
        if destination.get_state() != before:
            detail = f"{type(out.error).__name__}: {out.error}" if out.error else out.detail
            out.violation, out.detail = "destination changed", detail
    elif out.violation is None:
        try:
            migration.save(destination)
        except Exception as err:  # noqa: BLE001
            out.violation, out.detail = "unsaveable", f"restored, then save raised {type(err).__name__}: {err}"
    return out
