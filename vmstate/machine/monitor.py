"""QEMU's monitor, as far as a qtest client can tell it is there.

Every re-basing of the RTC's time makes QEMU send QMP's RTC_CHANGE event,
which the monitor rate-limits to one a second with a timer of its own; under
qtest that timer runs on the virtual clock (``monitor_qapi_event_init``), so
an argumentless ``clock_step`` stops at its deadline.  It is no device's
state and no section carries it: a destination starts without it.
"""
from __future__ import annotations

from vmstate.core.clock import NANOSECONDS_PER_SECOND, VirtualClock

RTC_CHANGE_RATE_NS = NANOSECONDS_PER_SECOND


class Monitor:
    def __init__(self, clock: VirtualClock):
        self.clock = clock
        self.throttle = clock.timer(self._throttle_fired, "qapi-rtc-change")
        self.queued = False

    def rtc_change(self) -> None:
        """QMP's RTC_CHANGE event: sent now, or queued behind the rate limit."""
        if self.throttle.pending:
            self.queued = True
        else:
            self.throttle.mod(self.clock.now + RTC_CHANGE_RATE_NS)

    def _throttle_fired(self) -> None:
        if self.queued:
            self.queued = False
            self.throttle.mod(self.clock.now + RTC_CHANGE_RATE_NS)

    def carry_on_from(self, source: "Monitor") -> None:
        """Take the source's rate limit over, as if it had been migrated."""
        self.throttle.load(source.throttle.expire)
        self.queued = source.queued
