"""Reading a whole QEMU stream of a large guest: memory and speed.

Why: a real stream is as large as its guest's RAM, and vmstate reads it in
one pass from a file object, holding a window of it.  This bench writes a
stream for a guest of ``--gib`` GiB (default 1) to a temporary file, in the
shape QEMU 7.2 writes a mostly idle guest (``--data`` of its pages normal,
the rest zero pages, the block name on the first record of the block only),
then reads it with :func:`vmstate.wire.qemu_stream.read` and reports:

- the peak of Python's allocations during the read (tracemalloc), against
  the 64 MiB the reader must stay under;
- the read's speed in stream bytes per second and in guest RAM per second,
  against a baseline that reads the same file with no parsing at all
  (``readinto`` of 1 MiB chunks: the disk, or the page cache, alone).

The stream is generated, never committed.  CPU time (``process_time``).
"""
from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
import tracemalloc

from vmstate.wire import qemu_stream

PAGE = 4096
MACHINE = b"pc-i440fx-7.2"


def write_stream(path: str, pages: int, data_every: int) -> int:
    """A stream of one RAM block of ``pages`` pages, every ``data_every``-th
    a normal page; returns its size."""
    block = b"pc.ram"
    eos = struct.pack(">Q", 0x10)
    with open(path, "wb") as out:
        out.write(b"QEVM" + struct.pack(">IBI", 3, 0x07, len(MACHINE)) + MACHINE)
        size = struct.pack(">Q", pages * PAGE | 0x04) + bytes([len(block)]) + block + struct.pack(">Q", pages * PAGE)
        out.write(struct.pack(">BIB", 0x01, 1, 3) + b"ram" + struct.pack(">II", 0, 4) + size + eos
                  + b"\x7e" + struct.pack(">I", 1))
        out.write(struct.pack(">BI", 0x02, 1))
        body = bytes(range(256)) * (PAGE // 256)
        chunk = []
        for n in range(pages):
            flags = 0x08 if n % data_every == 0 else 0x02
            record = struct.pack(">Q", n * PAGE | flags | (0x20 if n else 0))
            if not n:
                record += bytes([len(block)]) + block
            chunk.append(record + (body if flags == 0x08 else b"\x00"))
            if len(chunk) == 4096:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk) + eos + b"\x7e" + struct.pack(">I", 1))
        out.write(struct.pack(">BI", 0x03, 1) + eos + b"\x7e" + struct.pack(">I", 1) + b"\x00")
    return os.path.getsize(path)


def _baseline(path: str) -> float:
    buffer = bytearray(1 << 20)
    started = time.process_time()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(buffer):
            pass
    return time.process_time() - started


def _ours(path: str) -> tuple[float, int, qemu_stream.QemuStream]:
    tracemalloc.start()
    started = time.process_time()
    with open(path, "rb") as handle:
        real = qemu_stream.read(handle)
    seconds = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=1.0, help="guest RAM in GiB (default 1)")
    parser.add_argument("--data", type=int, default=50, help="one normal page in N (default 50: 2%%)")
    args = parser.parse_args()
    pages = int(args.gib * (1 << 30)) // PAGE
    with tempfile.TemporaryDirectory() as where:
        path = os.path.join(where, "big.mig")
        size = write_stream(path, pages, args.data)
        base = min(_baseline(path) for _ in range(3))
        ours, peak, real = min((_ours(path) for _ in range(2)), key=lambda r: r[0])
        # the speed without tracemalloc, which slows allocation-heavy code
        started = time.process_time()
        with open(path, "rb") as handle:
            qemu_stream.read(handle)
        plain = time.process_time() - started
    assert real.ram.pages + real.ram.zero_pages == pages
    ram = pages * PAGE
    print(f"stream: {size / 1e6:.1f} MB for {ram / (1 << 30):.2f} GiB of guest RAM "
          f"({real.ram.pages} normal pages, {real.ram.zero_pages} zero pages)")
    print(f"peak allocation while reading: {peak / (1 << 20):.1f} MiB (bound 64 MiB)")
    print(f"read: {plain:.2f} s CPU = {size / plain / 1e6:.0f} MB/s of stream, {ram / plain / 1e6:.0f} MB/s of "
          f"guest RAM; baseline (reading the file, no parsing) {base:.3f} s = {size / base / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
