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

from typing import Callable, Iterable, Mapping

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from vmstate.machine.names import format_versions

__all__ = [
    "DEVICES", "DEVICE_OPERATIONS", "HOUR_NS", "pit_operations", "hpet_operations", "rtc_operations",
    "pm_operations", "noise", "operations", "time_steps", "versions", "downtimes", "migrations",
    "scenarios", "device_names",
]

HOUR_NS = 3600 * 10**9

#: The devices scenarios can drive, by their key in ``PcMachine.devices``
#: (the PC speaker port 0x61 belongs to ``i8254``'s operations, and PCI
#: configuration to ``piix4_pm``'s).
DEVICES = ("i8254", "hpet", "mc146818rtc", "piix4_pm")

_ALIASES = {"pit": "i8254", "i8254": "i8254", "pcspk": "i8254",
            "hpet": "hpet",
            "rtc": "mc146818rtc", "mc146818rtc": "mc146818rtc", "cmos": "mc146818rtc",
            "pm": "piix4_pm", "piix4_pm": "piix4_pm", "acpi": "piix4_pm", "pcihost": "piix4_pm"}


def device_names(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical device names for user-facing ones (``pit``, ``rtc``, ``pm``,
    ``pcspk``, ``PCIHost`` ... map to the device whose operations drive
    them).  Raises ``UsageError`` for a name no operation strategy drives."""
    from vmstate.core.errors import UsageError

    out: list[str] = []
    for name in names:
        canonical = _ALIASES.get(name.lower())
        if canonical is None:
            raise UsageError(f"no operations for device {name!r} (known: {', '.join(sorted(_ALIASES))})")
        if canonical not in out:
            out.append(canonical)
    return tuple(out)


Chunk = list[str]


def _hex(value: int) -> str:
    return f"{value:#x}"


def _gentle_first(gentle: SearchStrategy[int], harsh: SearchStrategy[int]) -> SearchStrategy[int]:
    """Either range, shrinking towards the gentle one (``one_of`` shrinks to
    its first branch)."""
    return st.one_of(gentle, harsh)


@st.composite
def _whole(draw, strategy: SearchStrategy):
    return draw(strategy)


def _weighted(*choices: tuple[int, SearchStrategy]) -> SearchStrategy:
    """One of ``choices`` (``(weight, strategy)`` pairs), each drawn with
    probability proportional to its weight, shrinking towards the first.

    ``st.one_of`` alone cannot weight: it flattens nested ``one_of``s into
    their branches (so a strategy counts as many times as it has branches)
    and drops a branch it has already seen (so listing one twice counts
    once).  Each choice is therefore wrapped, once per unit of weight, in a
    strategy of its own that ``one_of`` does not look into."""
    branches = [_whole(strategy) for weight, strategy in choices for _ in range(weight)]
    if not branches:
        raise ValueError("_weighted() needs at least one choice of positive weight")
    return st.one_of(branches)


# -- i8254 PIT and port 0x61 --------------------------------------------------------
PIT_BASE = 0x40
PIT_CONTROL = 0x43
SPEAKER_PORT = 0x61

#: Reload values drivers write: 100, 250, 300 and 1000 Hz ticks
#: (1193182 / HZ), Linux's 10 ms calibration latch, PC speaker tones
#: (750 Hz, 440 Hz) and the all-ones count of a calibration run.  Each has
#: a non-zero low byte, so a lost first byte of a two-byte reload shows.
PIT_DRIVER_COUNTS = (0x2E9C, 0x12A5, 0x0F89, 0x04A9, 0x2E9B, 0x0637, 0x0A98, 0xFFFF)
#: A PIT count: 0 (65536) and long counts first, so that a shrunk channel 0
#: interrupts at about 18 Hz; then the counts drivers use
#: (:data:`PIT_DRIVER_COUNTS`); counts down to 1 (1.19 MHz) stay reachable.
_pit_counts = st.one_of(st.just(0), st.integers(0x1000, 0xFFFF), st.sampled_from(PIT_DRIVER_COUNTS),
                        st.integers(1, 0xFFF))
#: Modes as drivers use them (2 and 3 for periodic ticks and tones, 0 and 4
#: for one-shots and calibration) more often than the rest.
_pit_modes = st.sampled_from([2, 3, 0, 2, 3, 0, 4, 1, 5, 6, 7])


@st.composite
def _pit_program(draw) -> Chunk:
    """A control word and the data bytes its access mode expects (lsb then
    msb most often, as drivers program a reload); the second byte of a word
    is sometimes left out (a reload half written).  About half the time the
    driver then checks the count it loaded, with a counter latch and its
    two reads or with two live reads of the channel."""
    channel = draw(st.integers(0, 2))
    mode = draw(_pit_modes)
    access = draw(st.sampled_from([3, 3, 1, 2]))
    bcd = draw(st.sampled_from([0, 0, 0, 1]))
    count = draw(_pit_counts)
    lines = [f"outb {_hex(PIT_CONTROL)} {_hex(channel << 6 | access << 4 | mode << 1 | bcd)}"]
    port = _hex(PIT_BASE + channel)
    if access == 1:
        lines.append(f"outb {port} {_hex(count & 0xFF)}")
    elif access == 2:
        lines.append(f"outb {port} {_hex(count >> 8)}")
    else:
        lines.append(f"outb {port} {_hex(count & 0xFF)}")
        if draw(st.booleans()) or draw(st.booleans()):
            lines.append(f"outb {port} {_hex(count >> 8)}")
    check = draw(st.sampled_from(["none", "latch", "live", "none", "latch", "live"]))
    if check == "latch":
        lines.append(f"outb {_hex(PIT_CONTROL)} {_hex(channel << 6)}")
    if check != "none":
        lines += [f"inb {port}"] * draw(st.sampled_from([2, 1]))
    return lines


@st.composite
def _pit_data(draw) -> Chunk:
    """Data bytes on their own: the second half of a reload, or a reload in
    the access mode already set."""
    channel = draw(st.integers(0, 2))
    values = draw(st.lists(st.integers(0, 0xFF), min_size=1, max_size=2))
    return [f"outb {_hex(PIT_BASE + channel)} {_hex(v)}" for v in values]


@st.composite
def _pit_latch(draw) -> Chunk:
    """A counter-latch command and zero to two reads of that channel."""
    channel = draw(st.integers(0, 2))
    reads = draw(st.integers(0, 2))
    return [f"outb {_hex(PIT_CONTROL)} {_hex(channel << 6)}"] + [f"inb {_hex(PIT_BASE + channel)}"] * reads


@st.composite
def _pit_readback(draw) -> Chunk:
    """A read-back command (count, status or both, any set of channels) and
    reads of the selected channels."""
    selected = draw(st.integers(1, 7))
    what = draw(st.sampled_from([0x00, 0x10, 0x20]))  # both, count only, status only
    lines = [f"outb {_hex(PIT_CONTROL)} {_hex(0xC0 | what | selected << 1)}"]
    channels = [c for c in range(3) if selected & (1 << c)]
    for channel in draw(st.lists(st.sampled_from(channels), max_size=3)):
        lines.append(f"inb {_hex(PIT_BASE + channel)}")
    return lines


_pit_read = st.builds(lambda c, n: [f"inb {_hex(PIT_BASE + c)}"] * n, st.integers(0, 2), st.integers(1, 2))
_speaker = st.one_of(
    st.integers(0, 3).map(lambda v: [f"outb {_hex(SPEAKER_PORT)} {_hex(v)}"]),
    st.just([f"inb {_hex(SPEAKER_PORT)}"]),
    st.integers(0, 1).map(lambda v: [f"outb {_hex(SPEAKER_PORT)} {_hex(v)}",
                                      f"outb {_hex(SPEAKER_PORT)} {_hex(v ^ 1)}"]),
)


def pit_operations() -> SearchStrategy[Chunk]:
    """The i8254 as a driver programs it, and port 0x61.

    Draws one chunk: a control word followed by the data bytes its access
    mode expects (lsb, msb or, most often, lsb-then-msb, the second byte
    sometimes missing), with counts drivers use (:data:`PIT_DRIVER_COUNTS`)
    among the drawn ones and, half the time, the loaded count read back
    (latched or live); stray data bytes, a counter latch with its reads, a
    read-back of count and/or status with reads of the selected channels,
    plain counter reads, or a port 0x61 access (gate and speaker-data
    writes, a gate pulse, reads that toggle the refresh bit).  Programming
    is drawn most often (a third of the chunks), port 0x61 next (two
    ninths), the rest evenly."""
    return _weighted((3, _pit_program()), (1, _pit_latch()), (1, _pit_read), (1, _pit_readback()),
                     (2, _speaker), (1, _pit_data()))


# -- HPET --------------------------------------------------------------------------------
HPET_BASE = 0xFED00000
_HPET_CFG = HPET_BASE + 0x10
_HPET_STATUS = HPET_BASE + 0x20
_HPET_COUNTER = HPET_BASE + 0xF0
_TN_LEVEL, _TN_ENABLE, _TN_PERIODIC, _TN_SETVAL, _TN_32BIT = 0x2, 0x4, 0x8, 0x40, 0x100

#: Comparator values in 10 ns ticks: within the first millisecond first
#: (what the time steps reach), then anywhere.
_hpet_cmp = _gentle_first(st.integers(0, 100_000), st.integers(100_001, 0xFFFFFFFF))
#: Periods: 1 ms to 100 ms first, then shorter (costly: 10 ns is 100 MHz)
#: and longer ones.
_hpet_period = st.one_of(st.integers(100_000, 10_000_000), st.integers(1, 99_999),
                         st.integers(10_000_001, 0xFFFFFFFF))


def _timer(n: int, reg: int) -> int:
    return HPET_BASE + 0x100 + 0x20 * n + reg


#: Timers 0-2, and now and then 3: one past the count, as QEMU lets it through.
_hpet_timers = st.sampled_from([0, 1, 2, 0, 1, 2, 3])


@st.composite
def _hpet_comparator(draw) -> Chunk:
    """A timer configured (enable, level, periodic, 32-bit, route) and its
    comparator written the ways drivers do: with Tn_VAL_SET_CNF (value, then
    period) or without, as two halves, or as one ``writeq``."""
    n = draw(_hpet_timers)
    periodic = draw(st.booleans())
    setval = periodic and draw(st.booleans())
    bits32 = draw(st.booleans())
    route = draw(_gentle_first(st.just(2), st.integers(0, 31)))
    config = (_TN_ENABLE if draw(st.booleans()) or draw(st.booleans()) else 0) | route << 9
    config |= _TN_LEVEL if draw(st.booleans()) else 0
    config |= (_TN_PERIODIC if periodic else 0) | (_TN_SETVAL if setval else 0) | (_TN_32BIT if bits32 else 0)
    value = draw(_hpet_period if periodic and not setval else _hpet_cmp)
    period = draw(_hpet_period)
    lines = [f"writel {_hex(_timer(n, 0))} {_hex(config)}"]
    how = draw(st.sampled_from(["low", "halves", "writeq"]))
    if how == "writeq":
        lines.append(f"writeq {_hex(_timer(n, 8))} {_hex(value)}")
    elif how == "halves":
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(value & 0xFFFFFFFF)}")
        lines.append(f"writel {_hex(_timer(n, 0xC))} {_hex(value >> 32)}")
    else:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(value & 0xFFFFFFFF)}")
    if setval:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(period & 0xFFFFFFFF)}")
    if draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 3])))}")
    return lines


_hpet_enable = st.sampled_from([1, 0, 3, 2]).map(lambda v: [f"writel {_hex(_HPET_CFG)} {_hex(v)}"])
_hpet_reads = st.sampled_from([
    _HPET_STATUS, _HPET_COUNTER, _HPET_STATUS, _HPET_COUNTER + 4, _HPET_CFG, HPET_BASE,
]).map(lambda a: [f"readl {_hex(a)}"]) | st.tuples(_hpet_timers, st.sampled_from([0, 4, 8, 0xC, 0x10])).map(
    lambda t: [f"readl {_hex(_timer(t[0], t[1]))}"]) | st.just([f"readq {_hex(_HPET_COUNTER)}"])
_hpet_ack = st.integers(1, 7).map(lambda m: [f"writel {_hex(_HPET_STATUS)} {_hex(m)}"])
_hpet_counter = st.builds(
    lambda lo, hi, both: [f"writel {_hex(_HPET_COUNTER)} {_hex(lo)}"]
    + ([f"writel {_hex(_HPET_COUNTER + 4)} {_hex(hi)}"] if both else []),
    st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), st.booleans())
_hpet_fsb = st.builds(lambda n, v: [f"writel {_hex(_timer(n, 0x10))} {_hex(v)}"], _hpet_timers,
                      st.integers(0, 0xFFFFFFFF))

#: Ticks from the (re)started counter to a comparator's first interrupt:
#: 10 us to 10 ms first, then anything up to 32 bits.
_hpet_first = _gentle_first(st.integers(1_000, 1_000_000), st.integers(1, 0xFFFFFFFF))


@st.composite
def _hpet_session(draw) -> Chunk:
    """A driver bringing a comparator up and servicing it, as Linux's HPET
    clockevent code does: halt the block (often resetting the main counter
    to 0, so that comparator values mean what they say), configure the
    timer (enabled; edge or level; one-shot or periodic, a periodic one
    mostly with Tn_VAL_SET_CNF, its first comparator then its period,
    which differ), start the block (with or without legacy replacement),
    wait for the interrupt (to the next deadline, or one to three
    intervals and a few ns), then read the general interrupt status,
    often acknowledge the timer's bit, and sometimes read the counter."""
    lines: Chunk = []
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_CFG)} 0x0")
        if draw(st.booleans()) or draw(st.booleans()):
            lines += [f"writel {_hex(_HPET_COUNTER)} 0x0", f"writel {_hex(_HPET_COUNTER + 4)} 0x0"]
    n = draw(_hpet_timers)
    level = draw(st.booleans())
    periodic = draw(st.booleans())
    setval = periodic and draw(st.sampled_from([True, True, False]))
    bits32 = draw(st.sampled_from([False, False, True]))
    route = draw(_gentle_first(st.just(2), st.integers(0, 31)))
    config = _TN_ENABLE | route << 9 | (_TN_LEVEL if level else 0) | (_TN_PERIODIC if periodic else 0)
    config |= (_TN_SETVAL if setval else 0) | (_TN_32BIT if bits32 else 0)
    first = draw(_hpet_first)
    period = draw(_hpet_period) if periodic else first
    lines.append(f"writel {_hex(_timer(n, 0))} {_hex(config)}")
    lines.append(f"writel {_hex(_timer(n, 8))} {_hex(first if setval or not periodic else period)}")
    if setval:
        lines.append(f"writel {_hex(_timer(n, 8))} {_hex(period)}")
    lines.append(f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 1, 3])))}")
    if draw(st.sampled_from([False, True, True, True])):
        lines.append("clock_step")
    else:
        interval = first if not periodic or draw(st.booleans()) else period
        wait = draw(st.integers(1, 3)) * interval * 10 + draw(st.integers(0, 999))
        lines.append(f"clock_step {wait}")
    lines.append(f"readl {_hex(_HPET_STATUS)}")
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"writel {_hex(_HPET_STATUS)} {_hex(1 << n)}")
    if draw(st.booleans()):
        lines.append(f"readl {_hex(_HPET_COUNTER)}")
    return lines


#: Delays between counter reads: a few ns (inside one 10 ns tick) to a
#: millisecond.
_hpet_poll_delay = st.one_of(st.integers(1, 99), st.integers(100, 1_000_000))


@st.composite
def _hpet_counter_poll(draw) -> Chunk:
    """The main counter read the way a clocksource or a calibration loop
    reads it: a read, then one to three delays (a few ns to a millisecond,
    so that reads land at any phase within a tick) each followed by a read
    of the low half (sometimes the high half, or both with ``readq``)."""
    reads = st.sampled_from([f"readl {_hex(_HPET_COUNTER)}"] * 3 + [f"readl {_hex(_HPET_COUNTER + 4)}",
                                                                     f"readq {_hex(_HPET_COUNTER)}"])
    lines = [draw(reads)]
    for _ in range(draw(st.integers(1, 3))):
        lines += [f"clock_step {draw(_hpet_poll_delay)}", draw(reads)]
    return lines


@st.composite
def _hpet_legacy_handover(draw) -> Chunk:
    """Legacy replacement taken and handed back: ``GEN_CONF`` with LEG_RT
    (block enabled or not), a wait (to the next deadline, or 1 ms to 2 s)
    during which the PIT's and the RTC's interrupts are held back from GSI
    0 and 8, then ``GEN_CONF`` without it, as an OS does when it stops
    using the HPET (a clocksource switch, suspend): the RTC's held level
    reaches GSI 8 only then."""
    wait = draw(st.one_of(st.just("clock_step"),
                          st.integers(1_000_000, 2_000_000_000).map(lambda ns: f"clock_step {ns}")))
    return [f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([3, 2])))}", wait,
            f"writel {_hex(_HPET_CFG)} {_hex(draw(st.sampled_from([1, 0])))}"]


def hpet_operations() -> SearchStrategy[Chunk]:
    """The HPET as a driver programs it.

    Draws one chunk: a whole driver session (halt, counter reset, a
    comparator configured and its first value and period written, the block
    started, a wait for the interrupt, the status read and acknowledged,
    the counter read; see ``_hpet_session``), which is drawn most often;
    counter polling (reads a few ns to a millisecond apart); legacy
    replacement taken, held for a while and handed back; enable/halt and
    legacy replacement alone (``GEN_CONF`` values 0-3); a comparator
    programmed with its configuration (one-shot or periodic, with or
    without Tn_VAL_SET_CNF, edge or level, 32- or 64-bit, GSI 2 or any
    route) followed by the value written as a low half, as two halves or
    with ``writeq``; reads of status, counter, configuration and the timer
    registers; an acknowledge of status bits; a counter write (effective
    while halted); an FSB register write.  Timer 3, one past the advertised
    count, is reachable because QEMU's range check lets it through.  Driver
    sessions, polls and handovers contain ``clock_step`` lines: their waits
    are part of the sequence, so that a migration can fall inside them."""
    return _weighted((3, _hpet_session()), (2, _hpet_counter_poll()), (3, _hpet_legacy_handover()),
                     (1, _hpet_enable), (2, _hpet_comparator()), (2, _hpet_reads), (1, _hpet_ack),
                     (1, _hpet_counter), (1, _hpet_fsb))


# -- MC146818 RTC -----------------------------------------------------------------------
RTC_INDEX, RTC_DATA = 0x70, 0x71


def _rtc_write(index: int, value: int) -> Chunk:
    return [f"outb {_hex(RTC_INDEX)} {_hex(index)}", f"outb {_hex(RTC_DATA)} {_hex(value)}"]


def _rtc_read(index: int) -> Chunk:
    return [f"outb {_hex(RTC_INDEX)} {_hex(index)}", f"inb {_hex(RTC_DATA)}"]


#: Register A: rate select 15 (2 Hz) down to 1 shrinks towards the slow end;
#: divider 010 (running) first, then held (110, 111) and the others.
_rtc_rate = st.integers(0, 15).map(lambda k: 15 - k)
_rtc_divider = st.sampled_from([2, 6, 7, 0, 1, 3, 4, 5])
_rtc_a = st.builds(lambda d, r: d << 4 | r, _rtc_divider, _rtc_rate)
#: Register B: PIE, AIE, UIE, SQWE, DM, 24/12, DSE; SET is handled by the
#: time-programming chunk, but a raw B value may carry it too.  The values
#: drivers write (24-hour BCD with update, alarm or periodic interrupts
#: enabled, or none) come first, then any.
RTC_DRIVER_B = (0x02, 0x12, 0x42, 0x22, 0x32, 0x52, 0x72, 0x16, 0x06)
_rtc_b = st.one_of(st.sampled_from(RTC_DRIVER_B), st.integers(0, 0x7F), st.integers(0x80, 0xFF))


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


@st.composite
def _rtc_set_time(draw) -> Chunk:
    """Setting the clock the way a BIOS does: SET on, the time and date
    bytes written (BCD or binary as B says), SET off -- or left on, the
    written time pending."""
    b = draw(st.sampled_from([0x02, 0x06, 0x00, 0x04])) | (draw(st.sampled_from([0, 0x40, 0x20, 0x10])))
    binary = bool(b & 0x04)
    enc = (lambda v: v) if binary else _bcd
    lines = _rtc_write(0x0B, b | 0x80)
    fields = {0x00: draw(st.integers(0, 59)), 0x02: draw(st.integers(0, 59)),
              0x04: draw(st.integers(0, 23)), 0x07: draw(st.integers(1, 28)),
              0x08: draw(st.integers(1, 12)), 0x09: draw(st.integers(0, 99)),
              0x32: draw(st.sampled_from([20, 19, 21]))}
    for index in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=7, unique=True)):
        value = fields[index]
        if index == 0x04 and not b & 0x02:
            value = enc(value % 12 or 12) | (0x80 if value >= 12 else 0)
        else:
            value = enc(value)
        lines += _rtc_write(index, value)
    if draw(st.booleans()) or draw(st.booleans()):
        lines += _rtc_write(0x0B, b)
    return lines


@st.composite
def _rtc_alarm(draw) -> Chunk:
    """An alarm: seconds, minutes, hours, each a value or don't-care (0xC0+)."""
    lines: Chunk = []
    for index, top in ((0x01, 59), (0x03, 59), (0x05, 23)):
        if draw(st.booleans()):
            lines += _rtc_write(index, draw(st.one_of(st.integers(0, top).map(_bcd), st.integers(0xC0, 0xFF))))
    return lines or _rtc_write(0x01, 0xFF)


_rtc_reads = st.sampled_from([0x0C, 0x0A, 0x0B, 0x0D, 0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32, 0x37,
                              0x01, 0x0E, 0x7F]).map(_rtc_read)
_rtc_registers = st.one_of(
    _rtc_a.map(lambda v: _rtc_write(0x0A, v)),
    _rtc_b.map(lambda v: _rtc_write(0x0B, v)),
    st.tuples(st.integers(0x0E, 0x7F), st.integers(0, 0xFF)).map(lambda t: _rtc_write(*t)),
    st.tuples(st.sampled_from([0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32, 0x0C, 0x0D]),
              st.integers(0, 0xFF)).map(lambda t: _rtc_write(*t)),
)


@st.composite
def _rtc_interrupts(draw) -> Chunk:
    """A driver turning an interrupt source on: the periodic rate in A
    (divider running; 2 Hz first, QEMU's 1024 Hz default among the rest),
    B with update-ended, alarm and/or periodic interrupts enabled (24-hour,
    BCD or binary), and a read of C to drop what was pending.  Sometimes
    the driver then waits for the interrupt (to the next deadline, or up to
    1.5 s) and its handler reads C, which acknowledges it."""
    lines = _rtc_write(0x0A, 0x20 | draw(_rtc_rate)) if draw(st.booleans()) else []
    enables = draw(st.sampled_from([0x10, 0x40, 0x20, 0x50, 0x30, 0x70]))
    lines += _rtc_write(0x0B, enables | draw(st.sampled_from([0x02, 0x06, 0x00])))
    if draw(st.booleans()):
        lines += _rtc_read(0x0C)
    if draw(st.booleans()):
        lines.append(draw(st.one_of(st.just("clock_step"),
                                    st.integers(1_000_000, 1_500_000_000).map(lambda ns: f"clock_step {ns}"))))
        lines += _rtc_read(0x0C)
    return lines


_rtc_index = st.integers(0, 0xFF).map(lambda i: [f"outb {_hex(RTC_INDEX)} {_hex(i)}"]) | st.just(
    [f"inb {_hex(RTC_DATA)}"])


def rtc_operations() -> SearchStrategy[Chunk]:
    """The MC146818 RTC and CMOS as a driver programs them.

    Draws one chunk: register A (rate and divider, held or running),
    register B (interrupt enables, data mode, 12/24 hours; the values
    drivers write, :data:`RTC_DRIVER_B`, among them), an interrupt source
    turned on (rate, enables, C cleared) and sometimes waited for and
    acknowledged by a read of C, the time and
    date written under SET (applied or left pending), an alarm (values or
    don't-care bytes), CMOS RAM writes, index-then-data reads of A, B, C
    (which acknowledges), D and the time bytes, or a lone index write or
    data read (the index register is state)."""
    return _weighted((2, _rtc_reads), (4, _rtc_registers), (2, _rtc_interrupts()), (1, _rtc_set_time()),
                     (1, _rtc_alarm()), (2, _rtc_index))


# -- ACPI PM (PIIX4 function 00:01.3) -------------------------------------------------
PCI_ADDRESS, PCI_DATA = 0xCF8, 0xCFC
PM_FUNCTION = 0x80000B00  # bus 0, device 1, function 3, enabled
#: Where the PM block is placed: QEMU's default and other free I/O ranges
#: (nothing else decodes there on pc, and vmstate models the same).
PM_BASES = (0x600, 0xB000, 0x1000, 0x4000)
#: Accesses go mostly to the first base, so that the block is often there.
_pm_bases = st.sampled_from((0x600,) * 4 + PM_BASES[1:])
GPE_BASE = 0xAFE0


def _pci_write(reg: int, value: int) -> Chunk:
    return [f"outl {_hex(PCI_ADDRESS)} {_hex(PM_FUNCTION | reg)}", f"outl {_hex(PCI_DATA)} {_hex(value)}"]


@st.composite
def _pm_place(draw) -> Chunk:
    """PMBA (config 0x40) and/or PMREGMISC's enable (config 0x80)."""
    lines: Chunk = []
    if draw(st.booleans()) or draw(st.booleans()):
        lines += _pci_write(0x40, draw(_pm_bases) | 1)
    if draw(st.booleans()) or draw(st.booleans()) or not lines:
        lines += _pci_write(0x80, draw(st.sampled_from([1, 0])))
    return lines


@st.composite
def _pm_access(draw) -> Chunk:
    """PM1 status/enable/control and the timer, at one of the bases."""
    base = draw(_pm_bases)
    kind = draw(st.sampled_from(["tmr", "sts", "en", "ack", "cnt", "tmr-narrow", "cnt-write"]))
    if kind == "tmr":
        return [f"inl {_hex(base + 8)}"]
    if kind == "tmr-narrow":
        return [f"{draw(st.sampled_from(['inb', 'inw']))} {_hex(base + 8)}"]
    if kind == "sts":
        return [f"inw {_hex(base)}"]
    if kind == "en":
        return [f"outw {_hex(base + 2)} {_hex(draw(st.sampled_from([1, 0, 0x21, 0x521, 0xFFFF])))}"]
    if kind == "ack":
        return [f"outw {_hex(base)} {_hex(draw(st.sampled_from([1, 0xFFFF, 0x20])))}"]
    if kind == "cnt":
        return [f"inw {_hex(base + 4)}"]
    return [f"outw {_hex(base + 4)} {_hex(draw(st.integers(0, 0xFFFF)) & ~0x2000)}"]


_pm_config_read = st.sampled_from([0x00, 0x04, 0x40, 0x80, 0x3C]).map(
    lambda r: [f"outl {_hex(PCI_ADDRESS)} {_hex(PM_FUNCTION | r)}", f"inl {_hex(PCI_DATA)}"])
_pm_gpe = st.one_of(
    st.integers(0, 3).map(lambda o: [f"inb {_hex(GPE_BASE + o)}"]),
    st.tuples(st.integers(0, 3), st.integers(0, 0xFF)).map(lambda t: [f"outb {_hex(GPE_BASE + t[0])} {_hex(t[1])}"]),
)
#: PM1 enable values an OS writes: TMR_EN alone, with GBL_EN, with the
#: power button and RTC alarm too; or none.
_pm_enables = st.sampled_from([1, 0x21, 0x121, 0x521, 0x100, 0])
#: What an acknowledge writes to PM1 status: TMR_STS, everything, or the
#: wake and power-button bits.
_pm_acks = st.sampled_from([1, 0xFFFF, 0x8001, 0x100, 0x20])


@st.composite
def _pm_bringup(draw) -> Chunk:
    """Firmware places the block (PMBA, then PMREGMISC's enable; QEMU's
    default 0x600 most often), and the OS takes it over: acknowledges what
    PM1 status holds (TMR_STS is set from reset; acknowledging it arms the
    next toggle of bit 23, about 2.34 s of PM ticks later), enables the
    timer's interrupt (TMR_EN), and sometimes reads the status back."""
    base = draw(st.sampled_from((0x600,) * 6 + PM_BASES[1:]))
    lines = _pci_write(0x40, base | 1) + _pci_write(0x80, 1)
    lines.append(f"outw {_hex(base)} {_hex(draw(_pm_acks))}")
    lines.append(f"outw {_hex(base + 2)} {_hex(draw(_pm_enables))}")
    if draw(st.booleans()):
        lines.append(f"inw {_hex(base)}")
    return lines


#: Waits of an OS for the PM timer's interrupt: to the next deadline (the
#: armed toggle of bit 23), or 100 ms to 5 s (past a toggle, ~2.34 s apart).
_pm_wait = st.one_of(st.just("clock_step"),
                     st.integers(100_000_000, 5_000_000_000).map(lambda ns: f"clock_step {ns}"))


@st.composite
def _pm_sci_handler(draw) -> Chunk:
    """The OS's SCI handler: sometimes after waiting for the interrupt, it
    reads PM1 status (and often the timer), writes back what it
    acknowledges, and sometimes reads the status again."""
    base = draw(_pm_bases)
    lines: Chunk = []
    if draw(st.booleans()):
        lines.append(draw(_pm_wait))
    lines.append(f"inw {_hex(base)}")
    if draw(st.booleans()):
        lines.append(f"inl {_hex(base + 8)}")
    if draw(st.booleans()) or draw(st.booleans()):
        lines.append(f"outw {_hex(base)} {_hex(draw(_pm_acks))}")
    if draw(st.booleans()):
        lines.append(f"inw {_hex(base)}")
    return lines


def pm_operations() -> SearchStrategy[Chunk]:
    """The ACPI PM function as firmware and an OS drive it.

    Draws one chunk: a bring-up (the block placed and enabled, PM1 status
    acknowledged, TMR_EN set: the PM timer armed for its next toggle); the
    OS's SCI handler (a wait for the interrupt, to the next deadline or
    long enough to cross a toggle of bit 23, then PM1 status read,
    acknowledged and read again, the timer read); the block placed through
    PCI configuration of 00:01.3 (PMBA at 0x40, the enable bit of
    PMREGMISC at 0x80, via 0xcf8/0xcfc) at one of :data:`PM_BASES`; PM1
    status reads and write-one-to-clear acknowledges, PM1 enable writes
    (TMR_EN among them), PM1 control reads and writes (never SLP_EN: QEMU
    would power off), PM timer reads of every width; configuration reads;
    GPE0 block accesses.  Accesses pick a base from the same list, so that
    some hit the block and some miss it."""
    return _weighted((2, _pm_bringup()), (2, _pm_sci_handler()), (1, _pm_place()), (3, _pm_access()),
                     (1, _pm_config_read), (1, _pm_gpe))


DEVICE_OPERATIONS: dict[str, Callable[[], SearchStrategy[Chunk]]] = {
    "i8254": pit_operations,
    "hpet": hpet_operations,
    "mc146818rtc": rtc_operations,
    "piix4_pm": pm_operations,
}


# -- raw noise ------------------------------------------------------------------------------
#: Port ranges around each device that noise touches.  Chosen so that every
#: port is either the device's or decodes to nothing on QEMU's pc as well.
NOISE_PORTS = {
    "i8254": [(0x40, 0x47), (0x61, 0x61)],
    "hpet": [],
    "mc146818rtc": [(0x70, 0x71)],
    "piix4_pm": [(0x600, 0x60F), (GPE_BASE, GPE_BASE + 3)],
}
NOISE_MEMORY = {"hpet": [(HPET_BASE, HPET_BASE + 0x3FF)]}
_OUT = ("outb", "outw", "outl")
_IN = ("inb", "inw", "inl")
_WRITE = ("writeb", "writew", "writel", "writeq")
_READ = ("readb", "readw", "readl", "readq")


def noise(devices: Iterable[str] = DEVICES) -> SearchStrategy[Chunk]:
    """Raw accesses in and near ``devices``: any port or MMIO address of
    :data:`NOISE_PORTS` / :data:`NOISE_MEMORY`, any width, any value.

    Where a driver-like strategy keeps to sensible sequences, noise finds
    the states no driver reaches (a data byte with no control word before
    it, a misaligned HPET access, a PM1 access of the wrong width).  For the
    PM function, noise also writes PCI configuration of 00:01.3 outside the
    block-placement registers."""
    devices = tuple(devices)
    choices: list[SearchStrategy[Chunk]] = []
    ports = [r for d in devices for r in NOISE_PORTS.get(d, [])]
    if ports:
        port = st.sampled_from(ports).flatmap(lambda r: st.integers(r[0], r[1]))
        choices.append(st.builds(lambda n, p, v: [f"{n} {_hex(p)} {_hex(v)}"], st.sampled_from(_OUT), port,
                                 st.integers(0, 0xFFFFFFFF)))
        choices.append(st.builds(lambda n, p: [f"{n} {_hex(p)}"], st.sampled_from(_IN), port))
    memory = [r for d in devices for r in NOISE_MEMORY.get(d, [])]
    if memory:
        addr = st.sampled_from(memory).flatmap(lambda r: st.integers(r[0], r[1]))
        choices.append(st.builds(lambda n, a, v: [f"{n} {_hex(a)} {_hex(v)}"], st.sampled_from(_WRITE), addr,
                                 st.integers(0, (1 << 64) - 1)))
        choices.append(st.builds(lambda n, a: [f"{n} {_hex(a)}"], st.sampled_from(_READ), addr))
    if "piix4_pm" in devices:
        safe = [r for r in range(0x04, 0x100) if not (0x40 <= r < 0x44 or r == 0x80 or 0x90 <= r < 0x94
                                                      or r == 0xD2)]
        choices.append(st.builds(lambda r, v, w: [f"outl {_hex(PCI_ADDRESS)} {_hex(PM_FUNCTION | (r & 0xFC))}",
                                                  f"out{w} {_hex(PCI_DATA + (r & 3 if w == 'b' else 0))} {_hex(v)}"],
                                 st.sampled_from(safe), st.integers(0, 0xFF), st.just("b")))
    if not choices:
        return st.nothing()
    return st.one_of(choices)


def operations(devices: Iterable[str] = DEVICES, *, with_noise: bool = True,
               extra: Mapping[str, SearchStrategy[Chunk]] | None = None) -> SearchStrategy[Chunk]:
    """One chunk from any of ``devices``' operation strategies, from
    ``extra`` (name -> strategy, for devices of your own), and, with
    ``with_noise``, raw accesses around the built-in ones.

    Each device and each extra strategy is drawn equally often, whatever
    the number of alternatives inside it; noise, when on, as often as one
    quarter of a device (so a single device sees noise in one chunk of
    five)."""
    devices = tuple(devices)
    choices = [(4, DEVICE_OPERATIONS[d]()) for d in devices]
    choices += [(4, strategy) for strategy in (extra or {}).values()]
    if with_noise and devices:
        choices.append((1, noise(devices)))
    if not choices:
        raise ValueError("operations() needs at least one device or extra strategy")
    return _weighted(*choices)


# -- time ------------------------------------------------------------------------------------
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
    if not ranges:
        raise ValueError(f"no time step between {min_ns} and {max_ns} ns")
    # Scales are drawn with weights (microseconds and milliseconds most,
    # hours least): a long step is only affordable while the machine is
    # quiet, and most interesting instants are a few periods apart.
    weights = [1, 3, 4, 1, 1][:len(ranges)] if len(ranges) == len(bounds) else [1] * len(ranges)
    scale = st.sampled_from([i for i, w in enumerate(weights) for _ in range(w)])
    steps = scale.flatmap(lambda i: st.integers(*ranges[i])).map(lambda ns: [f"clock_step {ns}"])
    # One step in four goes to the next deadline.
    return _weighted((3, steps), (1, st.just(["clock_step"]))) if to_deadline else steps


# -- migrations ------------------------------------------------------------------------------
def _schema_range(sections=None) -> dict[str, tuple[int, int]]:
    from schemas import SECTIONS

    out = {}
    for schema in sections or SECTIONS:
        d = schema.description
        out[schema.device] = (d.minimum, d.version)
    return out


def versions(devices: Iterable[str] | None = None, sections=None) -> SearchStrategy[dict[str, int]]:
    """A versions map (``{"i8254": 2, ...}``) for a ``migrate`` line's
    ``from=`` or ``to=``: each of ``devices`` (default every section with
    more than one version) either absent (current) or at a version within
    its schema's ``minimum..version``.  Shrinks towards the empty map, i.e.
    current versions everywhere."""
    ranges = _schema_range(sections)
    names = [n for n in (devices if devices is not None else ranges) if n in ranges and ranges[n][0] < ranges[n][1]]
    if not names:
        return st.just({})
    return st.fixed_dictionaries({}, optional={n: st.integers(*ranges[n]).map(lambda v, n=n: ranges[n][1] + ranges[n][0] - v)
                                               for n in names})


def downtimes(max_ns: int = 10 * 10**9) -> SearchStrategy[int]:
    """Host time that passes while the machine is stopped: none, or up to
    ``max_ns`` (10 s by default; the RTC on ``rtc-clock=host`` sees it)."""
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


# -- whole scenarios ---------------------------------------------------------------------------
@st.composite
def _cut(draw, ops: SearchStrategy[Chunk], migrate: SearchStrategy[Chunk]) -> Chunk:
    """A chunk of ``ops`` with a migration somewhere inside it (or after
    it, for a one-line chunk).  Shrinks towards a cut after the first line."""
    lines = list(draw(ops))
    where = draw(st.integers(1, max(1, len(lines) - 1)))
    return lines[:where] + draw(migrate) + lines[where:]


@st.composite
def scenarios(draw, devices: Iterable[str] = DEVICES,
              operations: Mapping[str, SearchStrategy[Chunk]] | SearchStrategy[Chunk] | None = None,
              steps: SearchStrategy[Chunk] | None = None,
              migrations: SearchStrategy[Chunk] | None = None,
              min_chunks: int = 1, max_chunks: int = 16, min_migrations: int = 1,
              intercept: bool = True, with_noise: bool = True, pragma: str | None = None) -> str:
    """A whole scenario as trace text, ready for :func:`vmstate.check.checker.check`
    (or :func:`vmstate.trace.qtest.parse_trace` and a runner).

    - ``devices``: which built-in devices' operations to draw (names of
      :data:`DEVICES`; aliases such as ``pit`` or ``rtc`` are accepted).
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
    """
    from vmstate.strategies import migrations as default_migrations
    from vmstate.strategies import operations as default_operations

    names = device_names(devices)
    if operations is None:
        ops = default_operations(names, with_noise=with_noise)
    elif isinstance(operations, Mapping):
        ops = default_operations(names, with_noise=with_noise, extra=operations) if names or operations else None
    else:
        ops = operations
    if ops is None:
        raise ValueError("scenarios() needs devices or operations")
    steps = steps if steps is not None else time_steps()
    migrate = migrations if migrations is not None else default_migrations()
    # Operations twice as often as steps, steps twice as often as bare
    # migrations; and a driver sequence is often cut by a migration
    # (between a control word and its data bytes, a latch and its reads, an
    # interrupt and its handler's status read), where lost state shows.
    chunk = _weighted((3, _cut(ops, migrate)), (4, ops), (2, steps), (1, migrate))
    chunks = draw(st.lists(chunk, min_size=min_chunks, max_size=max_chunks))
    have = sum(1 for c in chunks for line in c if line.startswith("migrate"))
    for _ in range(max(0, min_migrations - have)):
        where = draw(st.integers(0, len(chunks)))
        chunks.insert(where, draw(migrate))
    lines: list[str] = []
    if pragma:
        lines.append(f"#! {pragma}")
    if intercept:
        lines.append("irq_intercept_in ioapic")
    for c in chunks:
        lines.extend(c)
    return "\n".join(lines) + "\n"
