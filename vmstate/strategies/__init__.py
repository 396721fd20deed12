"""Hypothesis strategies that write migration scenarios for the pc machine.

A scenario is a trace (see :mod:`vmstate.trace.qtest`): guest port and MMIO
accesses, steps of the virtual clock, and ``migrate`` lines.  The strategies
here draw such traces piece by piece, so that a property can say "for every
scenario, the guest cannot tell it was migrated" and let hypothesis look for
the scenario where it can, then shrink it to a few lines.

The public API is small and composable, in hypothesis's own style:

- **guest operations, per device** -- :func:`pit_operations` (i8254 and the
  speaker port 0x61), :func:`hpet_operations`, :func:`rtc_operations`,
  :func:`pm_operations` (the ACPI PM block, placed through PCI
  configuration of 00:01.3), and :func:`noise` (raw accesses of any width and
  value in and around the devices).  Each draws a *chunk*: a short list of
  trace lines that belong together, the way a driver issues them (a PIT
  control word and its data bytes, an HPET comparator programmed with and
  without Tn_VAL_SET_CNF, RTC registers written under SET).  A chunk is the
  unit hypothesis deletes while shrinking, so a minimal counterexample keeps
  each sequence whole or drops it whole.  :func:`operations` combines the
  devices' chunks; :data:`DEVICE_OPERATIONS` maps each device name to its
  strategy function.
- **time** -- :func:`time_steps` draws ``clock_step NS`` from 1 ns to hours,
  and ``clock_step`` without an argument, which lands exactly on the next
  deadline: the instant where a timer fires is where a wrongly migrated
  deadline shows.
- **migrations** -- :func:`versions` draws the versions a source writes (or
  a destination loads), per device, within each schema's
  ``minimum..version``; :func:`downtimes` the host time the machine is
  stopped; :func:`migrations` a whole ``migrate`` line.
- **scenarios** -- :func:`scenarios` interleaves operations, time steps and
  migrations into trace text that :func:`vmstate.check.checker.check` accepts.

Everything is pluggable.  A device model of your own, mapped at its own
ports, gets its own operation strategy (any strategy that draws a list of
trace lines) and takes part like the built-in ones::

    from hypothesis import given, strategies as st
    from vmstate.check import checker
    from vmstate.strategies import scenarios

    my_ops = st.lists(st.sampled_from(["outb 0x300 0x1", "inb 0x300"]), min_size=1, max_size=3)

    @given(scenarios(devices=["i8254"], operations={"mydev": my_ops}))
    def test_my_device_migrates(trace):
        assert checker.check(trace).equivalent

Values are drawn so that shrinking goes towards the *gentle* end (slow
rates, long periods, short time steps): a shrunk counterexample then runs
fast and reads like something a driver would do.  Pathologically fast timers
(a 10 ns HPET period run for an hour) are still reachable by the generator
but not by the shrinker.

Only accesses whose effect vmstate models and migrates are drawn: PCI
configuration goes to function 00:01.3 only (other functions' configuration
is not migrated, see the README's known limits), port 0xcf9 (PIIX3 reset
control) is never written, PM1 control never gets SLP_EN, and the PM block is
placed only where nothing else lives.
"""
from __future__ import annotations

from vmstate.strategies._base import DEVICES, HOUR_NS, device_names
from vmstate.strategies._hpet import hpet_operations
from vmstate.strategies._migrate import downtimes, migrations, versions
from vmstate.strategies._noise import NOISE_MEMORY, NOISE_PORTS, noise
from vmstate.strategies._pit import PIT_DRIVER_COUNTS, pit_operations
from vmstate.strategies._pm import PM_BASES, pm_operations
from vmstate.strategies._rtc import RTC_DRIVER_B, rtc_operations
from vmstate.strategies._scenario import DEVICE_OPERATIONS, operations, scenarios
from vmstate.strategies._time import time_steps

__all__ = [
    "DEVICES", "DEVICE_OPERATIONS", "HOUR_NS", "PIT_DRIVER_COUNTS", "PM_BASES", "RTC_DRIVER_B", "NOISE_PORTS",
    "NOISE_MEMORY", "pit_operations", "hpet_operations", "rtc_operations", "pm_operations", "noise",
    "operations", "time_steps", "versions", "downtimes", "migrations", "scenarios", "device_names",
]
