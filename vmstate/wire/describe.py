"""Declarative descriptions of a device's migration format.

A :class:`Description` is QEMU's VMStateDescription as data: a name, a current
version and a minimum one, a table of fields (each with the stream version it
appeared in, and the last one it was in, if it went away), named subsections
with a rule for when they are needed, validation rules, and the conversions a
load applies.  From that one table the layer derives everything else:

- one construct structure per stream version, built once and cached: the
  reference definition of the bytes;
- a generated fast path (``struct`` code per version) that writes and reads
  the very same bytes at hand-written speed, checked byte for byte against
  the construct structure by the tests;
- the JSON description QEMU writes after the end of a stream.

A field's name is QEMU's, and it is also the field's path into the device's
state object (``channels[0].irq_disabled``) unless ``path`` says otherwise;
``path=""`` keeps a value out of the state (an old format's field that only a
conversion uses).  Loading writes into a copy of the destination's state, as
QEMU loads into the live device: fields that a stream version lacks keep the
destination's values.
"""
from __future__ import annotations

import copy
import copyreg
import dataclasses
import functools
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

import construct as cs

from vmstate.core.errors import (InvalidField, MalformedStream, TruncatedStream, UnknownSubsection,
                            VersionTooNew, VersionTooOld)


# -- scalar kinds ----------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """A scalar wire type, named as QEMU's JSON description names it."""

    name: str
    fmt: str
    size: int
    lo: int
    hi: int


def _kind(name: str, fmt: str, size: int, signed: bool) -> Kind:
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return Kind(name, fmt, size, lo, hi)


UINT8 = _kind("uint8", "B", 1, False)
UINT16 = _kind("uint16", "H", 2, False)
UINT32 = _kind("uint32", "I", 4, False)
UINT64 = _kind("uint64", "Q", 8, False)
INT32 = _kind("int32", "i", 4, True)
INT64 = _kind("int64", "q", 8, True)
BOOL = Kind("bool", "B", 1, 0, 1)
# A timer travels as its expiry time in ns of its clock, or -1 when idle.
TIMER = Kind("timer", "q", 8, -(1 << 63), (1 << 63) - 1)

_CONSTRUCT = {"B": cs.Int8ub, "H": cs.Int16ub, "I": cs.Int32ub, "Q": cs.Int64ub,
              "i": cs.Int32sb, "q": cs.Int64sb}


# -- state paths -------------------------------------------------------------------
_PATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*")
_STEP = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")


@functools.lru_cache(maxsize=4096)
def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    """A path's (attribute, index) steps; cached, since the same few paths
    are resolved on every load that explains or converts."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"{path!r} is not a state path")
    return tuple((m.group(1), None if m.group(2) is None else int(m.group(2)))
                 for m in _STEP.finditer(path))


def resolve(obj: Any, path: str) -> Any:
    """The value at a state path such as ``channels[0].count`` ("" is the
    object itself)."""
    if not path:
        return obj
    for attr, index in _steps(path):
        obj = getattr(obj, attr)
        if index is not None:
            obj = obj[index]
    return obj


# -- copies of state objects -----------------------------------------------------
_ATOMS = frozenset({int, bool, float, str, bytes, type(None)})
_PLAIN: dict[type, bool] = {}
_HOOKED: dict[type, bool] = {}


def _plain(cls: type) -> bool:
    """Whether ``copy.deepcopy`` would copy instances of ``cls`` by creating
    one with ``cls.__new__`` and deep-copying its ``__dict__`` into it: a
    dataclass with no hooks of its own."""
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = (
            dataclasses.is_dataclass(cls) and not issubclass(cls, type)
            and cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__getstate__", None) is getattr(object, "__getstate__", None)
            and not hasattr(cls, "__setstate__") and not hasattr(cls, "__deepcopy__")
            and not any("__slots__" in vars(k) for k in cls.__mro__)
            and cls not in copy._deepcopy_dispatch and cls not in copyreg.dispatch_table)
    return plain


def fresh_state(get_state: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark a device's ``get_state`` as returning a state the caller owns:
    every container in it (dataclass, list, dict) is new, and what it shares
    with the device are immutable leaves (ints, bytes, None).  A load may
    then write into it without copying it first, as :func:`copy_state`
    would.  Only the marked function counts: a subclass's override, or a
    stand-in a test puts in its place, is copied as before."""
    get_state.fresh_state = True
    return get_state


def copy_state(state: Any) -> Any:
    """A deep copy of a state object, equal to ``copy.deepcopy(state)``
    (shared objects stay shared in the copy), made several times faster for
    what states are built of: dataclasses, lists, dicts and immutable
    scalars.  Anything else goes to ``copy.deepcopy`` with the same memo.
    Loads copy the destination's states on every restore, so this is on the
    migration path."""
    return _copy(state, {})


def _copy(obj: Any, memo: dict) -> Any:
    cls = type(obj)
    if cls in _ATOMS:
        return obj
    done = memo.get(id(obj))
    if done is not None:
        return done
    hook = _HOOKED.get(cls)
    if hook is None:
        hook = _HOOKED[cls] = not issubclass(cls, type) and cls not in copy._deepcopy_dispatch \
            and hasattr(cls, "__deepcopy__")
    if hook:
        # what copy.deepcopy does with a class's own __deepcopy__
        new = obj.__deepcopy__(memo)
        if new is not obj:
            memo[id(obj)] = new
        return new
    if cls is list:
        new: Any = []
        memo[id(obj)] = new
        new.extend([item if type(item) in _ATOMS else _copy(item, memo) for item in obj])
        return new
    if cls is dict:
        new = {}
        memo[id(obj)] = new
        for key, value in obj.items():
            new[_copy(key, memo)] = _copy(value, memo)
        return new
    if _plain(cls):
        new = cls.__new__(cls)
        memo[id(obj)] = new
        atoms = _ATOMS
        new.__dict__.update({name: value if type(value) in atoms else _copy(value, memo)
                             for name, value in obj.__dict__.items()})
        return new
    return copy.deepcopy(obj, memo)


# -- the table's entries ------------------------------------------------------------
Rule = Callable[[Any], bool] | range | frozenset


def _rule_text(rule: Rule) -> str:
    if isinstance(rule, range):
        return f"{rule.start:#x}..{rule.stop - 1:#x}"
    if isinstance(rule, frozenset):
        return "one of " + ", ".join(str(v) for v in sorted(rule))
    return (rule.__doc__ or rule.__name__).strip()


def _accepts(rule: Rule, value: Any) -> bool:
    if isinstance(rule, (range, frozenset)):
        return value in rule
    return bool(rule(value))


class _Entry:
    since: int
    until: int | None

    def present(self, version: int) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)


class Field(_Entry):
    """A scalar.  ``valid`` is a range, a frozenset or a predicate (whose
    docstring says what it wants) that a loaded value must meet."""

    def __init__(self, name: str, kind: Kind, *, since: int = 1, until: int | None = None,
                 path: str | None = None, valid: Rule | None = None):
        self.name, self.kind, self.since, self.until, self.valid = name, kind, since, until, valid
        self.path = name if path is None else path
        if self.path:
            _steps(self.path)


class Buffer(_Entry):
    """Raw bytes of a fixed size (QEMU's VMSTATE_BUFFER)."""

    def __init__(self, name: str, size: int, *, since: int = 1, until: int | None = None,
                 path: str | None = None, kind_name: str = "buffer", uint8_array: bool = False,
                 json_as: list[dict] | None = None):
        self.name, self.size, self.since, self.until, self.kind_name = name, size, since, until, kind_name
        # json_as: the JSON entries QEMU writes for these bytes, when they are
        # structured data vmstate carries without modeling
        self.uint8_array, self.json_as = uint8_array, json_as
        self.path = name if path is None else path
        if self.path:
            _steps(self.path)


class Unused(_Entry):
    """Bytes kept for compatibility: written as zeros, skipped on load."""

    def __init__(self, size: int, *, since: int = 1, until: int | None = None, name: str = "unused"):
        self.size, self.since, self.until, self.name = size, since, until, name


class Nested(_Entry):
    """Another description inlined with no header (QEMU's VMSTATE_STRUCT), or
    an array of it when ``count`` is given: a number, or the name of an
    earlier field holding it (QEMU's VARRAY).  A counted array must give
    ``valid`` bounds for its count, checked before anything is read, and
    ``make`` to create elements the destination does not have yet."""

    def __init__(self, name: str, description: "Description", *, count: int | str | None = None,
                 since: int = 1, until: int | None = None, path: str | None = None,
                 make: Callable[[int], Any] | None = None, json_indexed: bool = False):
        self.name, self.description, self.count = name, description, count
        self.since, self.until, self.make, self.json_indexed = since, until, make, json_indexed
        # path="" inlines a description whose fields live on the parent's state
        self.path = name if path is None else path
        if self.path:
            _steps(self.path)
        if isinstance(count, str) and make is None:
            raise ValueError(f"{name}: a counted array needs make=")


@dataclass(frozen=True)
class Subsection:
    """An optional trailer with its own name and version, written only when
    ``needed(state)`` holds."""

    description: "Description"
    needed: Callable[[Any], bool]


@dataclass(frozen=True)
class Check:
    """A rule across fields, checked after a load; ``field`` is the field
    blamed when ``rule(state)`` fails.  With ``uses_aux`` the rule is
    ``rule(state, aux)``, for rules that involve path="" values."""

    field: str
    rule: Callable[..., bool]
    message: str
    uses_aux: bool = False

    def holds(self, state: Any, aux: dict) -> bool:
        return bool(self.rule(state, aux) if self.uses_aux else self.rule(state))


Entry = Field | Buffer | Unused | Nested
# post_load(state, stream_version, aux): QEMU's conversions on load.  ``aux``
# holds path="" values, "now" (the virtual clock) and "subsections" (the names
# that were present).
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
        self._constructs: dict[int, cs.Construct] = {}
        self._fast: dict[int, _FastPath] = {}
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

    # -- construct: the reference definition of the bytes -------------------------
    def construct(self, version: int) -> cs.Construct:
        """The construct structure of the fields at a stream version, built
        once (subsections are framed by :func:`save_section`)."""
        built = self._constructs.get(version)
        if built is None:
            built = self._constructs[version] = cs.Struct(
                *(_construct_entry(e) for e in self.present(version)))
        return built

    def fast(self, version: int) -> "_FastPath":
        path = self._fast.get(version)
        if path is None:
            path = self._fast[version] = _FastPath(self, version)
        return path

    def size(self, version: int, state: Any = None) -> int:
        """Bytes of the fields at ``version``; counted arrays take their
        counts from ``state``."""
        total = 0
        for e in self.present(version):
            if isinstance(e, Field):
                total += e.kind.size
            elif isinstance(e, (Buffer, Unused)):
                total += e.size
            else:
                total += self._count(e, state) * e.description.size(e.description.version)
        return total

    def _count(self, entry: Nested, state: Any) -> int:
        if entry.count is None:
            return 1
        if isinstance(entry.count, int):
            return entry.count
        return resolve(state, self.entry(entry.count).path) if state is not None else 0

    # -- QEMU's JSON description ------------------------------------------------------
    def json_key(self, version: int, state: Any = None) -> tuple:
        """What the JSON description depends on: the version, the counts of
        counted arrays and which subsections are needed."""
        if state is None:
            return (version,)
        subs = tuple([s.description.json_key(s.description.version, state) if s.needed(state) else None
                      for s in self.subsections]) if self.subsections else ()
        return (version, self._counts(version, state), subs)

    def _counts(self, version: int, state: Any) -> tuple:
        """The counts of the counted arrays at ``version``."""
        counted = self._counts_of(version)
        return tuple([self._count(e, state) for e in counted]) if counted else ()

    def _counts_of(self, version: int) -> tuple:
        """The counted arrays at ``version``, found once per version."""
        counted = self._counted.get(version)
        if counted is None:
            counted = self._counted[version] = tuple(e for e in self.present(version)
                                                     if isinstance(e, Nested) and isinstance(e.count, str))
        return counted

    def json(self, version: int, state: Any = None) -> dict:
        """QEMU's JSON description of this section as written from ``state``
        (cached: it is the same for every state with the same key)."""
        key = self.json_key(version, state)
        cached = self._json.get(key)
        if cached is None:
            cached = self._json[key] = self._make_json(version, state)
        return cached

    def _make_json(self, version: int, state: Any) -> dict:
        out: dict = {"vmsd_name": self.name, "version": version, "fields": []}
        for e in self.present(version):
            if isinstance(e, Field):
                item = {"name": e.name, "type": e.kind.name, "size": e.kind.size}
            elif isinstance(e, Buffer) and e.json_as is not None:
                out["fields"].extend(e.json_as)
                continue
            elif isinstance(e, Buffer) and e.uint8_array:
                item = {"name": e.name, "array_len": e.size, "type": "uint8", "size": 1}
            elif isinstance(e, Buffer):
                item = {"name": e.name, "type": e.kind_name, "size": e.size}
            elif isinstance(e, Unused):
                item = {"name": e.name, "type": "unused_buffer", "size": e.size}
            else:
                inner = e.description
                item = {"name": e.name, "type": "struct", "struct": inner.json(inner.version),
                        "size": inner.size(inner.version)}
                if e.json_indexed:
                    out["fields"].extend({"name": e.name, "index": i, **{k: v for k, v in item.items() if k != "name"}}
                                         for i in range(self._count(e, state)))
                    continue
                if e.count is not None:
                    item["array_len"] = self._count(e, state)
            out["fields"].append(item)
        if state is not None:
            subs = [s.description.json(s.description.version, state)
                    for s in self.subsections if s.needed(state)]
            if subs:
                out["subsections"] = subs
        return out


def _construct_entry(e: Entry) -> cs.Construct:
    if isinstance(e, Field):
        return e.name / _CONSTRUCT[e.kind.fmt]
    if isinstance(e, Buffer):
        return e.name / cs.Bytes(e.size)
    if isinstance(e, Unused):
        return cs.Padding(e.size)
    inner = e.description.construct(e.description.version)
    if e.count is None:
        return e.name / inner
    if isinstance(e.count, int):
        return e.name / cs.Array(e.count, inner)
    counter = e.count
    return e.name / cs.Array(lambda ctx: ctx[counter], inner)


# -- the fast path ------------------------------------------------------------------
class _FastPath:
    """Generated pack/unpack code for one description at one version.

    The code is flat: nested descriptions are inlined (an array becomes a
    loop over its elements), and each run of fixed-size fields, across the
    boundaries of inlined structs, becomes one ``struct.Struct``, so a whole
    fixed-layout section packs or unpacks in one call, as hand-written code
    would.  The generated code only reads and assigns attributes along
    validated state paths.  A counted array's count is checked against its
    bounds before a single element is read (the bug class of CVE-2013-4527).

    ``sound(state, aux)`` is the validation every load runs, generated the
    same way: each field's rule, and at each nested struct its fields' rules
    and then its checks, then the description's checks, in table order, as
    :func:`_explain` walks them.  Generated, because the generic walk
    (entries filtered by version, paths resolved, rules dispatched by type)
    cost more than the decode itself.
    """

    def __init__(self, description: Description, version: int):
        structs: list[struct.Struct] = []
        rules: list[Any] = []
        checks: list[Callable[..., bool]] = []
        helpers: list[Callable] = []
        pack = ["def pack(s, out, aux):"]
        unpack = ["def unpack(buf, off, s, aux):"]
        sound = ["def sound(s, aux):"]
        run: list[tuple[str | None, str]] = []

        def flush(pad: str) -> None:
            if not run:
                return
            index = len(structs)
            structs.append(struct.Struct(">" + "".join(fmt for _, fmt in run)))
            values = [target for target, _ in run if target is not None]
            pack.append(f"{pad}out.append(S[{index}].pack({', '.join(values)}))")
            if values:
                names = ", ".join(f"v{i}" for i in range(len(values)))
                unpack.append(f"{pad}({names},) = S[{index}].unpack_from(buf, off)")
                unpack.extend(f"{pad}{target} = v{i}" for i, target in enumerate(values))
            unpack.append(f"{pad}off += {structs[index].size}")
            run.clear()

        def rule(pad: str, value: str, valid: Rule) -> None:
            rules.append(valid)
            at = f"R[{len(rules) - 1}]"
            if isinstance(valid, (range, frozenset)):
                sound.append(f"{pad}if {value} not in {at}: return False")
            else:
                sound.append(f"{pad}if not {at}({value}): return False")

        def helper(fn: Callable) -> str:
            helpers.append(fn)
            return f"H[{len(helpers) - 1}]"

        def emit(owner: Description, at_version: int, where: str, pad: str, depth: int) -> None:
            for e in owner.present(at_version):
                if isinstance(e, Field):
                    target = f"{where}.{e.path}" if e.path else f"aux[{e.name!r}]"
                    run.append((target, e.kind.fmt))
                    if e.valid is not None:
                        rule(pad, f"{where}.{e.path}" if e.path else f"aux.get({e.name!r})", e.valid)
                elif isinstance(e, Buffer):
                    run.append((f"{where}.{e.path}" if e.path else f"aux[{e.name!r}]", f"{e.size}s"))
                elif isinstance(e, Unused):
                    run.append((None, f"{e.size}x"))
                elif e.count is None:
                    inner = e.description
                    emit(inner, inner.version, f"{where}.{e.path}" if e.path else where, pad, depth)
                else:
                    flush(pad)
                    inner = e.description
                    items = f"{where}.{e.path}"
                    if isinstance(e.count, int):
                        count = str(e.count)
                    else:
                        count = f"{where}.{owner.entry(e.count).path}"
                        unpack.append(f"{pad}{helper(_count_check(owner.entry(e.count)))}({count})")
                        unpack.append(f"{pad}_resize({items}, {count}, {helper(e.make)})")
                    item = f"e{depth}"
                    for lines in (pack, unpack, sound):
                        lines.append(f"{pad}for {item} in {items}[:{count}]:")
                    emit(inner, inner.version, item, pad + "    ", depth + 1)
                    flush(pad + "    ")
            for check in owner.checks:
                at = f"C[{len(checks)}]"
                if type(check) is not Check:
                    checks.append(check.holds)
                    sound.append(f"{pad}if not {at}({where}, aux): return False")
                else:
                    checks.append(check.rule)
                    sound.append(f"{pad}if not {at}({where}, aux): return False" if check.uses_aux
                                 else f"{pad}if not {at}({where}): return False")

        emit(description, version, "s", "    ", 0)
        flush("    ")
        pack.append("    return out")
        unpack.append("    return off")
        sound.append("    return True")
        env = {"S": structs, "R": rules, "C": checks, "H": helpers, "_resize": _resize}
        source = "\n".join(pack) + "\n\n" + "\n".join(unpack) + "\n\n" + "\n".join(sound) + "\n"
        exec(compile(source, f"<vmstate {description.name} v{version}>", "exec"), env)  # noqa: S102
        self.pack = env["pack"]
        self.unpack = env["unpack"]
        self.sound = env["sound"]
        self.source = source
        self._pack_body, self._env = pack[1:-1], env


def _section_saver(description: Description, version: int) -> Callable[[Any, list], tuple]:
    """:func:`save_section` for one description at one version, generated:
    pre_save, the fields as the fast path packs them, each subsection that
    is needed with its header, and the JSON key, in one call."""
    fast = description.fast(version)
    env = dict(fast._env, D=description, SAVE=save_section, NEED=[], HEAD=[], SUB=[])
    lines = ["def save(s, out):",
             f"    aux = D.pre_save(s, {version})" if description.pre_save else "    aux = {}",
             *fast._pack_body]
    keys = []
    for i, sub in enumerate(description.subsections):
        inner = sub.description
        name = inner.name.encode()
        env["NEED"].append(sub.needed)
        env["HEAD"].append(bytes([SUBSECTION, len(name)]) + name + struct.pack(">I", inner.version))
        env["SUB"].append(inner)
        lines += [f"    if NEED[{i}](s):",
                  f"        out.append(HEAD[{i}])",
                  f"        k{i} = SAVE(SUB[{i}], SUB[{i}].version, s, out)",
                  "    else:",
                  f"        k{i} = None"]
        keys.append(f"k{i}, ")
    counted = description._counts_of(version)
    counts = "".join(f"s.{description.entry(e.count).path}, " for e in counted)
    lines.append(f"    return ({version}, ({counts}), ({''.join(keys)}))")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<vmstate {description.name} v{version} save>", "exec"), env)  # noqa: S102
    return env["save"]


class _BadCount(Exception):
    def __init__(self, counter: Field, value: int):
        self.counter = counter
        self.value = value


def _count_check(counter: Field) -> Callable[[int], None]:
    if counter.valid is None:
        raise ValueError(f"{counter.name} counts an array and must say its valid range")

    def check(value: int) -> None:
        if not _accepts(counter.valid, value):
            raise _BadCount(counter, value)
    return check


def _resize(items: list, n: int, make: Callable[[int], Any]) -> None:
    del items[n:]
    while len(items) < n:
        items.append(make(len(items)))


def to_container(description: Description, version: int, state: Any, aux: dict | None = None) -> dict:
    """The values of a state as construct's ``build`` takes them; without
    ``aux``, the path="" values come from the description's pre_save."""
    if aux is None:
        aux = description.pre_save(state, version) if description.pre_save else {}
    out: dict = {}
    for e in description.present(version):
        if isinstance(e, (Field, Buffer)):
            out[e.name] = resolve(state, e.path) if e.path else (aux or {})[e.name]
        elif isinstance(e, Nested):
            inner = e.description
            items = [to_container(inner, inner.version, item, aux) for item in _elements(description, e, state)]
            out[e.name] = items if e.count is not None else items[0]
    return out


# -- sections: fields, then subsections ---------------------------------------------
SUBSECTION = 0x05
_U32 = struct.Struct(">I")


def save_section(description: Description, version: int, state: Any, out: list) -> tuple:
    """Append a section's payload (fields, then needed subsections), and
    return ``description.json_key(version, state)``: the subsections it
    wrote decide it, so the stream's JSON description is found without
    asking every subsection again."""
    save = description._savers.get(version)
    if save is None:
        save = description._savers[version] = _section_saver(description, version)
    return save(state, out)


def load_section(description: Description, version: int, buf: bytes, off: int, state: Any,
                 now: int, where: str) -> int:
    """Load a section's payload at ``off`` into ``state`` (a copy the caller
    owns); validate it, apply the conversions, and return the offset after
    it.  Errors name the byte offset and the field path under ``where``."""
    aux: dict = {"now": now, "subsections": set()}
    if description.pre_load:
        description.pre_load(state, version, aux)
    off = _load_fields(description, version, buf, off, state, aux, where)
    if off < len(buf) and buf[off] == SUBSECTION:
        off = _load_subsections(description, buf, off, state, aux, now, where)
    if description.post_load:
        description.post_load(state, version, aux)
    return off


def _load_fields(description: Description, version: int, buf: bytes, start: int, state: Any,
                 aux: dict, where: str) -> int:
    fast = description.fast(version)
    try:
        end = fast.unpack(buf, start, state, aux)
    except (struct.error, _BadCount):
        _locate(description, version, buf, start, where)
        raise MalformedStream("fields could not be read", start, where) from None
    if not fast.sound(state, aux):
        _explain(description, version, state, aux, start, where)
    return end


def _load_subsections(description: Description, buf: bytes, off: int, state: Any, aux: dict,
                      now: int, where: str) -> int:
    prefix = description.name + "/"
    raw_prefix = prefix.encode()
    while off < len(buf) and buf[off] == SUBSECTION:
        # As QEMU: peek the name first; anything not named "<parent>/..."
        # ends the subsections and is left for the caller.
        if off + 2 > len(buf):
            return off
        n = buf[off + 1]
        if n < len(prefix) or off + 2 + n > len(buf):
            return off
        raw = bytes(buf[off + 2:off + 2 + n])
        if not raw.startswith(raw_prefix):
            return off
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedStream(f"subsection name {raw!r} is not ASCII", off, where) from None
        sub = description.subsection(name)
        if sub is None:
            raise UnknownSubsection(f"unknown subsection {name!r}", off, where)
        if off + 2 + n + 4 > len(buf):
            raise TruncatedStream("subsection header cut short", off, f"{where}/{name.removeprefix(prefix)}")
        (version,) = _U32.unpack_from(buf, off + 2 + n)
        inner_where = f"{where}/{name.removeprefix(prefix)}"
        check_version(sub.description, version, off + 2 + n, inner_where)
        if name in aux["subsections"]:
            raise MalformedStream(f"subsection {name!r} appears twice", off, where)
        aux["subsections"].add(name)
        off = load_section(sub.description, version, buf, off + 2 + n + 4, state, now, inner_where)
    return off


def check_version(description: Description, version: int, offset: int, where: str,
                  highest: int | None = None) -> None:
    """QEMU's version rule; ``highest`` plays a destination that only knows
    versions up to it (an older build of the device)."""
    top = description.version if highest is None else min(highest, description.version)
    if version > top:
        raise VersionTooNew(f"version {version} is newer than the {top} this destination loads",
                            offset, where)
    if version < description.minimum:
        raise VersionTooOld(f"version {version} is older than the minimum {description.minimum}",
                            offset, where)


def _value(e: Field, state: Any, aux: dict) -> Any:
    return resolve(state, e.path) if e.path else aux.get(e.name)


def _elements(description: Description, e: Nested, state: Any) -> list:
    items = resolve(state, e.path)
    return items[:description._count(e, state)] if e.count is not None else [items]


def _sound(description: Description, version: int, state: Any, aux: dict) -> bool:
    """Whether every rule holds: the quick test run on every load (the
    fast path's generated ``sound``)."""
    return description.fast(version).sound(state, aux)


def _explain(description: Description, version: int, state: Any, aux: dict, off: int, where: str) -> int:
    """Raise the first broken rule with its byte offset and field path."""
    start = off
    for e in description.present(version):
        if isinstance(e, Field):
            value = _value(e, state, aux)
            if e.valid is not None and not _accepts(e.valid, value):
                raise InvalidField(f"{value} is not valid ({_rule_text(e.valid)})", off, f"{where}.{e.name}")
            off += e.kind.size
        elif isinstance(e, (Buffer, Unused)):
            off += e.size
        else:
            inner = e.description
            for i, item in enumerate(_elements(description, e, state)):
                name = f"{where}.{e.name}" if e.count is None else f"{where}.{e.name}[{i}]"
                off = _explain(inner, inner.version, item, aux, off, name)
    for check in description.checks:
        if not check.holds(state, aux):
            raise InvalidField(check.message, start, f"{where}.{check.field}")
    return off


def _locate(description: Description, version: int, buf: bytes, start: int, where: str) -> int:
    """Walk the fields reading the bytes themselves and raise the precise
    error (truncation, an out-of-range count) at the first problem, naming
    its offset and path.  Returns the end offset when there is none."""
    off = start
    values: dict[str, Any] = {}
    for e in description.present(version):
        if isinstance(e, Nested):
            inner = e.description
            if e.count is None:
                off = _locate(inner, inner.version, buf, off, f"{where}.{e.name}")
                continue
            n = e.count if isinstance(e.count, int) else values[e.count]
            for i in range(n):
                off = _locate(inner, inner.version, buf, off, f"{where}.{e.name}[{i}]")
            continue
        size = e.kind.size if isinstance(e, Field) else e.size
        if off + size > len(buf):
            raise TruncatedStream(f"stream ends {off + size - len(buf)} byte(s) into this field",
                                  off, f"{where}.{e.name}")
        if isinstance(e, Field):
            (value,) = struct.unpack_from(">" + e.kind.fmt, buf, off)
            values[e.name] = value
            if e.valid is not None and not _accepts(e.valid, value):
                raise InvalidField(f"{value} is not valid ({_rule_text(e.valid)})", off, f"{where}.{e.name}")
        off += size
    return off
