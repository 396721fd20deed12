"""The regression corpus: one small input per kind of refusal, each replayed
by the tests against the error class, offset and path it was kept with."""
from __future__ import annotations

import gzip
import json
import lzma
from pathlib import Path

from vmstate.core.errors import VmstateError
from vmstate.core.paths import FIXTURES
from vmstate.fuzz.hostile.probe import Outcome, probe, probe_real, probe_snapshot, probe_trace
from vmstate.fuzz.hostile.seeds import Seed
from vmstate.machine.pc import PcMachine

CORPUS = FIXTURES / "hostile"
CORPUS_CAP = 200
#: Of which whole QEMU streams, each a patch of a fixture stream.
QEMU_CAP = 16
# Inputs larger than this are kept gzip-compressed (they carry QEMU's JSON
# description, most of a stream's bytes).
PLAIN_LIMIT = 16 << 10


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


def input_kind(mutation: str) -> str:
    """What an input is, by the mutation that made it: a stream, a snapshot
    file or a trace."""
    return mutation.split("-")[0] if mutation.startswith(("snapshot-", "trace-", "qemu-")) else "stream"


def kind_of(error: VmstateError, seed: Seed, kind: str = "stream") -> tuple:
    """An error's signature for the corpus: the input's kind, the error's
    class, the field path (or the region of the seed it points into, or
    for a trace the command it stopped at) and the offset's order of
    magnitude."""
    if kind == "trace":
        word = (getattr(error, "text", None) or "").split(" ")[0][:24]
        return kind, type(error).__name__, word, 0
    offset = getattr(error, "offset", None)
    return kind, type(error).__name__, error.path or region(seed, offset), (offset or 0).bit_length()


def replay(data: bytes, options: dict, kind: str = "stream") -> Outcome:
    """The input judged afresh: a stream into a fresh machine of ``options``."""
    if kind == "snapshot":
        return probe_snapshot(data, measure=False)
    if kind == "trace":
        return probe_trace(data, measure=False)
    if kind == "qemu":
        return probe_real(data, options.get("clock"), measure=False)
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
        if replay(candidate, options).signature == signature:
            return candidate
    return keep


def keep(report, error: VmstateError, seed: Seed, mutation: str, data: bytes, options: dict | None = None,
         base: bytes | None = None) -> None:
    """Keep ``data`` for the corpus if it is the first (or the shortest) of
    its kind of refusal.  ``base``: the stream it mutates, for inputs kept
    as a patch of it (whole QEMU streams, 300 KB each)."""
    kind = input_kind(mutation)
    key = kind_of(error, seed, kind)
    held = report.kept.get(key)
    if held is not None and len(held["data"]) <= len(data):
        return
    if held is None and (len(report.kept) >= CORPUS_CAP or
                         kind == "qemu" and sum(k[0] == "qemu" for k in report.kept) >= QEMU_CAP):
        return
    report.kept[key] = {"data": data, "seed": seed.name, "mutation": mutation,
                        "options": seed.options if options is None else options, "base": base}


def _patch(data: bytes, base: bytes) -> tuple[int, int, bytes]:
    """``data`` as (bytes kept from the start of ``base``, from its end, the
    bytes between)."""
    head = 0
    limit = min(len(data), len(base))
    while head < limit and data[head] == base[head]:
        head += 1
    tail = 0
    while tail < limit - head and data[-1 - tail] == base[-1 - tail]:
        tail += 1
    return head, tail, data[head:len(data) - tail]


def write_corpus(report, out: Path) -> list[dict]:
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
        kind = input_kind(item["mutation"])
        fresh = replay(item["data"], item["options"], kind)
        if fresh.error is None or fresh.violation is not None:
            continue
        signature = fresh.signature
        data = shrink(item["data"], item["options"], signature) if kind == "stream" else item["data"]
        name = f"{len(entries):03d}-{signature[0]}-{item['mutation']}.bin"
        entry = {"file": name, "kind": kind, "error": signature[0], "offset": signature[1], "path": signature[2],
                 "line": signature[3], "options": item["options"], "seed": item["seed"], "mutation": item["mutation"]}
        if item.get("base") is not None:
            entry["prefix"], entry["suffix"], data = _patch(data, item["base"])
        if len(data) > PLAIN_LIMIT:
            entry["file"] = name = name + ".gz"
            (out / name).write_bytes(gzip.compress(data, mtime=0))
        else:
            (out / name).write_bytes(data)
        entries.append(entry)
    index = {"about": "hostile inputs kept by `vmstate hostile` (streams, snapshot files, traces): each must "
                      "still be refused with this error class at this offset, path and line (a stream by a "
                      "fresh PcMachine(**options))",
             "entries": entries}
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return entries


def read_corpus(path: Path = CORPUS) -> list[tuple[dict, bytes]]:
    """Every kept input, a patched one rebuilt from the real stream it
    patches (``fixtures/streams/SEED.mig.xz``)."""
    index = json.loads((path / "index.json").read_text())
    out = []
    for entry in index["entries"]:
        raw = (path / entry["file"]).read_bytes()
        data = gzip.decompress(raw) if entry["file"].endswith(".gz") else raw
        if "prefix" in entry:
            base = lzma.decompress((path.parent / "streams" / f"{entry['seed']}.mig.xz").read_bytes())
            data = base[:entry["prefix"]] + data + base[len(base) - entry["suffix"]:]
        out.append((entry, data))
    return out
