"""The README's "Python API" example, run as it is written there (a fresh process, a real quick run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_api_example_runs(cache_dir, tmp_path):
    example = readme_example()
    assert "toolkit.plan(" in example and "toolkit.profile_artifact(" in example
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True,
                            timeout=1800, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("model.")]
    assert [line.split(":")[0] for line in lines] == ["model.pte", "model.onnx"], result.stdout
    assert all(re.search(r"NDCG@10 0\.\d{4}", line) for line in lines)
    assert sorted(p.name for p in (tmp_path / "my-build").iterdir()) == ["items.json", "model.onnx", "model.pte"]
