"""The public Python API is the contract (issue 22): every name in `toolkit.__all__` resolves, `import
toolkit` stays light (no torch, no numpy), and the CLI, bench/ and runtime_demo/ import no private name
(a name or module path component starting with "_") of toolkit or export."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("toolkit", "export")


def private_imports(path: Path) -> list[str]:
    """`file:line: what` for each private toolkit/export import or attribute access in `path`."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path

    def private(dotted: str) -> bool:
        return any(part.startswith("_") and not (part.startswith("__") and part.endswith("__"))
                   for part in dotted.split("."))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if private(node.module) or private(alias.name):
                    found.append(f"{rel}:{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES and private(alias.name):
                    found.append(f"{rel}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute):
            parts, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in PACKAGES:
                dotted = ".".join([value.id, *reversed(parts)])
                if private(dotted):
                    found.append(f"{rel}:{node.lineno}: {dotted}")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            name = node.args[0].value
            if name.split(".")[0] in PACKAGES and private(name):
                found.append(f"{rel}:{node.lineno}: import_module({name!r})")
    first = {}  # one hit a line (an attribute chain is visited once per link)
    for hit in found:
        first.setdefault(hit.rsplit(": ", 1)[0], hit)
    return sorted(first.values(), key=lambda s: int(s.rsplit(": ", 1)[0].rsplit(":", 1)[1]))


def scanned_files() -> list[Path]:
    files = [*sorted((ROOT / "bench").rglob("*.py")), *sorted((ROOT / "runtime_demo").rglob("*.py")),
             *sorted((ROOT / "toolkit" / "cli").rglob("*.py"))]
    return [f for f in files if "node_modules" not in f.parts]


def test_every_public_name_resolves_and_import_stays_light():
    code = ("import sys, toolkit\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'onnxruntime', 'executorch') if m in sys.modules)\n"
            "assert not heavy, f'import toolkit imported {heavy}'\n"
            "missing = [n for n in toolkit.__all__ if getattr(toolkit, n, None) is None]\n"
            "assert not missing, f'unresolved public names: {missing}'\n"
            "assert sorted(dir(toolkit)) == sorted(toolkit.__all__)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]


def test_the_cli_bench_and_runtime_demo_import_no_private_name():
    files = scanned_files()
    assert any(f.parent.name == "bench" for f in files) and any("runtime_demo" in f.parts for f in files)
    found = [hit for f in files for hit in private_imports(f)]
    assert not found, "private toolkit/export names imported (use toolkit's public API):\n" + "\n".join(found)


def test_the_scan_finds_each_kind_of_private_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("import toolkit\n"
                       "from toolkit.recipe.build import _user_teacher\n"
                       "from export._impl import thing\n"
                       "import toolkit._hidden.mod\n"
                       "x = toolkit.recipe._secret.value\n"
                       "from toolkit.api import build, train_plan\n"
                       "y = toolkit.__version__\n", encoding="utf-8")
    found = private_imports(planted)
    lines = [int(hit.split(":")[1]) for hit in found]
    assert lines == [2, 3, 4, 5], found
    assert all(hit.startswith(f"{planted}:") for hit in found)
