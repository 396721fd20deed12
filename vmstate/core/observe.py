"""The record of everything a guest observed.

Two runs of the same scenario are indistinguishable to the guest exactly when
their records are equal: every value read (with where and when), every
interrupt edge reported to the qtest client (with its virtual time), and every
clock answer.  The migration checker compares two of these.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Read(NamedTuple):
    op: int
    time: int
    space: str
    addr: int
    size: int
    value: int


class Edge(NamedTuple):
    op: int
    time: int
    line: int
    level: int


class Clock(NamedTuple):
    op: int
    time: int


Event = Read | Edge | Clock


@dataclass
class Observations:
    events: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)

    def first_divergence(self, other: "Observations") -> int | None:
        """Index of the first event where the two records part, or None."""
        for i, (a, b) in enumerate(zip(self.events, other.events)):
            if a != b:
                return i
        if len(self.events) != len(other.events):
            return min(len(self.events), len(other.events))
        return None

    def edges(self) -> list[Edge]:
        return [e for e in self.events if isinstance(e, Edge)]

