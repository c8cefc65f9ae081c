"""The package layering: no upward imports, no import cycles, no weights in ops/.

Ranks, lowest first: ops < models < renderers < training < app = widgets < entry points
(visualizer.py, train.py, docs/*.py and tests). A module may import modules of its own rank or a
lower one. Every ``import`` / ``from ... import`` counts, wherever it is in the file: at module
level, inside a function (a lazy import), or under ``if TYPE_CHECKING``. The module import graph
(same edges) must have no cycles, and ``ops/`` holds functions only: no ``nn.Module`` classes
(networks with weights live in ``models/``).

Everything is read with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

RANKS = {"ops": 0, "models": 1, "renderers": 2, "training": 3, "app": 4, "widgets": 4}
"""Rank of each layered package; everything else (entry points, docs scripts, tests) ranks above."""
TOP_RANK = max(RANKS.values()) + 1
SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules", "shared"}


def python_files() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the repository (hidden folders skipped)."""
    modules = {}
    for folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = Path(folder) / name
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


MODULES = python_files()


def rank(module: str) -> int:
    """A module's rank: its package's, or TOP_RANK for top-level scripts and other folders."""
    path = MODULES[module]
    top = path.relative_to(REPO_ROOT).parts[0]
    return RANKS.get(top, TOP_RANK) if len(path.relative_to(REPO_ROOT).parts) > 1 else TOP_RANK


def _resolve(name: str) -> str | None:
    """The repository module a dotted name refers to: the longest known prefix (a name imported
    from a module resolves to that module), or None for third-party and standard modules."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> dict[str, int]:
    """Repository modules that ``module`` imports anywhere in its file -> first line doing so."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..pkg import y
                base = package[:len(package) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # "from pkg import name": name may be a submodule (then that is the import) or an attribute.
            names = [f"{origin}.{alias.name}" for alias in node.names] if origin else []
            names = [n if n in MODULES else origin for n in names]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components (Tarjan) with more than one module, or with a self-loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:  # iterative, so deep graphs do not hit the recursion limit
        nonlocal counter
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [sorted(c) for c in components]


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One concrete cycle ``[a, b, ..., a]`` per strongly connected component."""
    return [_one_cycle(graph, set(c)) for c in strongly_connected(graph)]


def _one_cycle(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (BFS)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in component:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def _describe(cycle: list[str]) -> str:
    return " -> ".join(f"{a} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_the_scan_sees_the_packages():
    """Guard against a scan that silently finds nothing."""
    for package in RANKS:
        assert package in MODULES, f"{package}/__init__.py not found"
    assert "visualizer" in MODULES and "train" in MODULES
    assert sum(len(edges) for edges in GRAPH.values()) > 100


def test_no_import_goes_to_a_higher_layer():
    upward = [f"{MODULES[a].relative_to(REPO_ROOT)}:{line}: {a} (rank {rank(a)}) imports {b} (rank {rank(b)})"
              for a, edges in sorted(GRAPH.items()) for b, line in sorted(edges.items(), key=lambda e: e[1])
              if rank(b) > rank(a)]
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    components = strongly_connected(GRAPH)
    report = [f"{_describe(_one_cycle(GRAPH, set(c)))}\n    (all modules of this cycle: {', '.join(c)})"
              for c in components]
    assert not components, "import cycles (lazy imports count):\n" + "\n".join(report)


def _is_nn_module(base: ast.expr) -> bool:
    """``nn.Module``, ``torch.nn.Module`` or a bare ``Module`` (from torch.nn import Module)."""
    text = ast.unparse(base)
    return text in ("nn.Module", "torch.nn.Module", "Module")


def test_ops_defines_no_modules_with_weights():
    found = []
    for module, path in sorted(MODULES.items()):
        if module.split(".")[0] != "ops":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(_is_nn_module(b) for b in node.bases):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: class {node.name}")
    assert not found, "nn.Module classes in ops/ (functions only there; move them to models/):\n" + "\n".join(found)


def test_cycle_finder_reports_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    cycles = find_cycles(graph)
    assert sorted(cycles) == [["a", "b", "c", "a"], ["e", "e"]]
