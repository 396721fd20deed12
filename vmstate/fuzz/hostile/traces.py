"""What an attacker (or a careless editor) does to a trace: bytes that are
not UTF-8, NUL, carriage returns and form feeds, numbers too large or
spelled in other scripts, pragmas and migrate options nobody takes, steps to
the end of time, lines cut short."""
from __future__ import annotations

import random
from pathlib import Path

from vmstate.core.paths import FIXTURES

#: A hostile trace starts from the first lines of a scenario: enough for
#: every kind of command, few enough that one runs in milliseconds.
LINES = 40

_WORDS = ("0x", "-1", "18446744073709551616", "9223372036854775807", "4611686018427387904", "²", "٣", "0x1g",
          "", " ", "\x00", "\r", "\x0c", "from=i8254:²", "to=bogus:1", "downtime=-5", "downtime=9223372036854775807",
          "from=hpet:9", "#!", "#! rtc-base=1900-01-01", "#! rtc-clock=bogus", "#! speed=fast")
_LINES = ("clock_step 9223372036854775807", "clock_step 4611686018427387903", "clock_set 4611686018427387904",
          "clock_step", "migrate from=i8254:2,hpet:1 to=mc146818rtc:2", "migrate to=i8254:1", "outb 0x43",
          "writeq 0xfed00000 0xffffffffffffffff", "irq_intercept_out ioapic", "migrate downtime=0x7fffffffffffffff",
          "#! rtc-base=2200-01-01T00:00:00", "#! rtc-base=1969-12-31T23:59:59", "readq 0xfed000f0")
_BYTES = (b"\xff", b"\xc3", b"\xe2\x82", b"\x00", b"\r", b"\x0c", b"\xed\xa0\x80")


def trace_seeds(root: Path = FIXTURES) -> list[bytes]:
    """The first :data:`LINES` lines of each scenario."""
    return [b"\n".join(p.read_bytes().split(b"\n")[:LINES]) + b"\n"
            for p in sorted((root / "scenarios").glob("*.trace"))]


def hostile_trace(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes]:
    """One hostile trace: (class, bytes)."""
    lines = rng.choice(seeds).split(b"\n")
    kind = rng.choices(("bytes", "word", "line", "cut", "pragma-late"), (4, 5, 5, 1, 1))[0]
    for _ in range(rng.choice((1, 1, 2, 3))):
        i = rng.randrange(len(lines))
        if kind == "bytes":
            at = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:at] + rng.choice(_BYTES) + lines[i][at:]
        elif kind == "word":
            words = lines[i].split(b" ")
            words[rng.randrange(len(words))] = rng.choice(_WORDS).encode()
            lines[i] = b" ".join(words)
        elif kind == "line":
            lines.insert(i, rng.choice(_LINES).encode())
        elif kind == "cut":
            lines = lines[:i] + [lines[i][:rng.randrange(len(lines[i]) + 1)]]
        else:
            lines.insert(i, b"#! rtc-clock=host")
    return f"trace-{kind}", b"\n".join(lines)
