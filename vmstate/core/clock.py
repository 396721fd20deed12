"""Virtual and host time, and the timers that fire on them.

Device models never tick.  They arm timers with absolute deadlines and compute
everything else (counter values, time of day) from the clock when asked, so
advancing the clock costs one heap operation per event that falls in the
interval, whatever its length.  The semantics follow QEMU's qtest clock
(``qtest_clock_warp``): time moves to the next deadline, every due timer runs
with the clock set exactly there, and timers with equal deadlines run in the
order they were armed.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Callable

from vmstate.core.device import Device
from vmstate.core.errors import EventBudgetExceeded, UsageError
from vmstate.core.state import fresh_state

NANOSECONDS_PER_SECOND = 1_000_000_000
#: The end of virtual time (2^62 ns, 146 years).  QEMU's clocks are int64
#: nanoseconds and its devices arm deadlines well beyond now (the RTC's a
#: period on, hpet_arm up to INT64_MAX / 2 on): a clock allowed nearer
#: INT64_MAX would arm timers no stream can carry.
MAX_VIRTUAL_NS = 1 << 62
#: The most the host clock may run ahead of the virtual one (its epoch, the
#: RTC base, and every migration pause): host time then stays below INT64_MAX
#: by more than a day, the furthest the RTC arms a timer on it.
MAX_HOST_OFFSET = (1 << 62) - (1 << 47)


def muldiv64(a: int, b: int, c: int) -> int:
    """QEMU's ``muldiv64``: a * b / c with an exact intermediate, truncated."""
    return (a * b) // c


class Timer:
    """A one-shot deadline, QEMU's ``QEMUTimer``.

    ``expire`` is the absolute deadline in the owning clock's nanoseconds, or
    -1 when the timer is not pending: the value a migration stream carries.
    """

    __slots__ = ("clock", "callback", "expire", "_token", "name")

    def __init__(self, clock: "VirtualClock | HostClock", callback: Callable[[], None], name: str = ""):
        self.clock = clock
        self.callback = callback
        self.expire = -1
        self._token = None
        self.name = name

    @property
    def pending(self) -> bool:
        return self.expire != -1

    def mod(self, expire: int) -> None:
        """Arm (or re-arm) the timer for an absolute deadline."""
        self.clock._arm(self, int(expire))

    def delete(self) -> None:
        self.expire = -1
        self._token = None

    def load(self, expire: int) -> None:
        """A timer field from a stream, as QEMU's timer_get takes it: -1
        deletes the timer, any other value re-arms it at that expiry."""
        if expire == -1:
            self.delete()
        else:
            self.mod(expire)

    def __repr__(self) -> str:
        return f"<Timer {self.name or self.callback!r} expire={self.expire}>"


class EventBudget:
    """How many timer callbacks may run before the work is refused: a
    bound on what any input (a step of a virtual day, a 10 ns periodic
    timer, a stream whose clock lies) can make a command do.  The count is
    deterministic, so a fuzzer can replay and shrink what it refuses.  One
    budget may be shared by the clocks of several machines (a scenario's
    runs and every destination a migration makes).  ``progress``, when
    given, is told the events spent every :data:`PROGRESS_EVERY`."""

    __slots__ = ("limit", "spent", "progress")
    PROGRESS_EVERY = 1 << 16

    def __init__(self, limit: int, progress: Callable[[int], None] | None = None):
        self.limit = limit
        self.spent = 0
        self.progress = progress

    def reset(self) -> None:
        self.spent = 0

    def spend(self, timer: "Timer") -> None:
        self.spent += 1
        if self.spent > self.limit:
            raise EventBudgetExceeded(f"more than {self.limit} timer events (the last: "
                                      f"{timer.name or 'a timer'} at {timer.clock.now} ns)", timer.name)
        if self.progress is not None and not self.spent % self.PROGRESS_EVERY:
            self.progress(self.spent)


class VirtualClock:
    """QEMU_CLOCK_VIRTUAL: integer nanoseconds that move only when told to.

    It stands still while the machine is paused (for migration), and under
    qtest it moves only through :meth:`step` and :meth:`warp`.  ``budget``,
    when set, counts every timer callback it runs.
    """

    def __init__(self, start: int = 0, budget: EventBudget | None = None):
        self._now = start
        self._dest = start
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self.budget = budget

    @property
    def now(self) -> int:
        return self._now

    @property
    def horizon(self) -> int:
        """The time the clock is moving to: a warp's destination while it
        runs, else now.  A timer that fires on a periodic source nobody
        observes may skip whole periods up to it (the result is the one
        firing every period would give)."""
        return max(self._dest, self._now)

    def timer(self, callback: Callable[[], None], name: str = "") -> Timer:
        return Timer(self, callback, name)

    def _arm(self, timer: Timer, deadline: int) -> None:
        token = next(self._seq)
        timer.expire = deadline
        timer._token = token
        heapq.heappush(self._heap, (deadline, token, timer))
        if len(self._heap) > 64 and len(self._heap) > 4 * self.pending_count():
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[2]._token == e[1]]
        heapq.heapify(self._heap)

    def pending_count(self) -> int:
        return sum(1 for e in self._heap if e[2]._token == e[1])

    def _head(self) -> tuple[int, int, Timer] | None:
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[2]._token == entry[1]:
                return entry
            heapq.heappop(heap)
        return None

    def load(self, now: int) -> None:
        """Set the time a migration stream carried, running nothing: every
        timer is then re-armed by the state that is loaded with it."""
        self._now = self._dest = now

    def deadline(self) -> int | None:
        """The earliest pending deadline, or None when nothing is armed."""
        head = self._head()
        return None if head is None else head[0]

    def run_due(self) -> int:
        """Run every timer due at the current time; timers armed by a callback
        for a time not after now run in the same pass, as in QEMU."""
        fired = 0
        while True:
            head = self._head()
            if head is None or head[0] > self._now:
                return fired
            heapq.heappop(self._heap)
            timer = head[2]
            timer.expire = -1
            timer._token = None
            if self.budget is not None:
                self.budget.spend(timer)
            timer.callback()
            fired += 1

    def warp(self, dest: int) -> None:
        """Advance to ``dest``, stopping at each deadline on the way
        (``qtest_clock_warp``).  A destination in the past does nothing, and
        neither does one equal to now: no timer runs then.  A destination at
        or past :data:`MAX_VIRTUAL_NS` is refused before anything runs."""
        if dest >= MAX_VIRTUAL_NS:
            raise UsageError(f"virtual time {dest} ns is past the end of time vmstate runs to "
                             f"(2^62 ns, 146 years; QEMU's clocks are int64 and its timers arm beyond now)")
        self._dest = dest
        try:
            while self._now < dest:
                head = self._head()
                if head is None or head[0] >= dest:
                    self._now = dest
                elif head[0] > self._now:
                    self._now = head[0]
                self.run_due()
        finally:
            self._dest = self._now

    def step(self, ns: int | None = None) -> int:
        """qtest's ``clock_step``: by ``ns``, or with None to the next
        deadline (QEMU 7.2 answers with the unchanged time when there is
        none)."""
        if ns is None:
            deadline = self.deadline()
            ns = -1 if deadline is None else max(0, deadline - self._now)
        self.warp(self._now + ns)
        return self._now


class HostClock:
    """QEMU_CLOCK_HOST as a machine sees it: wall time that goes on while the
    machine is paused.

    By default it is deterministic: ``epoch`` plus the virtual time plus every
    pause so far, so the same trace gives the same host time everywhere.
    Migration downtime is a :meth:`pause`, which moves host time and not
    virtual time.  Timers on this clock live in the virtual clock's queue at
    the matching virtual deadline and are moved when host time jumps.
    """

    def __init__(self, virtual: VirtualClock, epoch: int = 0):
        if not 0 <= epoch <= MAX_HOST_OFFSET:
            raise UsageError(f"host time {epoch} ns at virtual time 0 is outside 0 .. {MAX_HOST_OFFSET}")
        self.virtual = virtual
        self.epoch = epoch
        self.paused_total = 0
        self._timers: list[Timer] = []

    @property
    def now(self) -> int:
        return self.epoch + self.paused_total + self.virtual.now

    @property
    def horizon(self) -> int:
        """As :attr:`VirtualClock.horizon`, in host time."""
        return self.epoch + self.paused_total + self.virtual.horizon

    def timer(self, callback: Callable[[], None], name: str = "") -> Timer:
        timer = Timer(self, callback, name)
        self._timers.append(timer)
        return timer

    def _arm(self, timer: Timer, deadline: int) -> None:
        self.virtual._arm(timer, deadline - self.epoch - self.paused_total)
        timer.expire = deadline

    def pause(self, ns: int) -> None:
        """Let ``ns`` of host time pass while the virtual clock stands still."""
        if ns < 0:
            raise ValueError("a pause cannot be negative")
        if self.epoch + self.paused_total + ns > MAX_HOST_OFFSET:
            raise UsageError(f"a pause of {ns} ns takes the host clock more than {MAX_HOST_OFFSET} ns "
                             f"ahead of the virtual one, past what QEMU's int64 host time can carry")
        self.paused_total += ns
        for timer in self._timers:
            if timer.pending:
                self._arm(timer, timer.expire)


@dataclass
class TimerState:
    """QEMU's ``timer`` section: the virtual clock of a stopped machine.
    ``cpu_clock_offset`` holds the virtual time while the machine is
    stopped; ``cpu_ticks_offset`` (the TSC's) is 0 under qtest and TCG."""

    cpu_ticks_offset: int = 0
    cpu_clock_offset: int = 0


class ClockDevice(Device):
    """The virtual clock as the device behind the ``timer`` section: a
    destination resumes at the time the source stopped at, which makes
    every absolute deadline in the other sections valid again."""

    name = "timer"

    def __init__(self, clock: VirtualClock):
        self.clock = clock

    @fresh_state
    def get_state(self) -> TimerState:
        return TimerState(0, self.clock.now)

    def set_state(self, state: TimerState) -> None:
        self.clock.load(state.cpu_clock_offset)
