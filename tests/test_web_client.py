"""The web client (runtime_demo/web) in Debian's headless Chromium, driven like a user: served on
127.0.0.1, it gives Python ONNX Runtime's items for every .onnx of the tiny build, with titles.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime_demo.histories import sample_histories
from runtime_demo.recommend import Recommendation, Recommender, format_json

ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = ROOT / "runtime_demo" / "web"
CHROMIUM = "/usr/bin/chromium"
NPM_INSTALL_TIMEOUT_S = 240
AGREEMENT_HISTORIES = 24
SCORE_TOLERANCE = 5e-6  # wasm and native kernels may differ in the last printed digits
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def onnx_artifacts(build: Path) -> list[Path]:
    manifest = json.loads((build / "manifest.json").read_text())
    found = [build / a["path"] for a in manifest["artifacts"] if a["format"] == "onnx"]
    assert len(found) >= 2, manifest["artifacts"]
    return found


@pytest.fixture(scope="module")
def web() -> Path:
    """runtime_demo/web with onnxruntime-web and playwright-core installed (`npm install --ignore-scripts`)."""
    for tool, why in (("node", "Node.js >= 18"), ("npm", "npm"), (CHROMIUM, "apt-get install chromium")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed ({why})")
    if not all((WEB_DIR / "node_modules" / p).is_dir() for p in ("onnxruntime-web", "playwright-core")):
        result = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=WEB_DIR,
                                capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT_S)
        if result.returncode != 0:
            pytest.skip(f"npm install failed (no registry?): {(result.stderr.strip().splitlines() or [''])[-1]}")
    return WEB_DIR


@pytest.fixture(scope="module")
def server(web, tiny_build):
    """serve.py on a free port of 127.0.0.1; its URL."""
    process = subprocess.Popen([sys.executable, str(web / "serve.py"), "--build", str(tiny_build), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = process.stdout.readline()
    if not line.startswith("serving http://127.0.0.1:"):
        process.kill()
        pytest.fail(f"serve.py did not start: {line} {process.stderr.read()}")
    yield line.split()[1].split("?")[0]
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def histories(movielens, tmp_path_factory) -> tuple[list[list[str]], Path]:
    real = sample_histories(movielens, AGREEMENT_HISTORIES - 2, seed=5)
    longest = max(([movielens.item_ids[i] for i in s] for s in movielens.sequences), key=len)
    chosen = real + [[], longest]
    path = tmp_path_factory.mktemp("web") / "histories.jsonl"
    path.write_text("".join(json.dumps(h) + "\n" for h in chosen))
    return chosen, path


def drive(web: Path, url: str, model: str, histories: Path, out: Path, screenshot: Path | None = None) -> dict:
    args = ["node", str(web / "drive.mjs"), "--url", url, "--model", model, "--histories", str(histories),
            "--out", str(out), "--chromium", CHROMIUM]
    if screenshot:
        args += ["--screenshot", str(screenshot)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_page_gives_python_onnx_runtimes_items_for_every_onnx(web, server, tiny_build, histories, tmp_path, movielens):
    chosen, path = histories
    for model in onnx_artifacts(tiny_build):
        shot = tmp_path / f"{model.stem}.png"
        page = drive(web, server, f"build/{model.name}", path, tmp_path / "answers.json", screenshot=shot)
        python = Recommender(model)
        expected = [format_json(python.recommend(h)) for h in chosen]
        assert len(page["answers"]) == len(chosen) >= 20
        for want, got in zip(expected, page["answers"]):
            w, g = json.loads(want), json.loads(got)
            assert g["items"] == w["items"], model.name
            assert g["scores"] == pytest.approx(w["scores"], abs=SCORE_TOLERANCE), model.name
            # the same JSON text for the same answer: spacing, order, 6 decimals (wasm and native ORT may
            # differ in a score's last printed digit, so the format is checked on the page's own values)
            assert got == format_json(Recommendation(g["items"], [float(s) for s in g["scores"]])), got
        assert shot.read_bytes()[:8] == PNG_MAGIC and all(t >= 0 for t in page["page_ms"])


def test_page_shows_titles(web, server, tiny_build, movielens, tmp_path):
    history = tmp_path / "one.jsonl"
    history.write_text(json.dumps([movielens.item_ids[i] for i in movielens.sequences[0][:5]]) + "\n")
    model = onnx_artifacts(tiny_build)[0]
    page = drive(web, server, f"build/{model.name}", history, tmp_path / "out.json", screenshot=tmp_path / "t.png")
    items = json.loads(page["answers"][0])["items"]
    shown = page["shown"][0]
    assert len(shown) == len(items) > 0
    for item, text in zip(items, shown):  # "<title> (<id>) <score>", rank order
        assert text.startswith(movielens.titles[item]) and f"({item})" in text, text


def test_bad_model_shows_one_error(web, server, tmp_path):
    history = tmp_path / "one.jsonl"
    history.write_text('["1"]\n')
    args = ["node", str(web / "drive.mjs"), "--url", server, "--model", "build/no-such.onnx", "--histories",
            str(history), "--out", str(tmp_path / "o.json"), "--chromium", CHROMIUM]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "not a loadable onnx artifact" in result.stderr, result.stderr


def test_bench_page_answers_as_python_onnx_runtime(web, tmp_path):
    """runtime_demo/web/bench.mjs: onnxruntime-web in headless Chromium gives ONNX Runtime's items, on a
    cross-origin isolated page (fine timer), with the wasm memory and the renderer's peak RSS."""
    import numpy as np

    from export.runtime import Predictor
    from tests.test_profiler import foreign_onnx
    from toolkit.browser import browser_client

    client = browser_client()
    assert client is not None
    model = foreign_onnx(tmp_path / "theirs.onnx", num_items=400, candidates=25)
    rows = np.zeros((8, 50), dtype=np.int64)
    for r in range(len(rows)):
        rows[r, 50 - 5 * (r + 1):] = np.arange(1, 5 * (r + 1) + 1) * 7 % 399 + 1
    bench = client.bench(model, rows, runs=100, warmup=5)
    predictor = Predictor(model)
    assert bench.items == [predictor.predict(row[None])[1][0].tolist() for row in rows]
    assert bench.isolated and len(bench.samples_ms) == 100 and all(t >= 0 for t in bench.samples_ms)
    assert bench.wasm_memory_bytes > model.stat().st_size and bench.renderer_peak_rss_bytes > bench.wasm_memory_bytes


def test_a_browser_profile_is_measured_in_chromium(web, tmp_path):
    """`profile --profile browser-wasm`: latency and memory from onnxruntime-web in Chromium, saying so,
    with the Python figures beside them (before: native ONNX Runtime on x86, and the report did not say)."""
    from tests.conftest import run_cli
    from tests.test_profiler import foreign_onnx

    model = foreign_onnx(tmp_path / "theirs.onnx")
    result = run_cli("profile", str(model), "--profile", "browser-wasm", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    a = json.loads(result.stdout)["artifacts"][0]
    memory, latency = a["memory"], a["latency"]
    assert memory["basis"] == "browser" and memory["verdict_bytes"] == memory["browser_bytes"] > 0
    assert "headless Chromium" in memory["how"] and memory["python_bytes"] > 0
    assert "browser/1" in latency["timings"] and "1" in latency["timings"] and "Chromium" in latency["how"]
    assert latency["device_p95_ms"] == pytest.approx(latency["timings"]["browser/1"]["quiet_p95_ms"] * latency["scale"])
    check = next(c for c in a["checks"] if c["budget"] == "memory_bytes")
    assert check["basis"] == "browser" and check["value"] == memory["browser_bytes"]
