"""The regression corpus: one small input per kind of refusal, each replayed
by the tests against the error class, offset and path it was kept with."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from vmstate.core.errors import StreamError
from vmstate.core.paths import FIXTURES
from vmstate.fuzz.hostile.probe import Outcome, probe
from vmstate.fuzz.hostile.seeds import Seed
from vmstate.machine.pc import PcMachine

CORPUS = FIXTURES / "hostile"
CORPUS_CAP = 160
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


def keep(report, error: StreamError, seed: Seed, mutation: str, data: bytes) -> None:
    key = kind_of(error, seed)
    held = report.kept.get(key)
    if held is not None and len(held["data"]) <= len(data):
        return
    if held is None and len(report.kept) >= CORPUS_CAP:
        return
    report.kept[key] = {"data": data, "seed": seed.name, "mutation": mutation, "options": seed.options}


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
