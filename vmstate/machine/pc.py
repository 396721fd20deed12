"""QEMU 7.2's ``pc`` machine, as far as its timer devices go.

The machine owns the clocks, the two address spaces and the 24 I/O APIC
inputs (numbered as qtest's ``irq_intercept_in ioapic`` numbers them: the GSI),
builds the devices and wires them as ``hw/i386/pc.c`` does.  What the guest
observes is recorded in the attached :class:`Session`, which belongs to the
qtest client rather than to the machine, so it carries on across a migration.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone

from devices.acpi_pm import AcpiPm
from devices.hpet import HPET_BASE, Hpet
from devices.i8254 import PIT_PORT, Pit
from devices.mc146818 import RTC_PORT, Rtc
from devices.pci import PciHost, pc_functions
from devices.pcspk import SPEAKER_PORT, Pcspk
from vmstate.core.bus import AddressSpace
from vmstate.core.clock import MAX_HOST_OFFSET, NANOSECONDS_PER_SECOND, ClockDevice, EventBudget, HostClock, VirtualClock
from vmstate.core.device import Device
from vmstate.core.errors import UsageError
from vmstate.core.irq import IrqLine
from vmstate.core.observe import Clock, Edge, Observations, Read
from vmstate.machine.monitor import Monitor

IOAPIC_PINS = 24
RAM_SIZE = 8 << 20
DEFAULT_RTC_BASE = "2000-01-01T00:00:00"
RTC_CLOCKS = ("vm", "host")
#: The options of a machine built with none given, as QEMU's defaults for
#: the reference harness: -rtc base=2000-01-01T00:00:00,clock=vm.
DEFAULT_OPTIONS = {"rtc_base": DEFAULT_RTC_BASE, "rtc_clock": "vm"}
IOAPIC_PATHS = ("ioapic", "/machine/ioapic")
FIRST_RTC_BASE_TEXT = "1970-01-01T00:00:00"
#: The host clock starts at the base, and may run only so far ahead.
LAST_RTC_BASE = MAX_HOST_OFFSET // NANOSECONDS_PER_SECOND
LAST_RTC_BASE_TEXT = datetime.fromtimestamp(LAST_RTC_BASE, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _rtc_base(text) -> tuple[int | None, str | None]:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None, f"{text!r} is not an ISO-8601 date and time"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = int(when.timestamp())
    if not 0 <= seconds <= LAST_RTC_BASE:
        return None, f"{text!r} is outside {FIRST_RTC_BASE_TEXT} .. {LAST_RTC_BASE_TEXT}"
    return seconds, None


def parse_rtc_base(text: str) -> int:
    """``-rtc base=`` as UTC epoch seconds.  Accepts ISO-8601 and QEMU's own
    ``YYYY-MM-DDTHH:MM:SS`` and ``YYYY-MM-DD``; a time zone, if given, counts.
    The base must be one the RTC's section can carry: its ``base_rtc`` is
    unsigned seconds (no date before 1970), and the host clock it starts
    must stay within :data:`MAX_HOST_OFFSET` (early 2116)."""
    seconds, problem = _rtc_base(text)
    if problem:
        raise UsageError(f"--rtc-base: {problem}")
    return seconds


def option_error(option: str, value) -> str | None:
    """What is wrong with a machine option's value (from the command line, a
    trace's pragma or a snapshot's header), or None; the caller names the
    option as its user spelled it."""
    if option == "rtc_clock":
        return None if value in RTC_CLOCKS else f"{value!r} is not one of {', '.join(RTC_CLOCKS)}"
    if option == "rtc_base":
        return _rtc_base(value)[1]
    return f"not a machine option (known: {', '.join(DEFAULT_OPTIONS)})"


@dataclass
class Session:
    """The qtest client's side: what it has observed (``observations``, or
    None to keep no record: a long ``vmstate run`` needs only its replies),
    the interrupt edges reported since the runner last took them, and which
    levels it last reported (qtest's ``irq_levels``, zero until told)."""

    observations: Observations | None = field(default_factory=Observations)
    intercepting: bool = False
    irq_levels: list[int] = field(default_factory=lambda: [0] * IOAPIC_PINS)
    op: int = 0
    edges: list[Edge] = field(default_factory=list)


class PcMachine:
    """``budget`` bounds the timer events of this machine's clock (and of
    every destination it migrates to)."""

    def __init__(self, rtc_base: str = DEFAULT_RTC_BASE, rtc_clock: str = "vm",
                 budget: EventBudget | None = None):
        problem = option_error("rtc_clock", rtc_clock)
        if problem:
            raise UsageError(f"--rtc-clock: {problem}")
        self.options = {"rtc_base": rtc_base, "rtc_clock": rtc_clock}
        self.rtc_base = parse_rtc_base(rtc_base)
        self.rtc_clock = rtc_clock
        self.clock = VirtualClock(budget=budget)
        self.host = HostClock(self.clock, epoch=self.rtc_base * NANOSECONDS_PER_SECOND)
        self.monitor = Monitor(self.clock)
        self.io = AddressSpace("io", 0x10000, unassigned_ones=True)
        self.mem = AddressSpace("memory", 1 << 64, unassigned_ones=False)
        self.mem.ram("pc.ram-low", 0, 0xA0000)
        self.mem.ram("pc.ram-high", 0x100000, RAM_SIZE - 0x100000)
        self.gsi_levels = [0] * IOAPIC_PINS
        self.gsi = [IrqLine(functools.partial(self._gsi_changed, n)) for n in range(IOAPIC_PINS)]
        self.session: Session | None = Session()
        self.timer = ClockDevice(self.clock)
        self.pci = PciHost()
        for function in pc_functions(RAM_SIZE):
            self.pci.add(function)
        self.pm = AcpiPm(self.clock, self.gsi[9], self.io)
        self.pci.add(self.pm)
        self.pci.map(self.io)
        # The PIT's and the RTC's interrupt outputs reach GSI 0 and 8 through
        # the HPET's legacy-replacement inputs, so that legacy replacement
        # can take those lines from them.  A timer's FSB message is a 32-bit
        # store into guest memory, as QEMU performs it even though the pc
        # HPET does not advertise FSB delivery.
        self.hpet = Hpet(self.clock, self.gsi, memory=self.mem)
        self.mem.map(HPET_BASE, self.hpet.region)
        self.rtc = Rtc(self.clock, self.host, IrqLine(self.hpet.rtc_input), self.rtc_base, self.rtc_clock,
                       on_time_set=self.monitor.rtc_change)
        self.io.map(RTC_PORT, self.rtc.region)
        self.pit = Pit(self.clock, IrqLine(self.hpet.pit_input), unobserved=self._unobserved)
        self.io.map(PIT_PORT, self.pit.region)
        self.pcspk = Pcspk(self.pit)
        self.io.map(SPEAKER_PORT, self.pcspk.region)
        self.hpet.pit_enabled.connect(self.pit.irq_control)
        self.devices: dict[str, Device] = {dev.name: dev for dev in (
            self.timer, self.pci, self.pm, self.hpet, self.rtc, self.pit, self.pcspk)}

    # -- interrupts -------------------------------------------------------------
    def _gsi_changed(self, n: int, level: int) -> None:
        """An I/O APIC input's sink.  Bound through functools.partial, not a
        closure, so that a deep copy of the machine records into the copy."""
        self.gsi_levels[n] = level
        session = self.session
        if session is not None and session.intercepting and session.irq_levels[n] != level:
            session.irq_levels[n] = level
            edge = Edge(session.op, self.clock.now, n, level)
            session.edges.append(edge)
            if session.observations is not None:
                session.observations.events.append(edge)

    def _unobserved(self) -> bool:
        """Whether no one sees the interrupt lines: the qtest client does
        not intercept them, and nothing else here reads them."""
        return self.session is None or not self.session.intercepting

    def intercept(self, path: str) -> str:
        """qtest's ``irq_intercept_in``: the reply it sends."""
        if path not in IOAPIC_PATHS:
            return "FAIL Unknown device"
        if self.session is not None:
            self.session.intercepting = True
        return "OK"

    # -- guest accesses ---------------------------------------------------------
    def _record(self, event) -> None:
        if self.session is not None and self.session.observations is not None:
            self.session.observations.events.append(event)

    def _op(self) -> int:
        return self.session.op if self.session is not None else 0

    def io_read(self, addr: int, size: int) -> int:
        value = self.io.read(addr, size)
        self._record(Read(self._op(), self.clock.now, "io", addr, size, value))
        return value

    def io_write(self, addr: int, size: int, value: int) -> None:
        self.io.write(addr, size, value)

    def mem_read(self, addr: int, size: int) -> int:
        value = self.mem.read(addr, size)
        self._record(Read(self._op(), self.clock.now, "mem", addr, size, value))
        return value

    def mem_write(self, addr: int, size: int, value: int) -> None:
        self.mem.write(addr, size, value)

    def clock_step(self, ns: int | None = None) -> int:
        now = self.clock.step(ns)
        self._record(Clock(self._op(), now))
        return now

    def clock_set(self, ns: int) -> int:
        self.clock.warp(ns)
        self._record(Clock(self._op(), self.clock.now))
        return self.clock.now

    # -- migration ----------------------------------------------------------------
    def clone(self) -> "PcMachine":
        """A deep copy without the session: the client's record stays one."""
        session, self.session = self.session, None
        try:
            twin = copy.deepcopy(self)
        finally:
            self.session = session
        return twin

    def reinitialize(self) -> None:
        """The machine as just built with its options (a QEMU destination
        before it loads), keeping its qtest session and event budget."""
        session, budget = self.session, self.clock.budget
        self.__init__(**self.options, budget=budget)
        self.session = session

    def carry_on_from(self, source: "PcMachine", downtime: int) -> None:
        """What a destination takes over from its source besides the stream:
        host time, which went on for the downtime, and the event budget."""
        self.host.paused_total = source.host.paused_total
        self.host.pause(downtime)
        self.clock.budget = source.clock.budget

    def get_state(self) -> dict:
        """Every device's state as it lives in the device, before the
        conversions a save applies: what the checker compares across a
        migration."""
        return {name: dev.live_state() for name, dev in self.devices.items()}
