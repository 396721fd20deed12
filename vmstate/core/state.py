"""State objects: paths into them, copies of them, and loading them back.

A device keeps all it migrates in plain state objects (dataclasses of ints,
bytes, lists and nested dataclasses).  The wire format addresses their
fields by path (``channels[0].count``), a load writes into a copy the caller
owns, and a device takes a loaded state back field by field.  Devices use
only this module of the migration machinery, not the wire format.
"""
from __future__ import annotations

import copy
import copyreg
import dataclasses
import functools
import re
from typing import Any, Callable, Iterable

_PATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])?(\.[A-Za-z_]\w*(\[\d+\])?)*")
_STEP = re.compile(r"([A-Za-z_]\w*)(?:\[(\d+)\])?")


@functools.lru_cache(maxsize=4096)
def steps(path: str) -> tuple[tuple[str, int | None], ...]:
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
    for attr, index in steps(path):
        obj = getattr(obj, attr)
        if index is not None:
            obj = obj[index]
    return obj


def fresh_state(get_state: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark a device's ``get_state`` as returning a state the caller owns:
    every container in it (dataclass, list, dict) is new, and what it shares
    with the device are immutable leaves (ints, bytes, None).  A load may
    then write into it without copying it first, as :func:`copy_state`
    would.  Only the marked function counts: a subclass's override, or a
    stand-in a test puts in its place, is copied as before."""
    get_state.fresh_state = True
    return get_state


def owned(get_state: Callable[[], Any]) -> Any:
    """What ``get_state()`` returns, as a state the caller may write into."""
    state = get_state()
    return state if getattr(get_state, "fresh_state", False) else copy_state(state)


def take(target: Any, state: Any, skip: Iterable[str] = ()) -> None:
    """Set each of a state dataclass's fields on ``target`` (a device whose
    attributes are named as its state's fields), but those in ``skip``,
    which the device loads its own way (timers, buffers)."""
    skipped = frozenset(skip)
    for item in dataclasses.fields(state):
        if item.name not in skipped:
            setattr(target, item.name, getattr(state, item.name))


_ATOMS = frozenset({int, bool, float, str, bytes, type(None)})
_PLAIN: dict[type, bool] = {}


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


def copy_state(state: Any) -> Any:
    """A deep copy of a state object, equal to ``copy.deepcopy(state)``
    (shared objects stay shared in the copy), made several times faster for
    what states are built of: dataclasses, lists, dicts and immutable
    scalars.  Anything else goes to ``copy.deepcopy`` with the same memo.
    Saves and loads copy states every time, so this is on the migration
    path; it is the one copy mechanism of the project."""
    return _copy(state, {})


def _copy(obj: Any, memo: dict) -> Any:
    cls = type(obj)
    if cls in _ATOMS:
        return obj
    done = memo.get(id(obj))
    if done is not None:
        return done
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
    if _PLAIN.get(cls) or _plain(cls):
        new = cls.__new__(cls)
        memo[id(obj)] = new
        fields = obj.__dict__
        if set(map(type, fields.values())) <= _ATOMS:
            # the usual state object: ints and bytes only (a C-speed test,
            # then a C-speed copy: states are copied on every save and load)
            new.__dict__.update(fields)
        else:
            atoms = _ATOMS
            new.__dict__.update({name: value if type(value) in atoms else _copy(value, memo)
                                 for name, value in fields.items()})
        return new
    return copy.deepcopy(obj, memo)
