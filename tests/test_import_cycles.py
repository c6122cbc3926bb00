"""No runtime import cycle between the modules of evloop and replay.

Each module's imports are read with ``ast``: those that run when the module
is imported (its top level, including top-level ``if``/``try`` bodies), not
those under ``if TYPE_CHECKING:`` and not function-local ones. Importing
``a.b.c`` also runs the ``__init__`` of ``a.b`` and ``a`` when they are not
already being imported (they are when the importer lives inside them), so
those count as edges too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evloop", "replay")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run at import time: not in functions or classes' methods."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _runtime_imports(block)
            for handler in node.handlers:
                yield from _runtime_imports(handler.body)
        elif isinstance(node, ast.With):
            yield from _runtime_imports(node.body)


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The modules of ours that ``node`` (in module ``name``) imports."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    out = {source} if source in known else set()
    out.update(f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in known)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")) + 1)}
        for node in _runtime_imports(ast.parse(path.read_text(), str(path)).body):
            for target in _targets(name, path, node, known):
                parts = target.split(".")
                # Importing a.b.c first runs a and a.b, unless they are already importing.
                for i in range(1, len(parts) + 1):
                    step = ".".join(parts[:i])
                    if step in known and step not in own_packages:
                        edges.add(step)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (as a path that ends where it starts), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        on_path = [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.pop()
                done.add(node)
            elif child in on_path:
                return [*on_path[on_path.index(child):], child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                on_path.append(child)
    return None


def test_there_is_no_runtime_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "runtime import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_imports_of_every_kind() -> None:
    graph = import_graph()
    assert "replay.driver" in graph["replay.api"]  # from .driver import ...
    assert "replay.host.mode" in graph["replay.api"]  # from .host.mode import ...
    assert "replay.host" in graph["replay.api"]  # the package runs first
    assert "replay.errors" in graph["replay.scenario"]
    # Under TYPE_CHECKING, or inside a function: not a runtime edge.
    assert "replay.host.monitors" not in graph["replay.host.simulation"]
    assert "replay.api" not in graph["replay.pytest_plugin"]
    # evloop never imports replay.
    assert not any(t.startswith("replay") for m, ts in graph.items() if m.startswith("evloop")
                   for t in ts)


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"b2"}, "b2": {"b"}}, ["b", "b2", "b"]),
    ],
)
def test_find_cycle_names_the_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle
