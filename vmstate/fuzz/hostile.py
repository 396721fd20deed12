"""Hostile streams: what restoring an attacker's bytes may and may not do.

A migration stream comes from outside, so every byte of it is hostile.  For
ANY input, :func:`migration.restore` may only succeed or raise a
:class:`StreamError` that names a byte offset; it must not raise anything
else, run for long, allocate more than :data:`ALLOCATION_BOUND`, or change
the destination (not even its virtual clock) when it refuses.  A stream it
accepts must give a machine that saves again.

:func:`probe` checks one input against those rules; :func:`campaign` feeds it
mutations of valid streams saved from busy machines (the scenarios run up to
their first ``migrate`` line, and QEMU 7.2's own device sections) and
arbitrary bytes, and keeps one small input per kind of refusal as a
regression corpus (``fixtures/hostile/``).
"""
from __future__ import annotations

import copy
import gc
import gzip
import json
import random
import signal
import struct
import time
import tracemalloc
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from schemas import by_idstr
from vmstate.machine import migration
from vmstate.wire import stream
from vmstate.wire.markers import EOF_MARKER, FULL
from vmstate.wire.table import Leaf
from vmstate.core.paths import FIXTURES
from vmstate.machine.pc import PcMachine
from vmstate.present import Progress, console
from vmstate.trace.load import run_to_first_migrate
from vmstate.core.errors import StreamError, UsageError

CORPUS = FIXTURES / "hostile"
# A restore keeps at most a copy of the input, the destination's states and
# the parsed JSON description (itself bounded by stream.MAX_DESCRIPTION) on
# top of what it would hold for a valid stream: about 0.5 MB under
# tracemalloc for the scenarios' 69 KB streams.  A count or a length that
# lies must not push it past this.
ALLOCATION_BOUND = 4 << 20
# A valid stream restores in a few milliseconds; a restore still running
# after this long is looping on something the stream said.
DEADLINE_SECONDS = 2.0
CORPUS_CAP = 160
# What a long campaign may add to the memory Python holds after its first
# WARM_UP inputs: caches keyed on what a stream brings must be bounded.
RETAINED_BOUND = 32 << 20
WARM_UP = 2000
# Inputs larger than this are kept gzip-compressed (they carry QEMU's JSON
# description, most of a stream's bytes).
PLAIN_LIMIT = 16 << 10


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


# -- one input -----------------------------------------------------------------------
@dataclass
class Outcome:
    """What restoring one input did: ``error`` is the typed refusal (None
    when it restored), ``violation`` names a broken rule (None when all
    held)."""

    error: StreamError | None = None
    violation: str | None = None
    detail: str = ""
    peak: int = 0
    seconds: float = 0.0

    @property
    def signature(self) -> tuple | None:
        if self.error is None:
            return None
        return type(self.error).__name__, self.error.offset, self.error.path


def snapshot(machine) -> dict:
    """The destination as a guest could tell it apart: every device's state
    and the virtual clock, copied so that later changes cannot alias it."""
    return copy.deepcopy(machine.get_state())


def probe(data: bytes, destination, before: dict | None = None, *, measure: bool = True,
          seconds: float = DEADLINE_SECONDS, bound: int = ALLOCATION_BOUND) -> Outcome:
    """Restore ``data`` into ``destination`` and judge what happened.
    ``before`` is the destination's :func:`snapshot` when the caller has it
    already; ``measure`` traces allocations (a restore runs several times
    slower under tracemalloc)."""
    if before is None:
        before = snapshot(destination)
    out = Outcome()
    started = tracemalloc.is_tracing()
    if measure:
        if not started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
    clock = time.perf_counter()
    try:
        with deadline(seconds):
            migration.restore(data, destination)
    except Hang:
        out.violation, out.detail = "hang", f"still running after {seconds} s"
    except StreamError as err:
        out.error = err
    except Exception as err:  # noqa: BLE001 - anything untyped is what we are looking for
        out.violation = "untyped"
        out.detail = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-6:])
    finally:
        out.seconds = time.perf_counter() - clock
        if measure:
            out.peak = tracemalloc.get_traced_memory()[1] - base
            if not started:
                tracemalloc.stop()
    if out.violation is None and out.error is not None and out.error.offset is None:
        out.violation, out.detail = "no offset", f"{type(out.error).__name__}: {out.error}"
    if out.violation is None and measure and out.peak > bound:
        out.violation, out.detail = "allocation", f"peak {out.peak} bytes > {bound}"
    if out.error is not None or out.violation is not None:
        if destination.get_state() != before:
            detail = f"{type(out.error).__name__}: {out.error}" if out.error else out.detail
            out.violation, out.detail = "destination changed", detail
    elif out.violation is None:
        try:
            migration.save(destination)
        except Exception as err:  # noqa: BLE001
            out.violation, out.detail = "unsaveable", f"restored, then save raised {type(err).__name__}: {err}"
    return out


# -- valid streams and where their bytes are -----------------------------------------
# A value a mutation can make lie is a Leaf of the stream's layout: a field
# of a section (by its description) or a length or count of the framing.
def read_value(leaf: Leaf, data: bytes) -> int:
    return struct.unpack_from(">" + leaf.entry.kind.fmt, data, leaf.offset)[0]


def write_value(leaf: Leaf, data: bytes, value: int) -> bytes:
    kind = leaf.entry.kind
    bits = 8 * kind.size
    value &= (1 << bits) - 1
    if kind.lo < 0 and value >> (bits - 1):
        value -= 1 << bits
    return data[:leaf.offset] + struct.pack(">" + kind.fmt, value) + data[leaf.offset + kind.size:]


def bounds(leaf: Leaf) -> tuple[int, int]:
    """The values a field's bytes can hold (a bool is a byte)."""
    kind = leaf.entry.kind
    return (kind.lo, kind.hi) if kind.lo < 0 else (0, (1 << 8 * kind.size) - 1)


def layout(data: bytes) -> stream.Layout:
    """The layout of a valid stream, or of its device sections up to the
    first section that is not one (QEMU's RAM)."""
    return stream.layout(data, lambda idstr: getattr(by_idstr(idstr), "description", None))


@dataclass
class Seed:
    """A valid stream, the machine options it restores on, and a busy
    machine to restore it into."""

    name: str
    data: bytes
    options: dict
    machine: Any
    layout: stream.Layout = None

    def __post_init__(self):
        self.layout = layout(self.data)


def _run_to_migrate(path: Path):
    machine = run_to_first_migrate(path.read_text())
    return machine, dict(machine.options)


def qemu_device_sections(data: bytes) -> bytes:
    """QEMU's own stream cut down to what a device-state stream holds: its
    header and configuration, its FULL sections of devices vmstate models
    (without ``timer``: under qtest QEMU's devices run on the qtest clock,
    which that section does not carry), and EOF."""
    (n,) = struct.unpack_from(">I", data, 9)
    out = [data[:13 + n]]
    for schema_idstr in ("PCIHost", "hpet", "mc146818rtc", "i8254", "pcspk", "0000:00:01.3/piix4_pm"):
        name = schema_idstr.encode()
        at = data.find(bytes([len(name)]) + name)
        while at >= 0 and data[at - 5] != FULL:
            at = data.find(bytes([len(name)]) + name, at + 1)
        (section_id,) = struct.unpack_from(">I", data, at - 4)
        end = data.find(b"\x7e" + struct.pack(">I", section_id), at) + 5
        out.append(data[at - 5:end])
    out.append(bytes([EOF_MARKER]))
    return b"".join(out)


OLD_VERSIONS = ({"mc146818rtc": 1}, {"mc146818rtc": 2}, {"hpet": 1, "i8254": 2})


def seeds(root: Path = FIXTURES, scenarios: int | None = None) -> list[Seed]:
    """Valid streams from busy machines: each scenario run up to its first
    ``migrate`` (the first ``scenarios`` of them, sorted; the first also
    at older versions), and each real
    QEMU stream's device sections, restored into a machine that ran the
    same trace."""
    found = []
    for path in sorted((root / "scenarios").glob("*.trace"))[:scenarios]:
        machine, options = _run_to_migrate(path)
        found.append(Seed(path.stem, migration.save(machine), options, machine))
    # The first scenario at older versions too, for the conversions a load
    # of an old stream runs (the RTC's time re-based on its CMOS bytes).
    first = found[0] if found else None
    for versions in OLD_VERSIONS if first else ():
        name = ",".join(f"{k}:{v}" for k, v in versions.items())
        found.append(Seed(f"{first.name}@{name}", migration.save(first.machine, versions), first.options,
                          first.machine))
    for path in sorted((root / "streams").glob("*.bin")):
        machine, options = _run_to_migrate(path.with_suffix(".trace"))
        found.append(Seed(path.stem, qemu_device_sections(path.read_bytes()), options, machine))
    return found


def destination_of(pool: list[Seed], i: int) -> tuple[str, int]:
    """Where seed ``i``'s mutations are restored: into the next seed's busy
    machine, so that "unchanged" is about a machine other than the
    stream's; a stream without a ``timer`` section (QEMU's device sections)
    is on the destination's clock, and only its own machine is at that
    time."""
    if any(s.idstr == "timer" for s in pool[i].layout.sections):
        return "other", (i + 1) % len(pool)
    return "own", i


# -- mutations ------------------------------------------------------------------------
def _offset(rng: random.Random, seed: Seed, data: bytes) -> int:
    """An offset, most often among the fields and framing rather than in
    the JSON description that makes up most of a stream."""
    end = min(seed.layout.binary_end or len(data), len(data))
    return rng.randrange(end) if end and rng.random() < 0.85 else rng.randrange(max(len(data), 1))


def lies(true: int, size: int, rng: random.Random) -> list[int]:
    top = (1 << (8 * size)) - 1
    return [0, 1, true - 1, true + 1, top, top >> 1, top >> 1 | 1 << (8 * size - 1), rng.randrange(top + 1)]


def field_values(leaf: Leaf, rng: random.Random) -> list[int]:
    """Values to put in a field: its wire format's extremes (a bool is a
    byte) and, when it has a rule, the values just outside what it accepts."""
    kind = leaf.entry.kind
    lo, hi = bounds(leaf)
    values = [lo, hi, 0, -1, 1, rng.randint(lo, hi)]
    valid = leaf.entry.valid
    if isinstance(valid, range):
        values += [valid.start - 1, valid.stop, valid.stop - 1 + rng.randint(1, 1 << 16)]
    elif isinstance(valid, frozenset):
        values += [max(valid) + 1, min(valid) - 1, rng.choice(sorted(valid)) ^ (1 << rng.randrange(8 * kind.size))]
    return values


def truncate(rng, seed, data):
    return data[:_offset(rng, seed, data)]


def bitflip(rng, seed, data):
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        at = _offset(rng, seed, data)
        if at < len(out):
            out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def byte(rng, seed, data):
    at = _offset(rng, seed, data)
    if at >= len(data):
        return data
    return data[:at] + bytes([rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))]) + data[at + 1:]


def lie(rng, seed, data):
    sites = [s for s in seed.layout.lengths if s.offset + s.size <= len(data)]
    if not sites:
        return bitflip(rng, seed, data)
    site = rng.choice(sites)
    return write_value(site, data, rng.choice(lies(read_value(site, data), site.size, rng)))


def out_of_range(rng, seed, data):
    sites = [s for s in seed.layout.values if s.offset + s.size <= len(data)]
    if not sites:
        return byte(rng, seed, data)
    site = rng.choice(sites)
    return write_value(site, data, rng.choice(field_values(site, rng)))


def _spans(seed) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in seed.layout.sections]


def duplicate(rng, seed, data):
    spans = _spans(seed)
    if not spans:
        return data + data[8:]
    a, b = rng.choice(spans)
    at = rng.choice([s for s, _ in spans] + [spans[-1][1]])
    return data[:at] + data[a:b] + data[at:]


def reorder(rng, seed, data):
    spans = _spans(seed)
    if len(spans) < 2:
        return truncate(rng, seed, data)
    i, j = sorted(rng.sample(range(len(spans)), 2))
    (a, b), (c, d) = spans[i], spans[j]
    return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]


def drop(rng, seed, data):
    spans = _spans(seed)
    if not spans:
        return data[:-1]
    a, b = rng.choice(spans)
    return data[:a] + data[b:]


def _garbage(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


def trailing(rng, seed, data):
    junk = rng.choice((b"\x00", b"\x7e", b"\x06\x00\x00\x00\x02{}", _garbage(rng, rng.randint(1, 64))))
    if rng.random() < 0.7 or seed.layout.eof is None:
        return data + junk
    at = rng.choice([seed.layout.eof, seed.layout.eof + 1])
    return data[:at] + junk + data[at:]


def noise(rng, seed, data):
    """Bytes that owe nothing to a stream, or a valid header followed by them."""
    junk = _garbage(rng, rng.choice((0, 1, 4, 8, 13, 40, 300)))
    return rng.choice((junk, data[:rng.choice((4, 8, 13, 26))] + junk))


def splice(rng, seed, data, donor: Seed | None = None):
    """A section of another stream put in this one (with its own section id)."""
    donor = donor or seed
    if not donor.layout.sections or not seed.layout.sections:
        return data
    span = rng.choice(donor.layout.sections)
    at = rng.choice([s.start for s in seed.layout.sections])
    return data[:at] + donor.data[span.start:span.end] + data[at:]


MUTATIONS: dict[str, Callable] = {
    "truncate": truncate, "bitflip": bitflip, "byte": byte, "lie": lie, "out-of-range": out_of_range,
    "duplicate": duplicate, "reorder": reorder, "drop": drop, "trailing": trailing, "noise": noise,
    "splice": splice,
}
WEIGHTS = {"truncate": 10, "bitflip": 14, "byte": 8, "lie": 12, "out-of-range": 20, "duplicate": 4,
           "reorder": 4, "drop": 3, "trailing": 4, "noise": 6, "splice": 4, "havoc": 11}


def mutate(rng: random.Random, seed: Seed, seeds_: list[Seed]) -> tuple[str, bytes]:
    """One hostile input from ``seed``: (mutation name, bytes)."""
    name = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    if name == "havoc":
        data = seed.data
        for _ in range(rng.randint(2, 4)):
            step = rng.choice(["bitflip", "byte", "lie", "out-of-range", "truncate", "duplicate", "reorder"])
            data = MUTATIONS[step](rng, seed, data)
        return name, data
    if name == "splice":
        return name, splice(rng, seed, seed.data, rng.choice(seeds_))
    return name, MUTATIONS[name](rng, seed, seed.data)


# -- the corpus -----------------------------------------------------------------------
def region(seed: Seed, offset: int | None) -> str:
    lay = seed.layout
    if offset is None:
        return "?"
    if offset < 8:
        return "header"
    for span in lay.sections:
        if span.start <= offset < span.end:
            return span.idstr
    if lay.description is not None and offset >= lay.description - 5:
        return "description"
    if lay.eof is not None and offset >= lay.eof:
        return "end"
    return "configuration" if not lay.sections or offset < lay.sections[0].start else "between sections"


def kind_of(error: StreamError, seed: Seed) -> tuple:
    """An error's signature for the corpus: its class, the field path (or
    the region of the seed it points into) and the offset's order of
    magnitude."""
    return type(error).__name__, error.path or region(seed, error.offset), (error.offset or 0).bit_length()


def _replay(data: bytes, options: dict) -> Outcome:
    return probe(data, PcMachine(**options), measure=False)


def shrink(data: bytes, options: dict, signature: tuple) -> bytes:
    """A shorter input with the same refusal (class, offset, path) on a fresh
    machine: the stream cut after some section end or after EOF."""
    cuts = sorted({i for i in range(len(data)) if data[i] == 0x7E} | {len(data)})
    keep = data
    offset = signature[1] or 0
    for cut in cuts:
        if cut + 5 <= offset or cut + 5 >= len(keep):
            continue
        candidate = data[:cut + 5]
        if _replay(candidate, options).signature == signature:
            return candidate
    return keep


@dataclass
class Finding:
    """An input that broke a rule."""

    violation: str
    detail: str
    seed: str
    mutation: str
    data: bytes


@dataclass
class Report:
    inputs: int = 0
    seconds: float = 0.0
    restored: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    mutations: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    peak: int = 0
    slowest: float = 0.0
    retained: int | None = None
    kept: dict[tuple, dict] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> dict:
        return {"inputs": self.inputs, "seconds": round(self.seconds, 2),
                "inputs_per_second": round(self.inputs / self.seconds, 1) if self.seconds else None,
                "restored": self.restored, "refused": dict(sorted(self.refused.items())),
                "mutations": dict(sorted(self.mutations.items())),
                "peak_bytes": self.peak, "allocation_bound": ALLOCATION_BOUND,
                "slowest_seconds": round(self.slowest, 4), "deadline_seconds": DEADLINE_SECONDS,
                "retained_bytes": self.retained, "retained_bound": RETAINED_BOUND,
                "corpus": len(self.kept), "clean": self.clean,
                "violations": [{"violation": f.violation, "detail": f.detail, "seed": f.seed,
                                "mutation": f.mutation, "length": len(f.data)} for f in self.findings]}


def campaign(inputs: int, seed: int = 0, progress: Callable[[int], None] | None = None,
             root: Path = FIXTURES, measure: bool = True, scenarios: int | None = None) -> Report:
    """Feed ``inputs`` hostile inputs (deterministic in ``seed``) to restore,
    each into a busy destination, and report what broke.  ``progress(n)``
    is called after every n inputs."""
    if inputs < 0:
        raise UsageError(f"--inputs must be at least 0, not {inputs}")
    rng = random.Random(seed)
    pool = seeds(root, scenarios)
    # Busy destinations (copies), by destination_of; a restore that
    # succeeds rightly changes one, and it serves on as the machine that
    # stream describes.
    live: dict[tuple, tuple] = {}
    report = Report()
    started = time.perf_counter()
    warm = None
    # Traced throughout rather than per input: starting and stopping
    # tracemalloc for each restore is slower, and fragments the heap so
    # that the process grows for reasons of its own.
    tracing = measure and not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    try:
        for n in range(inputs):
            s = rng.randrange(len(pool))
            source = pool[s]
            name, data = mutate(rng, source, pool)
            d = destination_of(pool, s)
            if d not in live:
                live[d] = pool[d[1]].machine.clone(), None
            dest, before = live[d]
            if before is None:
                before = snapshot(dest)
                live[d] = dest, before
            out = probe(data, dest, before, measure=measure)
            report.inputs += 1
            report.mutations[name] = report.mutations.get(name, 0) + 1
            report.peak = max(report.peak, out.peak)
            report.slowest = max(report.slowest, out.seconds)
            if out.violation is not None:
                report.findings.append(Finding(out.violation, out.detail, source.name, name, data))
            if out.violation == "destination changed" or out.error is None:
                live[d] = dest, None
            if out.error is None:
                report.restored += 1
            else:
                label = type(out.error).__name__
                report.refused[label] = report.refused.get(label, 0) + 1
                if out.violation is None:
                    _keep(report, out.error, source, name, data)
            if measure and n + 1 == WARM_UP:
                gc.collect()
                warm = tracemalloc.get_traced_memory()[0]
            if progress is not None:
                progress(1)
        if warm is not None:
            gc.collect()
            report.retained = tracemalloc.get_traced_memory()[0] - warm
            if report.retained > RETAINED_BOUND:
                report.findings.append(Finding(
                    "retained memory", f"Python holds {report.retained} bytes more than after the first "
                    f"{WARM_UP} inputs (bound {RETAINED_BOUND})", "all", "all", b""))
    finally:
        if tracing:
            tracemalloc.stop()
        report.seconds = time.perf_counter() - started
    return report


def _keep(report: Report, error: StreamError, seed: Seed, mutation: str, data: bytes) -> None:
    key = kind_of(error, seed)
    held = report.kept.get(key)
    if held is not None and len(held["data"]) <= len(data):
        return
    if held is None and len(report.kept) >= CORPUS_CAP:
        return
    report.kept[key] = {"data": data, "seed": seed.name, "mutation": mutation, "options": seed.options}


def write_corpus(report: Report, out: Path) -> list[dict]:
    """Write the kept inputs under ``out`` with ``index.json``: for each
    file, the error class, offset and path a fresh machine with the
    recorded options refuses it with (shrunk first; inputs that a fresh
    machine restores, their refusal depending on the busy destination,
    are left out)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.bin")) + list(out.glob("*.bin.gz")):
        old.unlink()
    entries = []
    for key in sorted(report.kept, key=str):
        item = report.kept[key]
        fresh = _replay(item["data"], item["options"])
        if fresh.error is None or fresh.violation is not None:
            continue
        signature = fresh.signature
        data = shrink(item["data"], item["options"], signature)
        name = f"{len(entries):03d}-{signature[0]}-{item['mutation']}.bin"
        if len(data) > PLAIN_LIMIT:
            name += ".gz"
            (out / name).write_bytes(gzip.compress(data, mtime=0))
        else:
            (out / name).write_bytes(data)
        entries.append({"file": name, "error": signature[0], "offset": signature[1], "path": signature[2],
                        "options": item["options"], "seed": item["seed"], "mutation": item["mutation"]})
    index = {"about": "hostile inputs kept by `vmstate hostile`: each must still be refused with this "
                      "error class at this offset by a fresh PcMachine(**options)",
             "entries": entries}
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return entries


def read_corpus(path: Path = CORPUS) -> list[tuple[dict, bytes]]:
    index = json.loads((path / "index.json").read_text())
    out = []
    for entry in index["entries"]:
        raw = (path / entry["file"]).read_bytes()
        out.append((entry, gzip.decompress(raw) if entry["file"].endswith(".gz") else raw))
    return out


def run(inputs: int, seed: int, out: Path | None, as_json: bool) -> Report:
    """``vmstate hostile``: the campaign with a progress bar (on a terminal),
    then its report (and the corpus and violating inputs in ``out``)."""
    clock = time.perf_counter()
    with Progress("hostile streams", inputs, ("{task.fields[rate]}/s",), {"rate": "-"}) as bar:
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if done % 50 == 0 or done == inputs:
                elapsed = time.perf_counter() - clock
                bar.update(done, rate=f"{done / elapsed:.0f}" if elapsed else "-")

        report = campaign(inputs, seed, advance)
    summary = report.to_json()
    if out is not None:
        summary["corpus_written"] = len(write_corpus(report, out))
        if report.findings:
            bad = out / "violations"
            bad.mkdir(parents=True, exist_ok=True)
            for i, finding in enumerate(report.findings):
                (bad / f"{i:03d}-{finding.violation.replace(' ', '-')}.bin").write_bytes(finding.data)
    if as_json:
        print(json.dumps(summary))
    else:
        _render(summary, console())
    return report


def _render(summary: dict, console) -> None:
    from rich.table import Table  # imported when something is drawn (27 ms at start-up otherwise)

    table = Table(title=f"{summary['inputs']} hostile inputs in {summary['seconds']} s "
                        f"({summary['inputs_per_second']} inputs/s)")
    table.add_column("outcome")
    table.add_column("inputs", justify="right")
    table.add_row("restored (still valid)", str(summary["restored"]))
    for name, count in summary["refused"].items():
        table.add_row(f"refused: {name}", str(count))
    console.print(table)
    console.print(f"largest allocation peak {summary['peak_bytes']} bytes (bound {summary['allocation_bound']}); "
                  f"slowest restore {summary['slowest_seconds']} s (deadline {summary['deadline_seconds']} s)")
    if summary["retained_bytes"] is not None:
        console.print(f"memory held grew by {summary['retained_bytes']} bytes after warm-up "
                      f"(bound {summary['retained_bound']})")
    if "corpus_written" in summary:
        console.print(f"corpus: {summary['corpus_written']} inputs written")
    for v in summary["violations"][:20]:
        console.print(f"[bold red]{v['violation']}[/] ({v['mutation']} of {v['seed']}, {v['length']} bytes): "
                      f"{v['detail'].strip().splitlines()[-1] if v['detail'].strip() else ''}")
    console.print("[bold green]clean[/]" if summary["clean"] else
                  f"[bold red]{len(summary['violations'])} violation(s)[/]")
