"""The package's imports, read with ``ast`` (imports inside functions and under
TYPE_CHECKING count): no cycle anywhere, and the layers of docs/architecture.md hold — a
lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tunebook

ROOT = Path(tunebook.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (p, package)
    return out


MODULES = _modules()


def _targets(module: str, package: bool, node: ast.AST) -> list[str]:
    """The tunebook modules an import statement loads (``from . import x``: the submodule
    x where there is one, else the package)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - (0 if package else 1)]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        names = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in MODULES else stem for a in node.names]
    return [n for n in names if n in MODULES]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, (path, package) in MODULES.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(_targets(name, package, node))
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_imports_inside_functions_and_finds_a_cycle():
    """The checker itself: a cycle made only by an import inside a function is found."""
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    graph = import_graph()
    assert "tunebook.engine.calibrate" in graph["tunebook.cli"]  # imported inside cmd_calibrate
    assert "tunebook.executors.raycluster" in graph["tunebook.executors.ray_kind"]  # inside _open


def test_no_import_cycle_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


#: (a module or package prefix, the modules it must never import): the layers, bottom up —
#: records → training → executors → the driver (execute) → loops (search, loop) → runner →
#: cli; analysis reads records only; the report renders analysis.
FORBIDDEN = [
    ("tunebook.records", ["tunebook.spec", "tunebook.store", "tunebook.engine", "tunebook.execute"]),
    ("tunebook.training", ["tunebook.execute", "tunebook.executors", "tunebook.loop", "tunebook.search"]),
    ("tunebook.engine", ["tunebook.execute", "tunebook.executors", "tunebook.store", "tunebook.analysis",
                         "tunebook.spec", "tunebook.checkpoints"]),  # a checkpoint is handed in, never opened here
    ("tunebook.checkpoints", ["tunebook.engine", "tunebook.training", "tunebook.executors", "tunebook.execute"]),
    ("tunebook.live", ["tunebook.execute", "tunebook.executors", "tunebook.runner", "tunebook.cli",
                       "tunebook.progress"]),
    ("tunebook.executors", ["tunebook.execute", "tunebook.loop", "tunebook.search", "tunebook.runner",
                            "tunebook.cli", "tunebook.store", "tunebook.analysis", "tunebook.report"]),
    ("tunebook.execute", ["tunebook.loop", "tunebook.search", "tunebook.runner", "tunebook.cli",
                          "tunebook.report"]),
    ("tunebook.analysis", ["tunebook.execute", "tunebook.executors", "tunebook.engine", "tunebook.loop",
                           "tunebook.search", "tunebook.runner", "tunebook.cli", "tunebook.report"]),
    ("tunebook.report", ["tunebook.execute", "tunebook.executors", "tunebook.engine", "tunebook.loop",
                         "tunebook.runner", "tunebook.cli"]),
    ("tunebook.planner", ["tunebook.engine.calibrate", "tunebook.engine.stacked", "tunebook.execute",
                          "tunebook.executors"]),
]


@pytest.mark.parametrize("low, above", FORBIDDEN, ids=[low for low, _ in FORBIDDEN])
def test_a_lower_layer_never_imports_a_higher_one(low, above):
    graph = import_graph()
    wrong = sorted((m, d) for m, deps in graph.items() if m == low or m.startswith(low + ".")
                   for d in deps if any(d == a or d.startswith(a + ".") for a in above))
    assert not wrong, f"{low} imports above its layer: {wrong}"


def test_no_module_imports_the_package_facade():
    """``tunebook/__init__.py`` loads the public names lazily from every layer (by
    ``importlib``, which this walk does not see), so a module that imported the facade
    could close a cycle the walk misses: none does."""
    importers = sorted(m for m, deps in import_graph().items() if "tunebook" in deps)
    assert importers == [], importers
    facade = (ROOT / "__init__.py").read_text()
    assert "importlib.import_module" in facade  # the lazy loader this test stands in for
