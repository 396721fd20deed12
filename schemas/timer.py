"""``timer``: the virtual clock (vmstate.core.clock.ClockDevice), version 2.

QEMU saves ``cpu_clock_offset`` holding the virtual clock's value while the
machine is stopped, which is how a destination resumes at the virtual time
the source stopped at: every deadline in the device sections is absolute in
that clock.

The clock is refused from the end of time the clock itself keeps
(``MAX_VIRTUAL_NS``, 2**62 ns), although QEMU takes any int64: a machine
restored nearer INT64_MAX would arm a timer past it and could never be
saved again.
"""
from vmstate.core.clock import MAX_VIRTUAL_NS
from vmstate.wire.kinds import INT64
from vmstate.wire.table import Description, Field, Unused

__all__ = ["MAX_VIRTUAL_NS", "TIMER"]

TIMER = Description("timer", version=2, minimum=1, fields=[
    Field("cpu_ticks_offset", INT64),
    Unused(8),
    Field("cpu_clock_offset", INT64, since=2, valid=range(0, MAX_VIRTUAL_NS)),
])
