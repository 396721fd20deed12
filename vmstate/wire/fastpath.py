"""The generated fast path: ``struct`` code per description and version.

A table walked generically (entries filtered by version, paths resolved,
rules dispatched by type) costs more than the decode itself, so each
description is compiled once per version into three flat functions:
``pack(s, out, aux)``, ``unpack(buf, off, s, aux)`` and ``sound(s, aux)``
(every rule the load checks), plus a section saver that adds pre_save, the
needed subsections and the JSON key.

Where the code for a field comes from: each entry of the table emits its own
lines (``Field.emit``, ``Buffer.emit``, ``Unused.emit`` and ``Nested.emit`` in
:mod:`vmstate.wire.table`) through the :class:`Codegen` below.  Nested
descriptions are inlined (an array becomes a loop over its elements), and
each run of fixed-size values, across the boundaries of inlined structs,
becomes one ``struct.Struct``, preceded in the source by a comment naming
the fields of the run.  :attr:`FastPath.source` is the whole text, which
``vmstate schema source SECTION VERSION`` prints; the tests check its bytes
against the construct definition.  The generated code only reads and
assigns attributes along validated state paths, and a counted array's count
is checked against its bounds before a single element is read (the bug
class of CVE-2013-4527).
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from vmstate.wire.kinds import accepts
from vmstate.wire.markers import SUBSECTION


class BadCount(Exception):
    """A counted array's count outside its bounds, met while unpacking; the
    section layer then walks the bytes to name the field and its offset."""


def _count_check(counter) -> Callable[[int], None]:
    if counter.valid is None:
        raise ValueError(f"{counter.name} counts an array and must say its valid range")

    def check(value: int) -> None:
        if not accepts(counter.valid, value):
            raise BadCount(counter.name)
    return check


def _resize(items: list, n: int, make: Callable[[int], Any]) -> None:
    del items[n:]
    while len(items) < n:
        items.append(make(len(items)))


class Codegen:
    """The source of one description at one version, as its entries emit it."""

    def __init__(self, name: str):
        self.name = name
        self.structs: list[struct.Struct] = []
        self.rules: list[Any] = []
        self.checks: list[Callable[..., bool]] = []
        self.helpers: list[Callable] = []
        self.pack = ["def pack(s, out, aux):"]
        self.unpack = ["def unpack(buf, off, s, aux):"]
        self.sound = ["def sound(s, aux):"]
        self._run: list[tuple[str | None, str, str]] = []

    # -- what entries call ----------------------------------------------------
    def field(self, target: str | None, fmt: str, name: str) -> None:
        """A fixed-size value (None: skipped bytes) joins the current run."""
        self._run.append((target, fmt, name))

    def rule(self, pad: str, value: str, valid) -> None:
        self.rules.append(valid)
        at = f"R[{len(self.rules) - 1}]"
        if isinstance(valid, (range, frozenset)):
            self.sound.append(f"{pad}if {value} not in {at}: return False")
        else:
            self.sound.append(f"{pad}if not {at}({value}): return False")

    def inline(self, inner, where: str, pad: str, depth: int) -> None:
        self.description(inner, inner.version, where, pad, depth)

    def array(self, inner, items: str, count: str, counter, make, pad: str, depth: int) -> None:
        """A loop over an array's elements; a counted one is bounded and the
        destination's list resized to the count first."""
        self.flush(pad)
        if counter is not None:
            self.unpack.append(f"{pad}{self._helper(_count_check(counter))}({count})")
            self.unpack.append(f"{pad}_resize({items}, {count}, {self._helper(make)})")
        item = f"e{depth}"
        for lines in (self.pack, self.unpack, self.sound):
            lines.append(f"{pad}for {item} in {items}[:{count}]:")
        self.description(inner, inner.version, item, pad + "    ", depth + 1)
        self.flush(pad + "    ")

    # -- the walk -----------------------------------------------------------------
    def description(self, owner, version: int, where: str, pad: str, depth: int) -> None:
        for e in owner.present(version):
            e.emit(self, owner, where, pad, depth)
        for check in owner.checks:
            fn, takes_aux = check.compiled()
            self.checks.append(fn)
            args = f"{where}, aux" if takes_aux else where
            self.sound.append(f"{pad}if not C[{len(self.checks) - 1}]({args}): return False"
                              f"  # {owner.name}: {check.field_name}")

    def flush(self, pad: str) -> None:
        if not self._run:
            return
        index = len(self.structs)
        layout = struct.Struct(">" + "".join(fmt for _, fmt, _ in self._run))
        self.structs.append(layout)
        names = ", ".join(name for _, _, name in self._run)
        for lines in (self.pack, self.unpack):
            lines.append(f"{pad}# S[{index}] {layout.format!r}: {names}")
        values = [target for target, _, _ in self._run if target is not None]
        self.pack.append(f"{pad}out.append(S[{index}].pack({', '.join(values)}))")
        if values:
            names = ", ".join(f"v{i}" for i in range(len(values)))
            self.unpack.append(f"{pad}({names},) = S[{index}].unpack_from(buf, off)")
            self.unpack.extend(f"{pad}{target} = v{i}" for i, target in enumerate(values))
        self.unpack.append(f"{pad}off += {layout.size}")
        self._run.clear()

    def _helper(self, fn: Callable) -> str:
        self.helpers.append(fn)
        return f"H[{len(self.helpers) - 1}]"


class FastPath:
    """``pack``, ``unpack`` and ``sound`` for one description at one version
    (see the module's docstring for where each line comes from)."""

    def __init__(self, description, version: int):
        gen = Codegen(description.name)
        gen.description(description, version, "s", "    ", 0)
        gen.flush("    ")
        gen.pack.append("    return out")
        gen.unpack.append("    return off")
        gen.sound.append("    return True")
        env = {"S": gen.structs, "R": gen.rules, "C": gen.checks, "H": gen.helpers, "_resize": _resize}
        self.source = "\n".join(gen.pack) + "\n\n" + "\n".join(gen.unpack) + "\n\n" + "\n".join(gen.sound) + "\n"
        exec(compile(self.source, f"<vmstate {description.name} v{version}>", "exec"), env)  # noqa: S102
        self.pack = env["pack"]
        self.unpack = env["unpack"]
        self.sound = env["sound"]
        self.pack_body, self.env = gen.pack[1:-1], env


def section_saver(description, version: int, save_subsection: Callable) -> tuple[Callable, str]:
    """A whole section's save for one description at one version, generated:
    pre_save, the fields as the fast path packs them, each subsection that
    is needed with its header (its payload by ``save_subsection``), and the
    JSON key, in one call.  Returns the function and its source."""
    fast = description.fast(version)
    env = dict(fast.env, D=description, SAVE=save_subsection, NEED=[], HEAD=[], SUB=[])
    lines = ["def save(s, out):",
             f"    aux = D.pre_save(s, {version})" if description.pre_save else "    aux = {}",
             *fast.pack_body]
    keys = []
    for i, sub in enumerate(description.subsections):
        inner = sub.description
        name = inner.name.encode()
        env["NEED"].append(sub.needed)
        env["HEAD"].append(bytes([SUBSECTION, len(name)]) + name + struct.pack(">I", inner.version))
        env["SUB"].append(inner)
        lines += [f"    if NEED[{i}](s):  # subsection {inner.name}",
                  f"        out.append(HEAD[{i}])",
                  f"        k{i} = SAVE(SUB[{i}], SUB[{i}].version, s, out)",
                  "    else:",
                  f"        k{i} = None"]
        keys.append(f"k{i}, ")
    counts = "".join(f"s.{description.entry(e.count).path}, " for e in description.counted(version))
    lines.append(f"    return ({version}, ({counts}), ({''.join(keys)}))")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<vmstate {description.name} v{version} save>", "exec"), env)  # noqa: S102
    return env["save"], source
