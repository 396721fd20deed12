"""``i8254``: the PIT, versions 2 and 3 (3 adds channel 0's interrupt-disabled
flag; a v2 stream leaves the destination's), each channel a ``pit channel`` v2.

The last slot once held ``channels[0].irq_timer``: v2 writers put the
timer's expiry there, and QEMU 7.2, which loads it as channel 0's
``next_transition_time`` after the array, lets it win; we do the same.  From
v3 it is that same deadline written a second time, so the two must agree.

QEMU checks none of this.  Every rule below is a state that isa-pit's code
paths (and devices/i8254.py's) cannot reach, reasoned from those paths:

- ``rw_mode``, ``read_state`` and ``write_state`` are set together by a
  control word; reads and writes then only toggle a word access between its
  first byte (3) and its second (4).  A latch copies ``rw_mode`` into
  ``count_latched``, and reads step it 3 -> 2 -> 0 or 1 -> 0; while a latch
  is pending reads do not toggle ``read_state``, so a byte-wide latch (1),
  taken while ``read_state`` was 1, never sees it at 4.
- ``rw_mode`` is 0 only in a channel no control word has programmed since
  power-on, which is still in reset's mode 3, binary, with no latch or write
  latch, and whose count was loaded a byte at a time.
- A status read back is ``out << 7 | rw_mode << 4 | mode << 1 | bcd``: never
  0, the null-count bit 6 never set, and 0x06 or 0x86 before programming.
  It keeps the mode of its read-back: a later control word changes the
  mode but not a latched status, so the two need not agree.
- Modes 6 and 7 are kept as written, as QEMU 7.2 keeps them (KVM folds them
  into 2 and 3 when written, Xen when loaded): the status reads them back,
  the count runs as in mode 2 and OUT follows mode 0, so folding them would
  change what a guest reads.
- Only channel 0 has an interrupt timer, so only it ever gets a deadline; it
  is -1 or after the count's load time unless the HPET has taken IRQ 0 over
  (a disabled interrupt leaves it stale).  Gates 0 and 1 are tied high.

``count_load_time`` is not compared with the stream's virtual clock: under
qtest QEMU's devices run on the qtest clock, which the ``timer`` section does
not carry, and kvm-pit rebases load times from the host's clock.
"""
from devices.i8254 import RELOAD_ZERO, RW_LSB, RW_WORD0, RW_WORD1, PitState
from vmstate.wire.kinds import INT32, INT64, UINT16, UINT32, UINT8
from vmstate.wire.table import Check, Description, Field, Nested

FINAL = "channels[0].next_transition_time"


def _status_byte(value: int) -> bool:
    """null count (bit 6) clear, and access bits 0 only in 0x00, 0x06 or 0x86"""
    return not value & 0x40 and bool(value & 0x30 or value in (0x00, 0x06, 0x86))


def _follows_rw_mode(state: int, rw_mode: int) -> bool:
    if state > RW_WORD1 or rw_mode > RW_WORD0:
        return True  # their own fields' rules report these
    return state == rw_mode or (state, rw_mode) == (RW_WORD1, RW_WORD0)


def _unprogrammed(rule):
    """A rule on a channel that no control word has programmed (rw_mode 0)."""
    return lambda ch: ch.rw_mode != 0 or rule(ch)


PIT_CHANNEL = Description("pit channel", version=2, minimum=2, fields=[
    Field("count", INT32, valid=range(1, RELOAD_ZERO + 1)),
    Field("latched_count", UINT16),
    Field("count_latched", UINT8, valid=range(0, RW_WORD0 + 1)),
    Field("status_latched", UINT8, valid=range(0, 2)),
    Field("status", UINT8, valid=_status_byte),
    Field("read_state", UINT8, valid=range(0, RW_WORD1 + 1)),
    Field("write_state", UINT8, valid=range(0, RW_WORD1 + 1)),
    Field("write_latch", UINT8),
    Field("rw_mode", UINT8, valid=range(0, RW_WORD0 + 1)),
    Field("mode", UINT8, valid=range(0, 8)),
    Field("bcd", UINT8, valid=range(0, 2)),
    Field("gate", UINT8, valid=range(0, 2)),
    Field("count_load_time", INT64),
    Field("next_transition_time", INT64),
], checks=[
    Check("read_state", lambda ch: _follows_rw_mode(ch.read_state, ch.rw_mode),
          "read_state must be rw_mode, or 4 (a word's second byte) when rw_mode is 3"),
    Check("write_state", lambda ch: _follows_rw_mode(ch.write_state, ch.rw_mode),
          "write_state must be rw_mode, or 4 (a word's second byte) when rw_mode is 3"),
    Check("count_latched", _unprogrammed(lambda ch: ch.count_latched == 0),
          "a count latch takes rw_mode, which is 0 only before the channel is programmed"),
    Check("read_state", lambda ch: not (ch.count_latched == RW_LSB and ch.read_state == RW_WORD1),
          "read_state 4 with a byte-wide latch pending: a read takes the latch before it toggles read_state"),
    Check("status_latched", lambda ch: ch.status_latched != 1 or ch.status != 0,
          "a latched status is never 0: read-back sets its access or mode bits"),
    Check("status", _unprogrammed(lambda ch: not ch.status & 0x30),
          "a status with access bits was read back after programming, but rw_mode is 0"),
    Check("mode", _unprogrammed(lambda ch: ch.mode == 3),
          "a channel never programmed (rw_mode 0) is in reset's mode 3"),
    Check("bcd", _unprogrammed(lambda ch: ch.bcd == 0),
          "a channel never programmed (rw_mode 0) counts in binary"),
    Check("write_latch", _unprogrammed(lambda ch: ch.write_latch == 0),
          "a channel never programmed (rw_mode 0) has never latched a word's first byte"),
    Check("count", _unprogrammed(lambda ch: ch.count <= 0xFF or ch.count == RELOAD_ZERO),
          "a channel never programmed (rw_mode 0) is loaded a byte at a time: 1..0xff or 0x10000"),
])


def _deadline_after_load(pit: PitState) -> bool:
    ch0 = pit.channels[0]
    return pit.irq_disabled != 0 or ch0.next_transition_time == -1 or \
        ch0.next_transition_time > ch0.count_load_time


def _repeated(pit: PitState, aux: dict) -> bool:
    """v3's last slot (absent from aux in v2, where it was loaded over channel 0's)."""
    return aux.get(FINAL, pit.channels[0].next_transition_time) == pit.channels[0].next_transition_time


def _post_load(pit: PitState, version: int, aux: dict) -> None:
    """Re-derive the armed deadline as pit_post_load re-arms its timer."""
    ch0 = pit.channels[0]
    pit.irq_timer = ch0.next_transition_time if ch0.next_transition_time != -1 and not pit.irq_disabled else -1


# v3's last slot: channel 0's deadline again, a value of its own that rules
# name by this entry (its path is channel 0's field's too).
REPEATED = Field(FINAL, INT64, since=3, path="")

I8254 = Description("i8254", version=3, minimum=2, fields=[
    Field("channels[0].irq_disabled", UINT32, since=3, path="irq_disabled", valid=range(0, 2)),
    Nested("channels", PIT_CHANNEL, count=3),
    Field(FINAL, INT64, until=2),               # formerly irq_timer: loaded over channel 0's
    REPEATED,                                   # channel 0's deadline again: must agree
], checks=[
    Check("channels[0].gate", lambda pit: pit.channels[0].gate != 0, "channel 0's gate is tied high"),
    Check("channels[1].gate", lambda pit: pit.channels[1].gate != 0, "channel 1's gate is tied high"),
    Check("channels[0].next_transition_time", _deadline_after_load,
          "channel 0's interrupt is enabled, so its deadline must be -1 or after count_load_time"),
    Check("channels[1].next_transition_time", lambda pit: pit.channels[1].next_transition_time == 0,
          "only channel 0 has an interrupt timer: channel 1's deadline is never set"),
    Check("channels[2].next_transition_time", lambda pit: pit.channels[2].next_transition_time == 0,
          "only channel 0 has an interrupt timer: channel 2's deadline is never set"),
    Check(REPEATED, _repeated, "the last slot must repeat channel 0's next_transition_time", uses_aux=True),
], post_load=_post_load, pre_save=lambda pit, version: {FINAL: pit.channels[0].next_transition_time})
