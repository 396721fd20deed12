"""The layering of vmstate/__init__.py holds for every import in the code,
function-level imports included, and the module graph has no cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vmstate

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vmstate", "devices", "schemas")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules a file imports, wherever the import stands."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in files}


def rank(module: str, layers=vmstate.LAYERS) -> tuple[int, str] | None:
    """The layer of a module and the package it belongs to."""
    for i, packages in enumerate(layers):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return i, package
    return None


def violations(edges: dict[str, set[str]], layers=vmstate.LAYERS) -> list[str]:
    """Every import against the layering, and every cycle."""
    found = []
    for module, targets in sorted(edges.items()):
        here = rank(module, layers)
        for target in sorted(targets):
            there = rank(target, layers)
            if here is None or there is None:
                continue
            if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
                found.append(f"{module} imports {target}: layer {there[0]} ({there[1]}) from layer {here[0]} "
                             f"({here[1]})")
    found.extend(f"cycle: {' -> '.join(c)}" for c in cycles(edges))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component larger than one
    module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_is_in_a_layer():
    unplaced = sorted(m for m in graph() if m not in ("vmstate",) and rank(m) is None)
    assert not unplaced


def test_the_code_follows_its_layering_and_has_no_cycle():
    assert violations(graph()) == []


def test_a_planted_cycle_and_an_upward_import_are_caught():
    edges = graph()
    edges["vmstate.core.clock"] = edges["vmstate.core.clock"] | {"devices.i8254"}
    edges["vmstate.wire.table"] = edges["vmstate.wire.table"] | {"vmstate.wire.section"}
    found = violations(edges)
    assert any(v.startswith("vmstate.core.clock imports devices.i8254") for v in found)
    assert any(v.startswith("cycle:") and "vmstate.wire.section" in v and "vmstate.wire.table" in v for v in found)


@pytest.mark.parametrize("source, target", [("devices.hpet", "vmstate.wire.table"), ("vmstate.wire.table", "devices.pci")])
def test_packages_of_one_layer_do_not_import_each_other(source, target):
    assert violations({source: {target}}) != []
