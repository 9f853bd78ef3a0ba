"""tlcore has no import cycle, not even one hidden inside a function.

Two modules that import each other share an idea that neither owns; an import moved
into a function only hides the cycle from the interpreter until the call. So the
graph here counts every import in the source, found with ``ast`` (the code is not
run): module level, inside functions and under conditions alike.

The graph has one node per module of tlcore (every ``.py`` under ``tlcore/``; a
package is its ``__init__.py``) and one edge per import of a tlcore module:

- ``import tlcore.a.b``: ``tlcore.a.b``;
- ``from tlcore.a import b``: ``tlcore.a.b`` when that is a module, else ``tlcore.a``
  (``b`` is a name defined there, or re-exported by the package ``tlcore.a``);
- relative imports (``from . import b``, ``from ..a import b``), resolved against the
  importing module's package;
- ``importlib.import_module("tlcore.a")`` and ``__import__("tlcore.a")`` with a
  constant name.

A name that is not a module resolves to its longest prefix that is one. A module's
implicit dependency on the packages above it (Python runs ``tlcore/search/__init__.py``
before ``tlcore/search/worker.py``) is not an edge; an explicit import of the package is
(``from tlcore.search import StudySpec`` inside ``tlcore/search/x.py`` depends on the
package's ``__init__``, which imports its modules). A failure prints each cycle with
the file and line of every import on it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

Graph = dict[str, dict[str, list[str]]]  # module -> {imported module: ["path:line", ...]}


def _modules(root: Path, package: str) -> dict[str, Path]:
    """{dotted name: file} of every module of ``package``, whose folder is ``root / package``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported_names(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement (or import call) names, relative ones made absolute."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            yield target if alias.name == "*" else f"{target}.{alias.name}"
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")):
        yield node.args[0].value


def import_graph(root: Path, package: str) -> Graph:
    """The import graph of ``package`` (see the module docstring): only edges between its own modules."""
    modules = _modules(root, package)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {m: {} for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for name in _imported_names(node, module, path.name == "__init__.py"):
                if name != package and not name.startswith(package + "."):
                    continue
                target = resolve(name)
                if target is not None and target != module:
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    graph[module].setdefault(target, []).append(where)
    return graph


def find_cycles(graph: Graph | dict[str, set[str]]) -> list[list[str]]:
    """The cycles (``[a, b, ..., a]``): through each module on one, a shortest; [] when the graph is acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm (recursion as deep as the number of modules, ~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles: list[list[str]] = []
    for comp in components:  # through each module of the component, a shortest way back to it
        for start in sorted(comp):
            cycle = _shortest_cycle(graph, comp, start)
            first = cycle.index(min(cycle[:-1]))
            cycle = cycle[first:-1] + cycle[:first] + [cycle[first]]  # the same cycle starts at its least module
            if cycle not in cycles:
                cycles.append(cycle)
    return sorted(cycles)


def _shortest_cycle(graph: Graph | dict[str, set[str]], comp: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside the strongly connected ``comp``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    return paths[v] + [start]
                if w in comp and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is on no cycle of {sorted(comp)}")  # cannot happen in a component


def _explain(graph: Graph, cycle: list[str]) -> str:
    """The cycle, one import per line with where it is written."""
    return "\n".join(f"  {a} -> {b}   ({', '.join(dict.fromkeys(graph[a][b]))})" for a, b in zip(cycle, cycle[1:]))


def test_tlcore_has_no_import_cycle():
    graph = import_graph(REPO_ROOT, "tlcore")
    assert {"tlcore", "tlcore.search", "tlcore.search.worker", "tlcore.cli"} <= set(graph)  # it found the modules
    assert "tlcore.search.study" in graph["tlcore.search.worker"]  # and their imports
    cycles = find_cycles(graph)
    assert not cycles, (
        f"{len(cycles)} import cycle(s) inside tlcore (imports inside functions count too). Move what the "
        "modules share into the module that owns it, rather than hiding the cycle in a function:\n"
        + "\n\n".join(_explain(graph, c) for c in cycles))


# ------------------------------------------------------------------ the check can fail
def test_find_cycles_finds_a_cycle_and_only_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"a"}, "x": {"y"}, "y": {"x"}}) == [["a", "b", "a"], ["x", "y", "x"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]


def test_a_cycle_hidden_in_functions_and_relative_imports_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.d import VALUE\n")
    (pkg / "a.py").write_text("import os\n\n\ndef f():\n    from pkg import b  # a submodule\n    return b\n")
    (pkg / "b.py").write_text("from . import c\n")
    (pkg / "c.py").write_text("import importlib\n\nif True:\n    importlib.import_module('pkg.a')\n")
    (pkg / "sub" / "d.py").write_text("VALUE = 1\n\n\ndef g():\n    from ..sub import VALUE  # the package\n")
    (pkg / "e.py").write_text("import pkg.sub.d\nfrom pkg.sub import VALUE\n")

    graph = import_graph(tmp_path, "pkg")
    assert {m: set(e) for m, e in graph.items()} == {
        "pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.a"},
        "pkg.sub": {"pkg.sub.d"}, "pkg.sub.d": {"pkg.sub"}, "pkg.e": {"pkg.sub.d", "pkg.sub"},
    }
    assert graph["pkg.a"]["pkg.b"] == [str(Path("pkg", "a.py")) + ":5"]
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"], ["pkg.sub", "pkg.sub.d", "pkg.sub"]]
    assert "pkg.a -> pkg.b   (pkg/a.py:5)" in _explain(graph, find_cycles(graph)[0])
