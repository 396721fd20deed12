"""Bytes of one section, for the schema tests: a payload packed on its own,
and where a FULL section's payload starts inside a whole stream."""
from __future__ import annotations

import copy

import pytest

from vmstate.machine import migration
from vmstate.wire.section import save_section


def pack(description, version, state) -> bytes:
    out: list = []
    save_section(description, version, state, out)
    return b"".join(out)


def payload_at(data: bytes, idstr: str) -> int:
    """Offset of a FULL section's payload: after 0x04, be32 section id,
    u8 length, idstr, be32 instance id, be32 version."""
    name = bytes([len(idstr)]) + idstr.encode()
    at = data.find(name)
    while data[at - 5] != 0x04:
        at = data.find(name, at + 1)
    return at + len(name) + 8


def states(machine) -> tuple:
    """What a refused restore must leave as it was."""
    return machine.clock.now, copy.deepcopy(machine.get_state())


def refused(data: bytes, destination, error) -> Exception:
    """The error restoring ``data`` into ``destination`` raises, having
    checked that the refusal left the destination exactly as it was."""
    before = states(destination)
    with pytest.raises(error) as raised:
        migration.restore(data, destination)
    assert states(destination) == before
    return raised.value
