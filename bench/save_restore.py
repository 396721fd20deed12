"""Whole-machine save and restore: vmstate against hand-written ``struct`` code.

Why: the Description layer derives the wire format from one declarative
table per device, and its generated fast path claims hand-written speed.
This bench holds it to that claim on the machine a migration actually sees:
the ``all-four-devices-busy`` scenario stopped at its ``migrate`` line (PIT
square wave with a latched count half read, HPET enabled with a periodic
timer, RTC with periodic and update interrupts, PM timer armed), written at
every device's current version.

What each side does, per operation:

save (machine -> bytes)
    ours: ``migration.save(machine)``.
    baseline: ``get_state()`` on every device and the clock's time, exactly
    as ours reads them, then ``struct.Struct.pack`` with formats written out
    by hand for each section of that layout: the ``QEVM`` header and the
    configuration section, each FULL section's header (precomputed bytes),
    its payload and subsections, its footer, the EOF marker, and the JSON
    description trailer.  Both sides cache the trailer per machine shape
    (HPET timer count and which subsections are needed) and compute that
    shape on every save; the baseline fills its cache from the schemas'
    JSON on a miss, which the timing never hits (it is not serialization).

restore (bytes -> machine state applied)
    ours: ``migration.apply(migration.decode(data, dest), dest)``: decode,
    validate every rule, run the load conversions, ``set_state`` on every
    device and load the clock.
    baseline: a hand-written reader of the same container (header, machine
    type, each section's header, payload, subsections and footer, EOF, the
    trailer compared with the expected bytes), ``unpack_from`` per section
    with the formats written out by hand, the same validation (field ranges
    inline; the schemas' cross-field rules called directly, since those are
    device invariants and not serialization), the same conversions written
    inline, then the same ``set_state`` calls and clock load.  Like ours, it
    first takes each destination device's state with ``get_state()`` (the
    state a load starts from: fields a stream lacks keep the destination's
    values) and uses it where this layout keeps destination values (the
    HPET's stray comparator, the RTC's reinjection count when its
    subsection is absent).  The row "restore, lean" times a baseline that
    calls ``get_state()`` only for those two devices.

Both sides restore into a destination machine built once (building a
``PcMachine`` is device-model work; its cost is reported on its own).
Before timing, the bench asserts that the baseline writes the very same
bytes as ours and that both restores leave the same device states.

Run: ``python bench/save_restore.py [--number N] [--repeat R]``.  The ratio
ours/baseline is measured in the same run; the target is <= 1.5.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import struct
import sys
import time
import timeit

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from devices.acpi_pm import PmSmbState, PmState  # noqa: E402
from devices.hpet import CFG_ENABLE, TN_FSB_CAP, HpetState, HpetTimerState  # noqa: E402
from devices.i8254 import PitChannelState, PitState  # noqa: E402
from devices.mc146818 import RtcState  # noqa: E402
from devices.pci import PciHostState  # noqa: E402
from devices.pcspk import PcspkState  # noqa: E402
from schemas import SECTIONS  # noqa: E402
from schemas.hpet import HPET, HPET_TIMER, OFFSET, _fixed_bits, pristine  # noqa: E402
from schemas.i8254 import FINAL, I8254, PIT_CHANNEL, _status_byte  # noqa: E402
from schemas.mc146818rtc import MC146818RTC  # noqa: E402
from schemas.piix4_pm import PCI_DEVICE, PIIX4_PM  # noqa: E402
from vmstate.machine import migration
from vmstate.wire import stream  # noqa: E402
from vmstate.machine.pc import PcMachine  # noqa: E402
from vmstate.trace.load import run_to_first_migrate  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "fixtures" / "scenarios" / "all-four-devices-busy.trace"
NS = 1_000_000_000


class Bad(Exception):
    """The baseline's one error: a hand-written reader says less than ours."""


# -- the hand-written layout ---------------------------------------------------------
def _header() -> bytes:
    name = stream.MACHINE_TYPE.encode()
    return b"QEVM" + struct.pack(">IBI", 3, 0x07, len(name)) + name


HEADER = _header()
ORDER = [(s.idstr, s.device, s.description.version) for s in SECTIONS]
SECTION_HEADERS = [struct.pack(">BIB", 0x04, i, len(idstr)) + idstr.encode() + struct.pack(">II", 0, version)
                   for i, (idstr, _, version) in enumerate(ORDER)]
FOOTERS = [struct.pack(">BI", 0x7E, i) for i in range(len(ORDER))]
EOF = b"\x00"


def _sub(name: str, version: int = 1) -> bytes:
    raw = name.encode()
    return bytes([0x05, len(raw)]) + raw + struct.pack(">I", version)


SUB_RTC_LEVEL = _sub("hpet/rtc_irq_level")
SUB_OFFSET = _sub("hpet/offset")
SUB_REINJECT = _sub("mc146818rtc/irq_reinject_on_ack_count")
SUB_MEMHP = _sub("piix4_pm/memhp")

TIMER_S = struct.Struct(">q8xq")
PCIHOST_S = struct.Struct(">I")
HPET_S = struct.Struct(">QQQB")
HPET_TIMER_S = struct.Struct(">BQQQQBq")
U8 = struct.Struct(">B")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
RTC_S = struct.Struct(">128sB28xqq24xIIQQqqQ")
CHANNEL = "iHBBBBBBBBBBqq"
PIT_S = struct.Struct(">I" + CHANNEL * 3 + "q")
PCSPK_S = struct.Struct(">BB")
PM_S = struct.Struct(">i256s16sHHHBBBBBBBBI32sBBBBBBqqHHI2048sI")

_TRAILERS: dict[tuple, bytes] = {}


def _shape(hpet: HpetState, rtc: RtcState) -> tuple:
    return (hpet.num_timers, hpet.rtc_irq_level != 0,
            bool(hpet.config & CFG_ENABLE) and hpet.hpet_offset is not None,
            rtc.irq_reinject_on_ack_count != 0)


def _trailer(shape: tuple, states: list) -> bytes:
    """The JSON description for one machine shape, made once (cache miss only)."""
    trailer = _TRAILERS.get(shape)
    if trailer is None:
        devices = [{"name": s.idstr, "instance_id": 0, **s.description.json(s.description.version, state)}
                   for s, state in zip(SECTIONS, states)]
        text = json.dumps({"page_size": 4096, "devices": devices}, separators=(",", ":")).encode()
        trailer = _TRAILERS[shape] = struct.pack(">BI", 0x06, len(text)) + text
    return trailer


# -- baseline save -----------------------------------------------------------------------
def baseline_save(machine: PcMachine) -> bytes:
    devices = machine.devices
    now = machine.clock.now
    pci = devices["PCIHost"].get_state()
    hpet = devices["hpet"].get_state()
    rtc = devices["mc146818rtc"].get_state()
    pit = devices["i8254"].get_state()
    spk = devices["pcspk"].get_state()
    pm = devices["piix4_pm"].get_state()
    h = SECTION_HEADERS
    f = FOOTERS
    out = [HEADER, h[0], TIMER_S.pack(0, now), f[0],
           h[1], PCIHOST_S.pack(pci.config_reg), f[1],
           h[2], HPET_S.pack(hpet.config, hpet.isr, hpet.hpet_counter, hpet.num_timers)]
    for t in hpet.timer[:hpet.num_timers]:
        out.append(HPET_TIMER_S.pack(t.tn, t.config, t.cmp, t.fsb, t.period, t.wrap_flag, t.expire))
    if hpet.rtc_irq_level != 0:
        out.append(SUB_RTC_LEVEL + U8.pack(hpet.rtc_irq_level))
    if hpet.config & CFG_ENABLE and hpet.hpet_offset is not None:
        out.append(SUB_OFFSET + U64.pack(hpet.hpet_offset))
    out += [f[2], h[3],
            RTC_S.pack(rtc.cmos_data, rtc.cmos_index, rtc.periodic_timer, rtc.next_periodic_time,
                       rtc.irq_coalesced, rtc.period, rtc.base_rtc, rtc.last_update, rtc.offset,
                       rtc.update_timer, rtc.next_alarm_time)]
    if rtc.irq_reinject_on_ack_count != 0:
        out.append(SUB_REINJECT + U16.pack(rtc.irq_reinject_on_ack_count))
    c0, c1, c2 = pit.channels
    out += [f[3], h[4],
            PIT_S.pack(pit.irq_disabled,
                       c0.count, c0.latched_count, c0.count_latched, c0.status_latched, c0.status,
                       c0.read_state, c0.write_state, c0.write_latch, c0.rw_mode, c0.mode, c0.bcd,
                       c0.gate, c0.count_load_time, c0.next_transition_time,
                       c1.count, c1.latched_count, c1.count_latched, c1.status_latched, c1.status,
                       c1.read_state, c1.write_state, c1.write_latch, c1.rw_mode, c1.mode, c1.bcd,
                       c1.gate, c1.count_load_time, c1.next_transition_time,
                       c2.count, c2.latched_count, c2.count_latched, c2.status_latched, c2.status,
                       c2.read_state, c2.write_state, c2.write_latch, c2.rw_mode, c2.mode, c2.bcd,
                       c2.gate, c2.count_load_time, c2.next_transition_time,
                       c0.next_transition_time),
            f[4], h[5], PCSPK_S.pack(spk.data_on, spk.dummy_refresh_clock), f[5], h[6]]
    smb = pm.smb
    out += [PM_S.pack(pm.pci_version_id, pm.config, pm.irq_state, pm.pm1_sts, pm.pm1_en, pm.pm1_cnt,
                      pm.apmc, pm.apms, smb.smb_stat, smb.smb_ctl, smb.smb_cmd, smb.smb_addr,
                      smb.smb_data0, smb.smb_data1, smb.smb_index, smb.smb_data, smb.smb_auxctl,
                      smb.smb_blkdata, smb.i2c_enable, smb.op_done, smb.in_i2c_block_read,
                      smb.start_transaction_on_status_read, pm.timer_expire, pm.overflow_time,
                      pm.gpe_sts, pm.gpe_en, pm.hotplug_select, pm.pcihp, pm.acpi_index),
            SUB_MEMHP, U32.pack(pm.memhp_selector), f[6], EOF]
    shape = _shape(hpet, rtc)
    trailer = _TRAILERS.get(shape)
    if trailer is None:
        trailer = _trailer(shape, [None, pci, hpet, rtc, pit, spk, pm])
    out.append(trailer)
    return b"".join(out)


# -- baseline restore --------------------------------------------------------------------
def _rules(description) -> tuple[list, list]:
    plain = [c.rule for c in description.checks if not c.uses_aux]
    with_aux = [c.rule for c in description.checks if c.uses_aux]
    return plain, with_aux


HPET_RULES, HPET_AUX_RULES = _rules(HPET)
TIMER_RULES, _ = _rules(HPET_TIMER)
OFFSET_RULES, OFFSET_AUX_RULES = _rules(OFFSET)
RTC_RULES, _ = _rules(MC146818RTC)
CHANNEL_RULES, _ = _rules(PIT_CHANNEL)
PIT_RULES, PIT_AUX_RULES = _rules(I8254)
PCI_RULES, _ = _rules(PCI_DEVICE)
PM_RULES, _ = _rules(PIIX4_PM)


def _all(rules, *args) -> None:
    for rule in rules:
        if not rule(*args):
            raise Bad(rule)


def _subsection(buf: bytes, off: int, prefix: bytes) -> tuple[bytes | None, int]:
    """The name of a subsection at ``off`` (after checking its version is 1)
    and the offset of its payload, or None when none starts there."""
    if off + 2 > len(buf) or buf[off] != 0x05:
        return None, off
    n = buf[off + 1]
    name = buf[off + 2:off + 2 + n]
    if not name.startswith(prefix):
        return None, off
    if U32.unpack_from(buf, off + 2 + n)[0] != 1:
        raise Bad("subsection version")
    return name, off + 6 + n


def _load_timer(buf, off, machine, now, dest):
    ticks, clock = TIMER_S.unpack_from(buf, off)
    if not 0 <= clock < 1 << 63:
        raise Bad("cpu_clock_offset")
    return clock, off + TIMER_S.size


def _load_pcihost(buf, off, machine, now, dest):
    return PciHostState(PCIHOST_S.unpack_from(buf, off)[0]), off + PCIHOST_S.size


def _load_hpet(buf, off, machine, now, dest):
    config, isr, counter, n = HPET_S.unpack_from(buf, off)
    off += HPET_S.size
    if config >= 4 or not 3 <= n <= 32:
        raise Bad("hpet")
    timers = []
    for _ in range(n):
        tn, tconfig, cmp, fsb, period, wrap, expire = HPET_TIMER_S.unpack_from(buf, off)
        off += HPET_TIMER_S.size
        if not _fixed_bits(tconfig) or wrap > 1:
            raise Bad("hpet timer")
        timer = HpetTimerState(tn, tconfig, cmp, fsb, period, wrap, expire)
        _all(TIMER_RULES, timer)
        timers.append(timer)
    dest = dest or machine.devices["hpet"].get_state()
    state = HpetState(config, isr, counter, n, timers, 0, dest.hpet_offset)
    aux = {"now": now}
    offset_loaded = False
    while True:
        name, at = _subsection(buf, off, b"hpet/")
        if name == b"hpet/rtc_irq_level":
            state.rtc_irq_level = buf[at]
            if state.rtc_irq_level > 1:
                raise Bad("rtc_irq_level")
            off = at + 1
        elif name == b"hpet/offset":
            state.hpet_offset = U64.unpack_from(buf, at)[0]
            _all(OFFSET_AUX_RULES, state, aux)
            offset_loaded = True
            off = at + 8
        elif name is None:
            break
        else:
            raise Bad(name)
    _all(HPET_RULES, state)
    _all(HPET_AUX_RULES, state, aux)
    if not offset_loaded and config & CFG_ENABLE:
        state.hpet_offset = None
    own = dest.timer[:dest.num_timers] + [dest.stray_timer]
    state.stray_timer = None if n >= 32 else own[n] if n < len(own) and own[n] is not None else pristine(n)
    state.msi = bool(timers[0].config & TN_FSB_CAP)
    return state, off


def _load_rtc(buf, off, machine, now, dest):
    (cmos, index, periodic, next_periodic, coalesced, period, base, last, offset, update,
     alarm) = RTC_S.unpack_from(buf, off)
    off += RTC_S.size
    if index >= 128 or not 0 <= offset < NS:
        raise Bad("rtc")
    state = RtcState(cmos, index, periodic, next_periodic, coalesced, period, base, last, offset,
                     update, alarm)
    name, at = _subsection(buf, off, b"mc146818rtc/")
    if name == b"mc146818rtc/irq_reinject_on_ack_count":
        state.irq_reinject_on_ack_count = U16.unpack_from(buf, at)[0]
        if state.irq_reinject_on_ack_count > 20:
            raise Bad("irq_reinject_on_ack_count")
        off = at + 2
    elif name is None:
        state.irq_reinject_on_ack_count = (dest or machine.devices["mc146818rtc"].get_state()).irq_reinject_on_ack_count
    else:
        raise Bad(name)
    _all(RTC_RULES, state)
    return state, off


def _load_pit(buf, off, machine, now, dest):
    v = PIT_S.unpack_from(buf, off)
    off += PIT_S.size
    irq_disabled, final = v[0], v[43]
    if irq_disabled > 1:
        raise Bad("irq_disabled")
    channels = []
    for i in range(1, 43, 14):
        ch = PitChannelState(*v[i:i + 14])
        if not (1 <= ch.count <= 0x10000 and ch.count_latched <= 3 and ch.status_latched <= 1
                and _status_byte(ch.status) and ch.read_state <= 4 and ch.write_state <= 4
                and ch.rw_mode <= 3 and ch.mode <= 7 and ch.bcd <= 1 and ch.gate <= 1):
            raise Bad("pit channel")
        _all(CHANNEL_RULES, ch)
        channels.append(ch)
    state = PitState(channels, irq_disabled)
    _all(PIT_RULES, state)
    _all(PIT_AUX_RULES, state, {FINAL: final})
    ch0 = channels[0]
    state.irq_timer = ch0.next_transition_time if ch0.next_transition_time != -1 and not irq_disabled else -1
    return state, off


def _load_pcspk(buf, off, machine, now, dest):
    data_on, refresh = PCSPK_S.unpack_from(buf, off)
    if data_on > 1 or refresh not in (0, 0x10):
        raise Bad("pcspk")
    return PcspkState(data_on, refresh), off + PCSPK_S.size


def _load_pm(buf, off, machine, now, dest):
    (version, config, irq_state, sts, en, cnt, apmc, apms, stat, ctl, cmd, addr, d0, d1, index, data,
     auxctl, blkdata, i2c, done, block, start, timer, overflow, gpe_sts, gpe_en, select, pcihp,
     acpi_index) = PM_S.unpack_from(buf, off)
    off += PM_S.size
    if not (1 <= version <= 2 and index < 32 and i2c <= 1 and done <= 1 and block <= 1 and start <= 1
            and timer >= -1 and overflow >= 0 and overflow % 0x800000 == 0):
        raise Bad("piix4_pm")
    smb = PmSmbState(stat, ctl, cmd, addr, d0, d1, index, data, auxctl, blkdata, i2c, done, block, start)
    state = PmState(sts, en, cnt, overflow, timer, gpe_sts, gpe_en, config, version, irq_state, apmc, apms,
                    smb, select, pcihp, acpi_index)
    _all(PCI_RULES, state)
    name, at = _subsection(buf, off, b"piix4_pm/")
    if name != b"piix4_pm/memhp":
        raise Bad("memhp")
    state.memhp_selector = U32.unpack_from(buf, at)[0]
    _all(PM_RULES, state)
    return state, at + 4


LOADERS = {b"timer": _load_timer, b"PCIHost": _load_pcihost, b"hpet": _load_hpet,
           b"mc146818rtc": _load_rtc, b"i8254": _load_pit, b"pcspk": _load_pcspk,
           b"0000:00:01.3/piix4_pm": _load_pm}
DEVICES = {idstr.encode(): device for idstr, device, _ in ORDER}
VERSIONS = {idstr.encode(): version for idstr, _, version in ORDER}


def baseline_restore(data: bytes, machine: PcMachine, fetch_all: bool = True) -> None:
    """``fetch_all``: take every destination device's state first, as vmstate
    does (the state a load starts from); without it, only the states a
    load at this layout keeps values from."""
    buf = data
    if buf[:len(HEADER)] != HEADER:
        raise Bad("header or machine type")
    off = len(HEADER)
    now = machine.clock.now
    loaded = []
    ids = set()
    while True:
        kind = buf[off]
        if kind == 0x00:
            off += 1
            break
        if kind != 0x04:
            raise Bad("section type")
        section_id, n = struct.unpack_from(">IB", buf, off + 1)
        idstr = buf[off + 6:off + 6 + n]
        instance, version = struct.unpack_from(">II", buf, off + 6 + n)
        loader = LOADERS.get(idstr)
        if loader is None or instance != 0 or version != VERSIONS[idstr] or section_id in ids:
            raise Bad(idstr)
        ids.add(section_id)
        device = DEVICES[idstr]
        dest = machine.devices[device].get_state() if fetch_all and device is not None else None
        state, off = loader(buf, off + 14 + n, machine, now, dest)
        if idstr == b"timer":
            now = state
        if struct.unpack_from(">BI", buf, off) != (0x7E, section_id):
            raise Bad("footer")
        off += 5
        loaded.append((idstr, state))
    if len(loaded) != len(ORDER):
        raise Bad("sections")
    states = dict(loaded)
    if buf[off:] != _TRAILERS.get(_shape(states[b"hpet"], states[b"mc146818rtc"])):
        raise Bad("trailer")
    devices = machine.devices
    for idstr, state in loaded:
        if idstr == b"timer":
            machine.clock.load(state)
    for idstr, state in loaded:
        if idstr != b"timer":
            devices[DEVICES[idstr]].set_state(state)


# -- the bench -----------------------------------------------------------------------------
def busy_machine() -> PcMachine:
    """The all-four-devices-busy scenario stopped at its migrate line."""
    return run_to_first_migrate(SCENARIO.read_text())


def ours_restore(data: bytes, machine: PcMachine) -> None:
    migration.apply(migration.decode(data, machine), machine)


def _states(machine: PcMachine) -> dict:
    return {"clock": machine.clock.now, **{name: dev.get_state() for name, dev in machine.devices.items()},
            "pending": machine.clock.deadline()}


def verify(machine: PcMachine) -> bytes:
    ours = migration.save(machine)
    theirs = baseline_save(machine)
    assert theirs == ours, "the baseline does not write the bytes vmstate writes"
    a, b = PcMachine(**machine.options), PcMachine(**machine.options)
    ours_restore(ours, a)
    baseline_restore(ours, b)
    assert _states(a) == _states(b), "the baseline restore does not leave the states vmstate leaves"
    c = PcMachine(**machine.options)
    baseline_restore(ours, c, fetch_all=False)
    assert _states(a) == _states(c), "the lean baseline restore does not leave the states vmstate leaves"
    return ours


# CPU time of this process: other processes sharing the cores (tests, other
# benches) then slow neither side, where wall time would charge them to
# whichever batch they happened to overlap.
TIMER = time.process_time


def measure(fn, number: int, repeat: int) -> tuple[float, float]:
    """Per-call seconds: (min, median) over ``repeat`` batches of ``number``."""
    times = [t / number for t in timeit.Timer(fn, timer=TIMER).repeat(number=number, repeat=repeat)]
    return min(times), statistics.median(times)


def compare(ours, theirs, number: int, repeat: int) -> tuple[float, float, float]:
    """Ours and the baseline timed in alternating batches, so that load from
    other processes hits both alike: (ours' min, baseline's min, median of
    the per-batch ratios), seconds per call."""
    mine, base, ratios = [], [], []
    for _ in range(repeat):
        a = timeit.Timer(ours, timer=TIMER).timeit(number) / number
        b = timeit.Timer(theirs, timer=TIMER).timeit(number) / number
        mine.append(a)
        base.append(b)
        ratios.append(a / b)
    return min(mine), min(base), statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    machine = busy_machine()
    data = verify(machine)
    ours_dest = PcMachine(**machine.options)
    base_dest = PcMachine(**machine.options)
    rows = {
        "save": (lambda: migration.save(machine), lambda: baseline_save(machine)),
        "restore": (lambda: ours_restore(data, ours_dest), lambda: baseline_restore(data, base_dest)),
        "restore, lean": (lambda: ours_restore(data, ours_dest),
                          lambda: baseline_restore(data, base_dest, fetch_all=False)),
        "save+restore": (lambda: ours_restore(migration.save(machine), ours_dest),
                         lambda: baseline_restore(baseline_save(machine), base_dest)),
    }
    print(f"busy machine: {len(data)} bytes ({len(_TRAILERS[next(iter(_TRAILERS))])} of them JSON trailer)")
    print(f"{'':14}{'ours us':>10}{'struct us':>11}{'ratio of mins':>15}{'median ratio':>14}")
    for name, (ours, theirs) in rows.items():
        o_min, t_min, ratio = compare(ours, theirs, args.number, args.repeat)
        print(f"{name:14}{o_min * 1e6:10.1f}{t_min * 1e6:11.1f}{o_min / t_min:15.2f}{ratio:14.2f}")
    fresh, _ = measure(lambda: PcMachine(**machine.options), args.number, args.repeat)
    full, _ = measure(lambda: migration.restore(data, **machine.options), args.number, args.repeat)
    print(f"PcMachine() alone: {fresh * 1e6:.1f} us; migration.restore into a fresh machine: {full * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
