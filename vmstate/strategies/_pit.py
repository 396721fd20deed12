"""The i8254 PIT and port 0x61, as a driver programs them."""
from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from devices.i8254 import ACCESS_LATCH, PIT_CONTROL, PIT_PORT, READ_BACK_NO_COUNT, READ_BACK_NO_STATUS, \
    SELECT_READ_BACK, control_word, read_back_selects
from devices.pcspk import SPEAKER_PORT
from vmstate.strategies._base import Chunk, _hex, _weighted, require

#: Reload values drivers write: 100, 250, 300 and 1000 Hz ticks
#: (1193182 / HZ), Linux's 10 ms calibration latch, PC speaker tones
#: (750 Hz, 440 Hz) and the all-ones count of a calibration run.  Each has
#: a non-zero low byte, so a lost first byte of a two-byte reload shows.
PIT_DRIVER_COUNTS = (0x2E9C, 0x12A5, 0x0F89, 0x04A9, 0x2E9B, 0x0637, 0x0A98, 0xFFFF)
#: Modes as drivers use them (2 and 3 for periodic ticks and tones, 0 and 4
#: for one-shots and calibration) more often than the rest.
_pit_modes = st.sampled_from([2, 3, 0, 2, 3, 0, 4, 1, 5, 6, 7])
_out = lambda port, value: f"outb {_hex(port)} {_hex(value)}"  # noqa: E731


def _counts(favoured: Sequence[int]) -> SearchStrategy[int]:
    """A PIT count: 0 (65536) and long counts first, so that a shrunk
    channel 0 interrupts at about 18 Hz; then the favoured counts; counts
    down to 1 (1.19 MHz) stay reachable."""
    return st.one_of(st.just(0), st.integers(0x1000, 0xFFFF), st.sampled_from(favoured), st.integers(1, 0xFFF))


@st.composite
def _pit_program(draw, channels: SearchStrategy[int], counts: SearchStrategy[int]) -> Chunk:
    """A control word and the data bytes its access mode expects (lsb then
    msb most often, as drivers program a reload); the second byte of a word
    is sometimes left out (a reload half written).  About half the time the
    driver then checks the count it loaded, with a counter latch and its
    two reads or with two live reads of the channel."""
    channel = draw(channels)
    mode = draw(_pit_modes)
    access = draw(st.sampled_from([3, 3, 1, 2]))
    bcd = draw(st.sampled_from([0, 0, 0, 1]))
    count = draw(counts)
    lines = [_out(PIT_CONTROL, control_word(channel, access, mode, bcd))]
    port = PIT_PORT + channel
    if access == 1:
        lines.append(_out(port, count & 0xFF))
    elif access == 2:
        lines.append(_out(port, count >> 8))
    else:
        lines.append(_out(port, count & 0xFF))
        if draw(st.booleans()) or draw(st.booleans()):
            lines.append(_out(port, count >> 8))
    check = draw(st.sampled_from(["none", "latch", "live", "none", "latch", "live"]))
    if check == "latch":
        lines.append(_out(PIT_CONTROL, control_word(channel, ACCESS_LATCH)))
    if check != "none":
        lines += [f"inb {_hex(port)}"] * draw(st.sampled_from([2, 1]))
    return lines


@st.composite
def _pit_data(draw, channels: SearchStrategy[int]) -> Chunk:
    """Data bytes on their own: the second half of a reload, or a reload in
    the access mode already set."""
    channel = draw(channels)
    values = draw(st.lists(st.integers(0, 0xFF), min_size=1, max_size=2))
    return [_out(PIT_PORT + channel, v) for v in values]


@st.composite
def _pit_latch(draw, channels: SearchStrategy[int]) -> Chunk:
    """A counter-latch command and zero to two reads of that channel."""
    channel = draw(channels)
    reads = draw(st.integers(0, 2))
    return [_out(PIT_CONTROL, control_word(channel, ACCESS_LATCH))] + [f"inb {_hex(PIT_PORT + channel)}"] * reads


@st.composite
def _pit_readback(draw, selections: SearchStrategy[int]) -> Chunk:
    """A read-back command (count, status or both, a set of channels, as
    a mask of bits 0-2) and reads of the selected channels."""
    selected = draw(selections)
    what = draw(st.sampled_from([0x00, READ_BACK_NO_STATUS, READ_BACK_NO_COUNT]))  # both, count only, status only
    channels = [c for c in range(3) if selected & (1 << c)]
    lines = [_out(PIT_CONTROL, SELECT_READ_BACK << 6 | what | sum(read_back_selects(c) for c in channels))]
    for channel in draw(st.lists(st.sampled_from(channels), max_size=3)):
        lines.append(f"inb {_hex(PIT_PORT + channel)}")
    return lines


_speaker = st.one_of(
    st.integers(0, 3).map(lambda v: [_out(SPEAKER_PORT, v)]),
    st.just([f"inb {_hex(SPEAKER_PORT)}"]),
    st.integers(0, 1).map(lambda v: [_out(SPEAKER_PORT, v), _out(SPEAKER_PORT, v ^ 1)]),
)


def pit_operations(channels: Sequence[int] = (0, 1, 2),
                   counts: Sequence[int] = PIT_DRIVER_COUNTS) -> SearchStrategy[Chunk]:
    """The i8254 as a driver programs it, and port 0x61.

    Draws one chunk: a control word followed by the data bytes its access
    mode expects (lsb, msb or, most often, lsb-then-msb, the second byte
    sometimes missing), with ``counts`` (default the counts drivers use,
    :data:`PIT_DRIVER_COUNTS`) favoured among the drawn ones and, half the
    time, the loaded count read back (latched or live); stray data bytes, a
    counter latch with its reads, a read-back of count and/or status with
    reads of the selected channels, plain counter reads, or a port 0x61
    access (gate and speaker-data writes, a gate pulse, reads that toggle
    the refresh bit).  Programming is drawn most often (a third of the
    chunks), port 0x61 next (two ninths), the rest evenly.  ``channels``
    are the counters programmed, latched, read back and read.

    >>> pit_operations(channels=[0], counts=[0x2E9C]).example()  # doctest: +SKIP
    ['outb 0x43 0x34', 'outb 0x40 0x9c', 'outb 0x40 0x2e']
    """
    channels, counts = tuple(channels), tuple(counts)
    require(channels and set(channels) <= {0, 1, 2}, f"channels must be some of 0, 1, 2, not {channels!r}")
    require(counts and all(0 <= c <= 0xFFFF for c in counts), f"counts are 0..0xffff (0 loads 65536), not {counts!r}")
    which = st.sampled_from(channels)
    selections = st.integers(1, 7) if set(channels) == {0, 1, 2} else \
        st.sets(which, min_size=1).map(lambda chosen: sum(1 << c for c in chosen))
    read = st.builds(lambda c, n: [f"inb {_hex(PIT_PORT + c)}"] * n, which, st.integers(1, 2))
    return _weighted((3, _pit_program(which, _counts(counts))), (1, _pit_latch(which)), (1, read),
                     (1, _pit_readback(selections)), (2, _speaker), (1, _pit_data(which)))
