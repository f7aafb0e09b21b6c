"""The web client (runtime_demo/web) in Debian's headless Chromium, driven like a user: served on
127.0.0.1, it gives Python ONNX Runtime's items for every .onnx of the tiny build, with titles, and
keeps or drops seen items as the build's manifest.json says (`serving.repeats`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime_demo.histories import sample_histories
from runtime_demo.recommend import Recommendation, Recommender, format_json

from tests.conftest import CHROMIUM, ROOT, WEB_DIR  # the `web` fixture (conftest) installs the page's packages
AGREEMENT_HISTORIES = 24
SCORE_TOLERANCE = 5e-6  # float at run time: wasm and native kernels may differ in the last printed digits
# A graph that quantizes its activations at run time (ONNX Runtime's quantize_dynamic: DynamicQuantizeLinear
# before each int8 MatMul) turns a 1-ulp float difference between the wasm and native kernels into a whole
# quantization step wherever an activation lies on a rounding boundary: measured on a 200-user build, 3 of
# 900 real histories moved scores by up to 3.5e-3 (items unchanged), each one with a first-layer activation
# within 1e-5 of a half step. Such a graph is held to what run-time int8 rounding costs it against its float
# source (the artifact's parity.max_score_error in manifest.json, measured by the build), to the profiler's
# agreement bar for models quantized at export (mean overlap of the answers), and to the same items wherever
# its scores do not tie.
RUN_TIME_QUANTIZATION_OP = "DynamicQuantizeLinear"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def onnx_artifacts(build: Path) -> list[Path]:
    manifest = json.loads((build / "manifest.json").read_text())
    found = [build / a["path"] for a in manifest["artifacts"] if a["format"] == "onnx"]
    assert len(found) >= 2, manifest["artifacts"]
    return found


def score_tolerance(model: Path) -> float:
    """How far the page's scores may lie from native ONNX Runtime's for this artifact (see SCORE_TOLERANCE)."""
    import onnx

    if all(n.op_type != RUN_TIME_QUANTIZATION_OP for n in onnx.load(str(model)).graph.node):
        return SCORE_TOLERANCE
    entry = next(a for a in json.loads((model.parent / "manifest.json").read_text())["artifacts"]
                 if a["path"] == model.name)
    return max(SCORE_TOLERANCE, entry["parity"]["max_score_error"])


def assert_same_answers(model: Path, expected: list[str], page: list[str]) -> None:
    """The page's JSON answers against Python ONNX Runtime's: the same items, except that items whose
    scores tie within the tolerance may swap (or trade the last place); scores within the tolerance; and
    the same JSON text for the page's own values (spacing, order, 6 decimals)."""
    from toolkit.profiler.judge import PARITY_MIN_AGREEMENT

    tolerance = score_tolerance(model)
    assert len(page) == len(expected)
    overlap = []
    for want, got in zip(expected, page):
        w, g = json.loads(want), json.loads(got)
        assert len(g["items"]) == len(w["items"]), (model.name, want, got)
        ws, gs = dict(zip(w["items"], w["scores"])), dict(zip(g["items"], g["scores"]))
        for k, (wi, gi) in enumerate(zip(w["items"], g["items"])):
            if wi != gi:  # only a tie may reorder: the page's item scores as Python's item at that rank
                assert abs(g["scores"][k] - w["scores"][k]) <= tolerance, (model.name, k, want, got)
        for item in ws.keys() & gs.keys():
            assert gs[item] == pytest.approx(ws[item], abs=tolerance), (model.name, item, want, got)
        for item in ws.keys() - gs.keys():  # dropped off the end: it tied with the page's last answer
            assert ws[item] <= g["scores"][-1] + tolerance, (model.name, item, want, got)
        overlap.append(len(ws.keys() & gs.keys()) / max(1, len(ws)))
        assert got == format_json(Recommendation(g["items"], [float(s) for s in g["scores"]])), got
    if tolerance > SCORE_TOLERANCE:
        assert sum(overlap) / len(overlap) >= PARITY_MIN_AGREEMENT["quantized at export"], (model.name, overlap)
    else:
        assert all(json.loads(w)["items"] == json.loads(g)["items"] for w, g in zip(expected, page)), model.name


@contextmanager
def serving(web: Path, build: Path):
    """serve.py for `build` on a free port of 127.0.0.1; its URL."""
    process = subprocess.Popen([sys.executable, str(web / "serve.py"), "--build", str(build), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = process.stdout.readline()
    if not line.startswith("serving http://127.0.0.1:"):
        process.kill()
        pytest.fail(f"serve.py did not start: {line} {process.stderr.read()}")
    try:
        yield line.split()[1].split("?")[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(web, tiny_build):
    with serving(web, tiny_build) as url:
        yield url


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
        assert_same_answers(model, expected, page["answers"])
        assert shot.read_bytes()[:8] == PNG_MAGIC and all(t >= 0 for t in page["page_ms"])


def test_page_keeps_seen_items_only_when_the_manifest_allows_repeats(web, shop_build, tmp_path):
    """The shop build (--repeats allow): the page keeps items the user has seen, as Python does; the same
    artifacts under a manifest.json that says "drop" lose them, as Python's do."""
    from runtime_demo.histories import load_build_dataset

    build, _, _ = shop_build
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["serving"]["repeats"] == "allow"
    dataset = load_build_dataset(manifest)
    chosen = [[dataset.item_ids[i] for i in s] for s in dataset.sequences]
    path = tmp_path / "histories.jsonl"
    path.write_text("".join(json.dumps(h) + "\n" for h in chosen))
    dropping = tmp_path / "drop"
    shutil.copytree(build, dropping)
    (dropping / "manifest.json").write_text(json.dumps({**manifest, "serving": {**manifest["serving"],
                                                                                "repeats": "drop"}}))
    seen_kept = {}
    for folder in (build, dropping):
        with serving(web, folder) as url:
            for model in onnx_artifacts(folder):
                page = drive(web, url, f"build/{model.name}", path, tmp_path / "answers.json")["answers"]
                python = Recommender(model)
                assert python.allow_repeats == (folder == build)
                assert_same_answers(model, [format_json(python.recommend(h)) for h in chosen], page)
                seen_kept[folder, model.name] = sum(bool(set(json.loads(a)["items"]) & set(h))
                                                    for a, h in zip(page, chosen))
    assert all(n > 0 for (folder, _), n in seen_kept.items() if folder == build), seen_kept
    assert all(n == 0 for (folder, _), n in seen_kept.items() if folder == dropping), seen_kept


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
    from toolkit.profiler.browser import browser_client

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
