"""The timer devices' raw fields in the units a person thinks in.

A stream holds absolute nanoseconds, counts and register bytes; the
question a user brings is "when does it fire", "what would the guest read",
"what time is it".  :func:`units` answers per field path (QEMU's, as
``inspect --json`` keys them) from the section's own values and the
stream's virtual time; with a machine restored from the stream it adds
what only the model knows (a PIT count as a read would return it now).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from devices.i8254 import PIT_FREQ, RW_LSB, RW_MSB, RW_WORD0, RW_WORD1, PitChannelState, channel_count, \
    next_transition
from vmstate.core.clock import NANOSECONDS_PER_SECOND as NS

_HPET_TICK_NS = 10
_PM_FREQ = 3_579_545


def duration(ns: int) -> str:
    """``1.25 ms``, ``3 s``, ``840 ns``: three significant digits."""
    for unit, size in (("s", NS), ("ms", 10**6), ("us", 10**3)):
        if abs(ns) >= size:
            return f"{ns / size:.3g} {unit}"
    return f"{ns} ns"


def deadline(value: int, now: int | None, idle: int | None = -1) -> str:
    """A timer's expiry: idle, or when it fires relative to now."""
    if value == idle:
        return "idle"
    if now is None:
        return f"at {value} ns"
    if value > now:
        return f"fires in {duration(value - now)} (at {value} ns)"
    return f"due {duration(now - value)} ago (at {value} ns)"


def moment(value: int, now: int | None) -> str:
    if now is None:
        return f"at {value} ns"
    return f"{duration(now - value)} ago" if value <= now else f"{duration(value - now)} ahead"


def iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{seconds} s from 1970"


_ACCESS = {RW_LSB: "LSB", RW_MSB: "MSB", RW_WORD0: "LSB then MSB", RW_WORD1: "LSB then MSB"}


def _pit(values: dict, now: int | None) -> dict[str, str]:
    out = {}
    for i in range(3):
        p = f"channels[{i}]."
        if p + "count" not in values:
            continue
        ch = PitChannelState(**{k[len(p):]: v for k, v in values.items() if k.startswith(p)
                                and k[len(p):] in PitChannelState.__dataclass_fields__})
        count = ch.count
        out[p + "count"] = f"reload {count} ({count / PIT_FREQ * 1e3:.4g} ms a period)"
        if now is not None and ch.rw_mode:
            edge = next_transition(ch, now)
            out[p + "count_load_time"] = (f"loaded {moment(ch.count_load_time, now)}; a read now gives "
                                          f"{channel_count(ch, now):#06x}"
                                          + (f", next output edge in {duration(edge - now)}" if edge > 0 else ""))
        elif ch.count_load_time:
            out[p + "count_load_time"] = moment(ch.count_load_time, now)
        if ch.count_latched:
            half = {RW_LSB: "LSB to read", RW_MSB: "MSB to read", RW_WORD0: "both bytes to read",
                    RW_WORD1: "MSB still to read"}.get(ch.count_latched, f"state {ch.count_latched}")
            out[p + "count_latched"] = f"latched count {ch.latched_count:#06x}, {half}"
        if ch.status_latched:
            out[p + "status_latched"] = f"status {ch.status:#04x} latched, to read"
        if ch.write_state == RW_WORD1:
            out[p + "write_state"] = f"half-written reload: LSB {ch.write_latch:#04x} written, MSB to come"
        if ch.read_state == RW_WORD1:
            out[p + "read_state"] = "between the bytes of a count: MSB next"
        if ch.rw_mode:
            out[p + "rw_mode"] = f"access {_ACCESS.get(ch.rw_mode, ch.rw_mode)}, mode {ch.mode}"
        if i == 0 and "channels[0].next_transition_time" in values:
            out[p + "next_transition_time"] = deadline(values[p + "next_transition_time"], now)
    return out


def _hpet(values: dict, now: int | None) -> dict[str, str]:
    out = {}
    counter = values.get("hpet_counter")
    if counter is not None:
        out["hpet_counter"] = f"{counter} ticks = {duration(counter * _HPET_TICK_NS)}"
    offset = values.get("hpet/offset.hpet_offset")
    if offset is not None and now is not None:
        out["hpet/offset.hpet_offset"] = (f"counter now {((now + offset) & (1 << 64) - 1) // _HPET_TICK_NS:#x} "
                                         f"ticks")
    for path, value in values.items():
        if re.fullmatch(r"timer\[\d+\]\.qemu_timer", path):
            out[path] = deadline(value, now)
        elif re.fullmatch(r"timer\[\d+\]\.period", path) and value:
            out[path] = f"every {duration(value * _HPET_TICK_NS)}"
        elif re.fullmatch(r"timer\[\d+\]\.config", path):
            bits = [name for bit, name in ((2, "enabled"), (3, "periodic"), (1, "level"), (8, "32-bit"))
                    if value >> bit & 1]
            out[path] = f"{', '.join(bits) or 'disabled'}, GSI {value >> 9 & 0x1F}"
    if "config" in values:
        out["config"] = ("counter running" if values["config"] & 1 else "halted") + \
                        (", legacy replacement" if values["config"] & 2 else "")
    return out


def _bcd(value: int, binary: bool) -> int:
    return value if binary else (value >> 4) * 10 + (value & 0xF)


def _rtc(values: dict, now: int | None) -> dict[str, str]:
    out = {}
    cmos = values.get("cmos_data")
    if isinstance(cmos, (bytes, bytearray)) and len(cmos) >= 14:
        b = cmos[11]
        binary, h24 = bool(b & 0x04), bool(b & 0x02)
        hour = cmos[4] & 0x7F
        hour = _bcd(hour, binary)
        if not h24:
            hour = hour % 12 + (12 if cmos[4] & 0x80 else 0)
        out["cmos_data"] = (f"CMOS time 20{_bcd(cmos[9], binary):02d}-{_bcd(cmos[8], binary):02d}-"
                            f"{_bcd(cmos[7], binary):02d}T{hour:02d}:{_bcd(cmos[2], binary):02d}:"
                            f"{_bcd(cmos[0], binary):02d} ({'binary' if binary else 'BCD'}, "
                            f"{'24' if h24 else '12'}-hour), alarm {cmos[5]:02x}:{cmos[3]:02x}:{cmos[1]:02x}")
    if "base_rtc" in values:
        out["base_rtc"] = f"{iso(values['base_rtc'])} at the last update"
    for path in ("periodic_timer", "update_timer"):
        if path in values:
            out[path] = deadline(values[path], now)
    if "next_alarm_time" in values:
        out["next_alarm_time"] = deadline(values["next_alarm_time"], now, idle=None)
    if values.get("period"):
        out["period"] = f"{values['period']} ticks of 32768 Hz = {duration(values['period'] * NS // 32768)}"
    return out


def _pm(values: dict, now: int | None, prefix: str) -> dict[str, str]:
    out = {}
    timer, overflow = f"{prefix}tmr.timer", f"{prefix}tmr.overflow_time"
    if timer in values:
        out[timer] = deadline(values[timer], now)
    if overflow in values:
        at = values[overflow] * NS // _PM_FREQ
        text = f"bit 23 toggles at {values[overflow]:#x} ticks ({moment(at, now)})"
        if now is not None:
            text += f"; the PM timer reads {now * _PM_FREQ // NS & 0xFFFFFF:#08x} now"
        out[overflow] = text
    return out


def units(idstr: str, values: dict[str, Any], now: int | None) -> dict[str, str]:
    """Field path -> what its value means, for the timer sections (and the
    q35 LPC's PM timer); {} for other sections."""
    if idstr == "i8254":
        return _pit(values, now)
    if idstr == "hpet":
        return _hpet(values, now)
    if idstr == "mc146818rtc":
        return _rtc(values, now)
    if idstr.endswith("piix4_pm"):
        return _pm(values, now, "ar.")
    if idstr.endswith("ICH9LPC"):
        return _pm(values, now, "pm.acpi_regs.")
    if idstr == "timer" and "cpu_clock_offset" in values:
        return {"cpu_clock_offset": f"virtual time {duration(values['cpu_clock_offset'])}"}
    return {}
