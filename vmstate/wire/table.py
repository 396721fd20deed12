"""A device's migration format as one declarative table.

A :class:`Description` is QEMU's VMStateDescription as data: a name, a
current version and a minimum one, a table of entries (each with the stream
version it appeared in, and the last one it was in, if it went away), named
subsections with a rule for when they are needed, validation rules, and the
conversions a load applies.  Everything else is derived from that one
table, by the entries themselves:

- the bytes: each entry knows its size, its construct structure (the
  reference definition, built once per version), the code it contributes
  to the generated fast path (:mod:`vmstate.wire.fastpath`), and how to walk
  its bytes in a stream, naming each value's path and offset;
- QEMU's JSON description of the section;
- the values as construct's ``build`` takes them, and the explanation of a
  broken rule with the offset of the field it names.

A field's name is QEMU's, and it is also the field's path into the device's
state object (``channels[0].irq_disabled``) unless ``path`` says otherwise;
``path=""`` keeps a value out of the state (an old format's field that only
a conversion uses).  Loading writes into a copy of the destination's state,
as QEMU loads into the live device: fields that a stream version lacks keep
the destination's values.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator

from vmstate.core.errors import InvalidField, TruncatedStream
from vmstate.core.state import resolve, steps
from vmstate.wire.fastpath import FastPath
from vmstate.wire.kinds import Kind, Rule, accepts, rule_text


def _construct():
    """construct, imported on first use rather than at start-up (29 ms):
    only the tests and ``vmstate schema`` need the reference definition."""
    import construct

    return construct


@dataclass(frozen=True)
class Leaf:
    """One value's place in the bytes: its field path under the section
    (``hpet.timer[2].cmp``), the entry it belongs to, its offset and size,
    the value read there (bytes for buffers and unused gaps), and whether
    it counts an array (a length a hostile stream may lie about)."""

    path: str
    entry: "Entry"
    offset: int
    size: int
    value: Any
    counter: bool = False


Walk = Generator[Leaf, None, int]


class Entry:
    """One row of a table.  ``kind`` is set for scalars only."""

    name: str
    path: str = ""
    since: int = 1
    until: int | None = None
    kind: Kind | None = None
    valid: Rule | None = None
    count: int | str | None = None

    def present(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)

    def _set_path(self, path: str | None) -> None:
        self.path = self.name if path is None else path
        if self.path:
            steps(self.path)

    def _target(self, where: str) -> str:
        """The expression the generated code reads and assigns this value by."""
        return f"{where}.{self.path}" if self.path else f"aux[{self.name!r}]"

    def _value(self, state: Any, aux: dict) -> Any:
        return resolve(state, self.path) if self.path else aux.get(self.name)

    def _bytes(self, buf: bytes, off: int, size: int, where: str) -> None:
        if off + size > len(buf):
            raise TruncatedStream(f"stream ends {off + size - len(buf)} byte(s) into this field",
                                  off, f"{where}.{self.name}")

    # What every entry answers; the defaults are those of an entry with no
    # value in the state (an unused gap).
    def size(self, owner: "Description", state: Any) -> int:
        raise NotImplementedError

    def container(self, owner: "Description", state: Any, aux: dict, out: dict) -> None:
        """Put this entry's value into ``out`` as construct's build takes it."""

    def explain(self, owner: "Description", state: Any, aux: dict, where: str, offsets: "Offsets") -> None:
        """Raise this entry's first broken rule, with its offset."""


class Field(Entry):
    """A scalar.  ``valid`` is a range, a frozenset or a predicate (whose
    docstring says what it wants) that a loaded value must meet."""

    def __init__(self, name: str, kind: Kind, *, since: int = 1, until: int | None = None,
                 path: str | None = None, valid: Rule | None = None):
        self.name, self.kind, self.since, self.until, self.valid = name, kind, since, until, valid
        self._set_path(path)

    def size(self, owner, state):
        return self.kind.size

    def construct(self):
        cs = _construct()
        return self.name / {"B": cs.Int8ub, "H": cs.Int16ub, "I": cs.Int32ub, "Q": cs.Int64ub,
                            "i": cs.Int32sb, "q": cs.Int64sb}[self.kind.fmt]

    def json(self, owner, state) -> list[dict]:
        return [{"name": self.name, "type": self.kind.name, "size": self.kind.size}]

    def emit(self, gen, owner, where: str, pad: str, depth: int) -> None:
        gen.field(self._target(where), self.kind.fmt, self.name)
        if self.valid is not None:
            gen.rule(pad, f"{where}.{self.path}" if self.path else f"aux.get({self.name!r})", self.valid)

    def walk(self, owner, buf: bytes, off: int, where: str, counts: dict) -> Walk:
        size = self.kind.size
        self._bytes(buf, off, size, where)
        (value,) = struct.unpack_from(">" + self.kind.fmt, buf, off)
        counts[self.name] = (value, off)
        yield Leaf(f"{where}.{self.name}", self, off, size, value, self.name in owner.counters)
        return off + size

    def container(self, owner, state, aux, out):
        out[self.name] = resolve(state, self.path) if self.path else (aux or {})[self.name]

    def explain(self, owner, state, aux, where, offsets):
        value = self._value(state, aux)
        if self.valid is not None and not accepts(self.valid, value):
            path = f"{where}.{self.name}"
            raise InvalidField(f"{value} is not valid ({rule_text(self.valid)})", offsets.of(path, self), path)


class Buffer(Entry):
    """Raw bytes of a fixed size (QEMU's VMSTATE_BUFFER).  ``json_as``: the
    JSON entries QEMU writes for these bytes, when they are structured data
    vmstate carries without modeling; ``uint8_array`` describes them as
    QEMU's array of uint8."""

    def __init__(self, name: str, size: int, *, since: int = 1, until: int | None = None,
                 path: str | None = None, kind_name: str = "buffer", uint8_array: bool = False,
                 json_as: list[dict] | None = None):
        self.name, self.bytes, self.since, self.until, self.kind_name = name, size, since, until, kind_name
        self.uint8_array, self.json_as = uint8_array, json_as
        self._set_path(path)

    def size(self, owner, state):
        return self.bytes

    def construct(self):
        cs = _construct()
        return self.name / cs.Bytes(self.bytes)

    def json(self, owner, state) -> list[dict]:
        if self.json_as is not None:
            return self.json_as
        if self.uint8_array:
            return [{"name": self.name, "array_len": self.bytes, "type": "uint8", "size": 1}]
        return [{"name": self.name, "type": self.kind_name, "size": self.bytes}]

    def emit(self, gen, owner, where, pad, depth):
        gen.field(self._target(where), f"{self.bytes}s", self.name)

    def walk(self, owner, buf, off, where, counts) -> Walk:
        self._bytes(buf, off, self.bytes, where)
        yield Leaf(f"{where}.{self.name}", self, off, self.bytes, bytes(buf[off:off + self.bytes]))
        return off + self.bytes

    def container(self, owner, state, aux, out):
        out[self.name] = resolve(state, self.path) if self.path else (aux or {})[self.name]


class Unused(Entry):
    """Bytes kept for compatibility: written as zeros, skipped on load."""

    def __init__(self, size: int, *, since: int = 1, until: int | None = None, name: str = "unused"):
        self.bytes, self.since, self.until, self.name = size, since, until, name

    def size(self, owner, state):
        return self.bytes

    def construct(self):
        cs = _construct()
        return cs.Padding(self.bytes)

    def json(self, owner, state) -> list[dict]:
        return [{"name": self.name, "type": "unused_buffer", "size": self.bytes}]

    def emit(self, gen, owner, where, pad, depth):
        gen.field(None, f"{self.bytes}x", self.name)

    def walk(self, owner, buf, off, where, counts) -> Walk:
        self._bytes(buf, off, self.bytes, where)
        yield Leaf(f"{where}.{self.name}", self, off, self.bytes, bytes(buf[off:off + self.bytes]))
        return off + self.bytes


class Nested(Entry):
    """Another description inlined with no header (QEMU's VMSTATE_STRUCT), or
    an array of it when ``count`` is given: a number, or the name of an
    earlier field holding it (QEMU's VARRAY).  A counted array must give
    ``valid`` bounds for its count, checked before anything is read, and
    ``make`` to create elements the destination does not have yet.
    ``path=""`` inlines a description whose fields live on the parent's
    state; ``json_indexed`` describes the elements one by one, as QEMU does
    for an array it cannot compress."""

    def __init__(self, name: str, description: "Description", *, count: int | str | None = None,
                 since: int = 1, until: int | None = None, path: str | None = None,
                 make: Callable[[int], Any] | None = None, json_indexed: bool = False):
        self.name, self.description, self.count = name, description, count
        self.since, self.until, self.make, self.json_indexed = since, until, make, json_indexed
        self._set_path(path)
        if isinstance(count, str) and make is None:
            raise ValueError(f"{name}: a counted array needs make=")

    def size(self, owner, state):
        inner = self.description
        return owner.count_of(self, state) * inner.size(inner.version)

    def construct(self):
        cs = _construct()
        inner = self.description.construct(self.description.version)
        if self.count is None:
            return self.name / inner
        if isinstance(self.count, int):
            return self.name / cs.Array(self.count, inner)
        counter = self.count
        return self.name / cs.Array(lambda ctx: ctx[counter], inner)

    def json(self, owner, state) -> list[dict]:
        inner = self.description
        item = {"name": self.name, "type": "struct", "struct": inner.json(inner.version),
                "size": inner.size(inner.version)}
        if self.json_indexed:
            rest = {k: v for k, v in item.items() if k != "name"}
            return [{"name": self.name, "index": i, **rest} for i in range(owner.count_of(self, state))]
        if self.count is not None:
            item["array_len"] = owner.count_of(self, state)
        return [item]

    def emit(self, gen, owner, where, pad, depth):
        inner = self.description
        if self.count is None:
            gen.inline(inner, f"{where}.{self.path}" if self.path else where, pad, depth)
        elif isinstance(self.count, int):
            gen.array(inner, f"{where}.{self.path}", str(self.count), None, None, pad, depth)
        else:
            counter = owner.entry(self.count)
            gen.array(inner, f"{where}.{self.path}", f"{where}.{counter.path}", counter, self.make, pad, depth)

    def walk(self, owner, buf, off, where, counts) -> Walk:
        inner = self.description
        if self.count is None:
            return (yield from inner.walk(inner.version, buf, off, f"{where}.{self.name}"))
        if isinstance(self.count, int):
            n = self.count
        else:
            counter = owner.entry(self.count)
            n, at = counts[self.count]
            if not accepts(counter.valid, n):
                raise InvalidField(f"{n} is not valid ({rule_text(counter.valid)})", at, f"{where}.{counter.name}")
        for i in range(n):
            off = yield from inner.walk(inner.version, buf, off, f"{where}.{self.name}[{i}]")
        return off

    def elements(self, owner, state) -> list:
        items = resolve(state, self.path)
        return items[:owner.count_of(self, state)] if self.count is not None else [items]

    def container(self, owner, state, aux, out):
        inner = self.description
        items = [to_container(inner, inner.version, item, aux) for item in self.elements(owner, state)]
        out[self.name] = items if self.count is not None else items[0]

    def explain(self, owner, state, aux, where, offsets):
        inner = self.description
        for i, item in enumerate(self.elements(owner, state)):
            name = f"{where}.{self.name}" if self.count is None else f"{where}.{self.name}[{i}]"
            inner.explain(inner.version, item, aux, name, offsets)


@dataclass(frozen=True)
class Subsection:
    """An optional trailer with its own name and version, written only when
    ``needed(state)`` holds."""

    description: "Description"
    needed: Callable[[Any], bool]


@dataclass(frozen=True)
class Check:
    """A rule across fields, checked after a load.  ``field`` is the field
    blamed when ``rule(state)`` fails: its path under the description, or
    the entry itself where a path names two (a format that repeats a
    field).  With ``uses_aux`` the rule is ``rule(state, aux)``, for rules
    that involve path="" values or the stream's time."""

    field: "str | Entry"
    rule: Callable[..., bool]
    message: str
    uses_aux: bool = False

    def holds(self, state: Any, aux: dict) -> bool:
        return bool(self.rule(state, aux) if self.uses_aux else self.rule(state))

    def compiled(self) -> tuple[Callable[..., bool], bool]:
        """What the generated ``sound`` calls, and whether with ``aux``: the
        rule itself, unless a subclass redefines :meth:`holds`."""
        if type(self).holds is not Check.holds:
            return self.holds, True
        return self.rule, self.uses_aux

    @property
    def field_name(self) -> str:
        return self.field if isinstance(self.field, str) else self.field.name


class Offsets:
    """Where each value of a section's bytes lies, by field path, for
    errors that name a field found broken in the state."""

    def __init__(self, leaves: Iterator[Leaf], start: int):
        self.start = start
        self.at: dict[str, list[Leaf]] = {}
        for leaf in leaves:
            self.at.setdefault(leaf.path, []).append(leaf)

    def of(self, path: str, entry: Entry | None = None) -> int:
        """The offset of ``entry``'s value at ``path``; without an entry, of
        the last value loaded into the state there (an old format may write
        one state field from two slots, and the later one wins)."""
        leaves = self.at.get(path, ())
        if entry is not None:
            return next((leaf.offset for leaf in leaves if leaf.entry is entry), self.start)
        into_state = [leaf for leaf in leaves if leaf.entry.path]
        return (into_state or leaves)[-1].offset if leaves else self.start


# post_load(state, stream_version, aux): QEMU's conversions on load.  ``aux``
# holds path="" values, "now" (the stream's virtual time; None while the
# sections read so far do not tell it: a rule on it then holds, and the
# section is read again once it is known) and "subsections" (the names that
# were present).
PostLoad = Callable[[Any, int, dict], None]
# pre_save(state, stream_version) -> aux values for path="" fields.
PreSave = Callable[[Any, int], dict]
# pre_load(state, stream_version, aux): QEMU's pre_load, run on the
# destination's state before any field is read (the same ``aux`` then goes
# to post_load).
PreLoad = Callable[[Any, int, dict], None]


@dataclass(eq=False)
class Description:
    """One device's format: QEMU's VMStateDescription, as data."""

    name: str
    version: int
    minimum: int
    fields: list[Entry]
    subsections: list[Subsection] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    post_load: PostLoad | None = None
    pre_save: PreSave | None = None
    pre_load: PreLoad | None = None

    def __post_init__(self):
        self.counters = frozenset(e.count for e in self.fields if isinstance(e.count, str))
        self._constructs: dict[int, Any] = {}
        self._fast: dict[int, FastPath] = {}
        self._json: dict[tuple, dict] = {}
        self._counted: dict[int, tuple] = {}
        self._savers: dict[int, Callable[[Any, list], tuple]] = {}

    def present(self, version: int) -> list[Entry]:
        return [e for e in self.fields if e.present(version)]

    def entry(self, name: str) -> Entry:
        for e in self.fields:
            if e.name == name:
                return e
        raise KeyError(name)

    def subsection(self, name: str) -> Subsection | None:
        for sub in self.subsections:
            if sub.description.name == name:
                return sub
        return None

    def construct(self, version: int):
        """The construct structure of the fields at a stream version, built
        once (subsections are framed by the section layer)."""
        built = self._constructs.get(version)
        if built is None:
            cs = _construct()
            built = self._constructs[version] = cs.Struct(*(e.construct() for e in self.present(version)))
        return built

    def fast(self, version: int) -> FastPath:
        path = self._fast.get(version)
        if path is None:
            path = self._fast[version] = FastPath(self, version)
        return path

    def size(self, version: int, state: Any = None) -> int:
        """Bytes of the fields at ``version``; counted arrays take their
        counts from ``state``."""
        return sum(e.size(self, state) for e in self.present(version))

    def count_of(self, entry: Entry, state: Any) -> int:
        if entry.count is None:
            return 1
        if isinstance(entry.count, int):
            return entry.count
        return resolve(state, self.entry(entry.count).path) if state is not None else 0

    def counted(self, version: int) -> tuple:
        """The arrays counted by a field, at ``version`` (found once)."""
        found = self._counted.get(version)
        if found is None:
            found = self._counted[version] = tuple(e for e in self.present(version) if isinstance(e.count, str))
        return found

    # -- QEMU's JSON description ------------------------------------------------
    def json_key(self, version: int, state: Any = None) -> tuple:
        """What the JSON description depends on: the version, the counts of
        counted arrays and which subsections are needed."""
        if state is None:
            return (version,)
        subs = tuple([s.description.json_key(s.description.version, state) if s.needed(state) else None
                      for s in self.subsections]) if self.subsections else ()
        counts = tuple([self.count_of(e, state) for e in self.counted(version)])
        return (version, counts, subs)

    def json(self, version: int, state: Any = None) -> dict:
        """QEMU's JSON description of this section as written from ``state``
        (cached: it is the same for every state with the same key)."""
        key = self.json_key(version, state)
        cached = self._json.get(key)
        if cached is None:
            out: dict = {"vmsd_name": self.name, "version": version,
                         "fields": [item for e in self.present(version) for item in e.json(self, state)]}
            if state is not None:
                subs = [s.description.json(s.description.version, state)
                        for s in self.subsections if s.needed(state)]
                if subs:
                    out["subsections"] = subs
            cached = self._json[key] = out
        return cached

    # -- the bytes, value by value ------------------------------------------------
    def walk(self, version: int, buf: bytes, off: int, where: str) -> Walk:
        """Every value of the fields at ``version`` in ``buf`` from ``off``,
        as :class:`Leaf` objects; returns the offset after them.  Raises a
        typed error, naming the field, where the bytes end inside one or a
        count is out of its bounds (before the array is walked)."""
        counts: dict[str, tuple[int, int]] = {}
        for e in self.present(version):
            off = yield from e.walk(self, buf, off, where, counts)
        return off

    def explain(self, version: int, state: Any, aux: dict, where: str, offsets: Offsets) -> None:
        """Raise the first broken rule, in the order the fast path's
        ``sound`` tests them, naming the field and its offset."""
        for e in self.present(version):
            e.explain(self, state, aux, where, offsets)
        for check in self.checks:
            if not check.holds(state, aux):
                path = f"{where}.{check.field_name}"
                entry = None if isinstance(check.field, str) else check.field
                raise InvalidField(check.message, offsets.of(path, entry), path)


def to_container(description: Description, version: int, state: Any, aux: dict | None = None) -> dict:
    """The values of a state as construct's ``build`` takes them; without
    ``aux``, the path="" values come from the description's pre_save."""
    if aux is None:
        aux = description.pre_save(state, version) if description.pre_save else {}
    out: dict = {}
    for e in description.present(version):
        e.container(description, state, aux, out)
    return out
