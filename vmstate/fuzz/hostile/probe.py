"""One hostile input (a stream, a snapshot file, a trace), judged against
the rules vmstate must keep for it."""
from __future__ import annotations

import copy
import signal
import time
import tracemalloc
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from vmstate.core.clock import EventBudget
from vmstate.core.errors import StreamError, VmstateError
from vmstate.machine import migration
from vmstate.machine.pc import PcMachine
from vmstate.trace.load import check_trace
from vmstate.trace.qtest import Runner, decode_trace, iter_commands
from vmstate.wire import snapshot as snapshot_file

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


def _misplaced(error: StreamError, offsets: dict[str, set[int]] | None) -> tuple[str | None, str]:
    """Whether a refusal fails to say where: every one names an offset and
    the part of the stream (a field path, a section, the framing) it is
    about, and a field's offset is the first byte of that field."""
    shown = f"{type(error).__name__}: {error}"
    if error.offset is None:
        return "no offset", shown
    if not error.path:
        return "no place", shown
    if offsets is not None and error.path in offsets and error.offset not in offsets[error.path]:
        places = ", ".join(f"{at:#x}" for at in sorted(offsets[error.path]))
        return "wrong offset", f"{shown} (the field is at {places})"
    return None, ""


# -- one input -----------------------------------------------------------------------
@dataclass
class Outcome:
    """What one input did: ``error`` is the typed refusal (None when it was
    accepted), ``violation`` names a broken rule (None when all held)."""

    error: VmstateError | None = None
    violation: str | None = None
    detail: str = ""
    peak: int = 0
    seconds: float = 0.0

    @property
    def signature(self) -> tuple | None:
        if self.error is None:
            return None
        return (type(self.error).__name__, getattr(self.error, "offset", None), getattr(self.error, "path", None),
                self.error.line)


def snapshot(machine) -> dict:
    """The destination as a guest could tell it apart: every device's state
    and the virtual clock, copied so that later changes cannot alias it."""
    return copy.deepcopy(machine.get_state())


def _attempt(action: Callable[[], object], typed: type, measure: bool, seconds: float,
             bound: int) -> tuple[Outcome, object]:
    """Run ``action`` under the deadline (and tracemalloc when ``measure``):
    the outcome as far as the common rules go (no hang, no untyped error,
    bounded allocation), and what the action returned."""
    out, result = Outcome(), None
    started = tracemalloc.is_tracing()
    if measure:
        if not started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    started_at = time.perf_counter()
    try:
        with deadline(seconds):
            result = action()
    except Hang:
        out.violation, out.detail = "hang", f"still running after {seconds} s"
    except typed as err:
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
    if out.violation is None and measure and out.peak > bound:
        out.violation, out.detail = "allocation", f"peak {out.peak} bytes > {bound}"
    return out, result


def _saves_again(out: Outcome, machine) -> None:
    """An accepted input must leave a machine that our own save accepts."""
    try:
        migration.save(machine)
    except Exception as err:  # noqa: BLE001
        out.violation, out.detail = "unsaveable", f"accepted, then save raised {type(err).__name__}: {err}"


def probe(data: bytes, destination, before: dict | None = None, *, clock: int | None = None, measure: bool = True,
          seconds: float = DEADLINE_SECONDS, bound: int = ALLOCATION_BOUND,
          offsets: dict[str, set[int]] | None = None) -> Outcome:
    """Restore the stream ``data`` into ``destination`` and judge what
    happened.  ``before`` is the destination's :func:`snapshot` when the
    caller has it already; ``measure`` traces allocations (a restore runs
    several times slower under tracemalloc).  ``offsets`` maps field paths
    to where their bytes are in ``data``, when the caller knows (a mutation
    that changed values in place): an error naming one of them must give
    its offset."""
    if before is None:
        before = snapshot(destination)
    out, _ = _attempt(lambda: migration.restore(data, destination, clock=clock), StreamError, measure, seconds,
                      bound)
    if out.violation is None and out.error is not None:
        out.violation, out.detail = _misplaced(out.error, offsets)
    if out.error is not None or out.violation is not None:
        if destination.get_state() != before:
            detail = f"{type(out.error).__name__}: {out.error}" if out.error else out.detail
            out.violation, out.detail = "destination changed", detail
    else:
        _saves_again(out, destination)
    return out


def probe_snapshot(data: bytes, *, measure: bool = True, seconds: float = DEADLINE_SECONDS,
                   bound: int = ALLOCATION_BOUND) -> Outcome:
    """Open the snapshot file ``data`` as ``vmstate restore`` does (its
    header judged, its stream restored into a machine of the header's
    options): a typed error naming the offset and the header key or field,
    or a machine that saves again."""
    def restore():
        snap = snapshot_file.decode(data)
        with snap.in_the_file():
            return migration.restore(snap.stream, **migration.snapshot_options(snap))

    out, machine = _attempt(restore, StreamError, measure, seconds, bound)
    if out.violation is None and out.error is not None:
        out.violation, out.detail = _misplaced(out.error, None)
    elif out.violation is None:
        _saves_again(out, machine)
    return out


#: A whole QEMU stream keeps a window of its bytes, its JSON description
#: parsed (1 MiB of text at most) and every device decoded.
REAL_BOUND = 16 << 20


def probe_real(data: bytes, clock: int | None = None, *, measure: bool = True, seconds: float = DEADLINE_SECONDS,
               bound: int = REAL_BOUND) -> Outcome:
    """Read the whole QEMU stream ``data`` as ``vmstate inspect`` does: a
    typed error naming the offset and the part of the stream, or a stream
    read; one of a machine vmstate builds, with every timer section read by
    its schema, must restore into a machine that saves again."""
    import io

    from vmstate.machine import qemu_streams

    out, real = _attempt(lambda: qemu_streams.read(io.BytesIO(data), clock=clock), StreamError, measure, seconds,
                         bound)
    if out.violation is None and out.error is not None:
        out.violation, out.detail = _misplaced(out.error, None)
    elif out.violation is None:
        try:
            machine = qemu_streams.restore(real, clock)
        except StreamError:
            return out
        except Exception as err:  # noqa: BLE001
            out.violation = "untyped"
            out.detail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
            return out
        _saves_again(out, machine)
    return out


#: The timer events a hostile trace may run: about a tenth of a second of
#: work; more is refused with EventBudgetExceeded, a typed refusal.
TRACE_EVENTS = 20_000
#: A trace builds machines, runs them and migrates them (a save writes the
#: JSON description, a first save at other versions compiles codecs): more
#: than one restore holds, still a bound no trace may pass.
TRACE_BOUND = 16 << 20


def probe_trace(data: bytes, *, measure: bool = True, seconds: float = DEADLINE_SECONDS,
                bound: int = TRACE_BOUND) -> Outcome:
    """Run the trace file ``data`` as ``vmstate run`` does (decoded, checked
    whole, then run within an event budget): a typed error that names its
    line, or a machine that saves again."""
    def run():
        text = decode_trace(data)
        options = check_trace(text)
        runner = Runner(PcMachine(**options, budget=EventBudget(TRACE_EVENTS)))
        runner.session.observations = None
        for _ in runner.run(iter_commands(text)):
            pass
        return runner.machine

    out, machine = _attempt(run, VmstateError, measure, seconds, bound)
    if out.violation is None and out.error is not None and out.error.line is None:
        out.violation, out.detail = "no line", f"{type(out.error).__name__}: {out.error}"
    elif out.violation is None and out.error is None:
        _saves_again(out, machine)
    return out
