"""End to end: the real `python -m toolkit` CLI, real exporters and runtimes, on a slice of real data."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY_BUILD_ARGS, run_cli

MANIFEST_KEYS = ["teacher.parameters", "teacher.metrics.hr10", "teacher.metrics.ndcg10", "student.parameters",
                 "student.metrics.hr10", "student.metrics.ndcg10", "popularity.metrics.hr10",
                 "popularity.metrics.ndcg10"]


def _get(d: dict, dotted: str):
    for key in dotted.split("."):
        d = d[key]
    return d


def test_manifest_has_the_contract_keys(tiny_build):
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    for key in MANIFEST_KEYS:
        assert isinstance(_get(manifest, key), (int, float)), key
    assert manifest["dataset"]["name"] == "movielens-100k" and manifest["dataset"]["users"] == 150
    assert manifest["profile"]["name"] == "mobile-arm"
    kinds = {(a["format"], a["precision"], a["quantization"] != "none") for a in manifest["artifacts"]}
    assert {("executorch", "fp32", False), ("executorch", "int8", True), ("onnx", "fp32", False),
            ("onnx", "int8", True)} <= kinds
    # the plan's student: every candidate recorded, the chosen one trained and measured
    plan = manifest["plan"]
    tried = [c for c in plan["candidates"] if c["tried"]]
    assert tried and tried[0]["candidate"] == plan["candidate"] and tried[0]["fits_measured"]
    assert manifest["student"]["config"]["dim"] == plan["candidate"]["dim"] == 16
    if plan["candidate"]["precision"] != "fp32":  # the compressed student is exported next to the others
        compressed = [a for a in manifest["artifacts"] if a["path"].startswith("model.compressed.")]
        assert {a["format"] for a in compressed} == {"executorch", "onnx"}
        assert all(a["precision"] == plan["candidate"]["precision"] for a in compressed)
    report = (tiny_build / "report.md").read_text()
    assert "# Plan: the student for mobile-arm" in report and (tiny_build / "candidates.png").stat().st_size > 0
    for a in manifest["artifacts"]:
        data = (tiny_build / a["path"]).read_bytes()
        assert a["bytes"] == len(data) and a["sha256"] == hashlib.sha256(data).hexdigest()
        assert 0.0 <= a["metrics"]["ndcg10"] <= a["metrics"]["hr10"] <= 1.0
        if a["precision"] == "fp32":
            assert a["parity"]["top10_exact"] == 1.0, a
        else:
            assert a["parity"]["top10_agreement"] >= 0.8, a
    items = json.loads((tiny_build / "items.json").read_text())
    assert items[0] == "" and len(items) == 1683


def test_artifact_metrics_are_what_the_runtimes_give(tiny_build, movielens):
    """Re-evaluate every artifact independently through its runtime: same figures as the manifest."""
    from export.runtime import Predictor
    from toolkit.data import split_leave_one_out
    from toolkit.evaluate import evaluate_topk
    from toolkit.pipeline import first_users

    split = split_leave_one_out(first_users(movielens, 150))
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        predictor = Predictor(tiny_build / a["path"])
        metrics, _ = evaluate_topk(lambda h: predictor.predict(h)[1], split, "test", predictor.max_history)
        assert metrics.ndcg10 == pytest.approx(a["metrics"]["ndcg10"], abs=1e-9), a["path"]
        assert metrics.hr10 == pytest.approx(a["metrics"]["hr10"], abs=1e-9), a["path"]


def test_second_build_reuses_the_teacher_and_keeps_the_old_build_on_failure(tiny_build, tmp_path):
    out = tiny_build.parent / "again"
    first = run_cli("build", "--out", str(out), *TINY_BUILD_ARGS)
    assert "teacher" in first.stdout and "loaded from cache" in first.stdout, first.stdout + first.stderr
    before = (out / "manifest.json").read_bytes()
    failed = run_cli("build", "--out", str(out), "--data", str(tmp_path / "missing.csv"), *TINY_BUILD_ARGS)
    assert failed.returncode == 2
    assert (out / "manifest.json").read_bytes() == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".again")], "staging left behind"


@pytest.mark.parametrize("args,message", [
    (["build", "--profile", "no-such-device"], "unknown profile; valid: "),
    (["build", "--profile", "../elsewhere/phone.toml"], "no such file"),
    (["build", "--data", "/nonexistent.csv"], "--data /nonexistent.csv: no such file"),
    (["build", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["build", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run_cli(*args, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_columns_name_the_flag(tmp_path):
    f = tmp_path / "log.csv"
    f.write_text("a,b,c\n1,2,3\n1,3,4\n1,4,5\n")
    result = run_cli("build", "--data", str(f), "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 2 and "--user-col" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_and_import_are_fast_and_light():
    for args in (["--help"], ["build", "--help"]):
        result = run_cli(*args, timeout=60)
        assert result.returncode == 0 and "usage:" in result.stdout
    probe = "import sys, toolkit, toolkit.cli; print(any(m in sys.modules for m in ('torch', 'executorch', 'onnxruntime')))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
