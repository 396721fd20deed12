"""QEMU 7.2's RAM section (``ram``, version 4): the records of an iterative
section's payload, read one at a time.

Each record is a be64 whose low 12 bits are flags and whose rest is an
offset: ``MEM_SIZE`` (the total, then each block's name and length),
``ZERO`` (a page filled with one byte), ``PAGE`` (4096 bytes), ``EOS`` (the
end of this part).  A page names its block unless ``CONTINUE`` says it is in
the block of the record before.  The flags a plain migration never writes
(XBZRLE, compressed pages, RDMA's hook) are refused, as are pages outside
the blocks the memory-size record listed.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from vmstate.core.errors import MalformedStream
from vmstate.wire.source import Source

PAGE = 4096
FLAG_MASK = PAGE - 1
MEM_SIZE, ZERO, NORMAL, EOS, CONTINUE = 0x04, 0x02, 0x08, 0x10, 0x20
#: Flags QEMU 7.2 writes only with a capability a plain migration lacks.
NOT_PLAIN = {0x01: "FULL (obsolete)", 0x40: "XBZRLE (the xbzrle capability)", 0x80: "HOOK (RDMA)",
             0x100: "COMPRESS_PAGE (the compress capability)"}

#: on_page(block, offset, data, fill): a normal page's 4096 bytes (``data``)
#: or a zero page's fill byte; called as the stream is read.
PageHandler = Callable[[str, int, bytes | None, int | None], None]


@dataclass
class Ram:
    """What the RAM records of a stream said: the blocks and their lengths
    (from the memory-size record), and how many pages of each kind came."""

    total: int | None = None
    blocks: dict[str, int] = field(default_factory=dict)
    zero_pages: int = 0
    pages: int = 0
    records: int = 0
    #: when a list, each record's offset is appended (for tools that edit records)
    marks: list[int] | None = None
    _last: str | None = None

    def to_json(self) -> dict:
        return {"total": self.total, "blocks": dict(self.blocks), "zero_pages": self.zero_pages,
                "pages": self.pages, "records": self.records}


_WORD = struct.Struct(">Q")
_WINDOW = 1 << 20


def _continued(src: Source, ram: Ram, on_page: PageHandler | None) -> None:
    """The hot loop: pages that continue their block (what fills a stream),
    read straight from the source's buffer a window at a time; it stops at
    the first record of another kind, or that needs more bytes, and leaves
    it to :func:`read_part`."""
    block = ram._last
    if block is None:
        return
    limit = ram.blocks[block] - PAGE
    buf, pos, have = src.available(_WINDOW)
    start, end = pos, pos + have
    unpack = _WORD.unpack_from
    zero, normal, marks = ZERO | CONTINUE, NORMAL | CONTINUE, ram.marks
    zeros = pages = 0
    while pos + 9 <= end:
        (word,) = unpack(buf, pos)
        flags, address = word & FLAG_MASK, word & ~FLAG_MASK
        if address > limit:
            break
        if flags == zero:
            if on_page is not None:
                on_page(block, address, None, buf[pos + 8])
            step = 9
            zeros += 1
        elif flags == normal and pos + 8 + PAGE <= end:
            if on_page is not None:
                on_page(block, address, bytes(buf[pos + 8:pos + 8 + PAGE]), None)
            step = 8 + PAGE
            pages += 1
        else:
            break
        if marks is not None:
            marks.append(src.offset + pos - start)
        pos += step
    ram.zero_pages += zeros
    ram.pages += pages
    ram.records += zeros + pages
    src.advance(pos - start)


def read_part(src: Source, ram: Ram, path: str, on_page: PageHandler | None = None) -> None:
    """One START, PART or END payload: records up to and including EOS."""
    while True:
        _continued(src, ram, on_page)
        at = src.offset
        (word,) = src.unpack(">Q", "RAM record", path)
        flags, address = word & FLAG_MASK, word & ~FLAG_MASK
        ram.records += 1
        if ram.marks is not None:
            ram.marks.append(at)
        kind = flags & ~CONTINUE
        strange = [name for bit, name in NOT_PLAIN.items() if flags & bit]
        if strange:
            raise MalformedStream(f"RAM record with flag {', '.join(strange)}: QEMU 7.2 writes none in a plain "
                                  f"migration", at, path)
        if kind == EOS:
            return
        if kind == MEM_SIZE:
            _memory_size(src, ram, address, at, path)
        elif kind in (ZERO, NORMAL):
            block = _block(src, ram, flags, at, path)
            if address + PAGE > ram.blocks[block]:
                raise MalformedStream(f"page at {address:#x} is outside block {block!r} "
                                      f"({ram.blocks[block]:#x} bytes by the memory-size record)", at, path)
            if kind == ZERO:
                (fill,) = src.unpack(">B", "zero page's fill byte", path)
                ram.zero_pages += 1
                if on_page is not None:
                    on_page(block, address, None, fill)
            else:
                ram.pages += 1
                if on_page is not None:
                    on_page(block, address, src.take(PAGE, "RAM page", path), None)
                else:
                    src.skip(PAGE, "RAM page", path)
        else:
            raise MalformedStream(f"RAM record flags {flags:#x} are no combination QEMU 7.2 writes", at, path)


def _memory_size(src: Source, ram: Ram, total: int, at: int, path: str) -> None:
    ram.total = total
    left = total
    while left:
        name = _name(src, path)
        (length,) = src.unpack(">Q", f"length of RAM block {name!r}", path)
        if length > left:
            raise MalformedStream(f"RAM block {name!r} of {length:#x} bytes is more than the {left:#x} the "
                                  f"memory-size record leaves", at, path)
        if length % PAGE:
            raise MalformedStream(f"RAM block {name!r} is {length:#x} bytes, not whole pages", at, path)
        ram.blocks[name] = length
        left -= length


def _name(src: Source, path: str) -> str:
    (n,) = src.unpack(">B", "RAM block name length", path)
    raw = src.take(n, "RAM block name", path)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedStream(f"RAM block name {raw[:40]!r} is not ASCII", src.offset - n, path) from None


def _block(src: Source, ram: Ram, flags: int, at: int, path: str) -> str:
    if flags & CONTINUE:
        if ram._last is None:
            raise MalformedStream("RAM page continues a block, but no block came before", at, path)
        return ram._last
    name = _name(src, path)
    if name not in ram.blocks:
        raise MalformedStream(f"RAM page in block {name!r}, which the memory-size record does not list", at, path)
    ram._last = name
    return name
