"""The code's shape: no import cycles between modules, layers never import upward, and the CLI's
first checks do not load torch."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("toolkit", "export", "runtime_demo")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere (module level or inside functions)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is not a cycle
                    found.add(t)
        graph[name] = found
    return graph


def test_no_import_cycles():
    graph = _imports()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_layers_never_import_upward():
    graph = _imports()
    for name, deps in graph.items():
        if name.startswith(("toolkit", "export")):
            assert not any(d.startswith("runtime_demo") for d in deps), (name, deps)  # apps sit on top
        if name.startswith("export"):
            # the exporters use the model code, never the recipe, the plan or the profiler
            assert not deps & {"toolkit.recipe.build", "toolkit.planning.search", "toolkit.profiler.run", "toolkit.report.write",
                               "toolkit.cli", "toolkit.cli.commands", "toolkit.cli.parser",
                               "toolkit.recipe.manifest"}, (name, deps)
        if name.startswith("toolkit.core"):  # the foundations import nothing above them
            assert all(d.startswith("toolkit.core") for d in deps if d.startswith(("toolkit", "export"))), (name, deps)
