"""The profiler and the report, on the artifacts of one tiny real build (tests/conftest.py: tiny_build).

The build itself profiled every artifact (report.json, manifest "profile"/"verdict"); the tests
here run the real `python -m toolkit profile` against those artifacts again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli
from toolkit.profiles import load_profile


@pytest.fixture(scope="session")
def report(tiny_build) -> dict:
    return json.loads((tiny_build / "report.json").read_text())


def test_build_writes_report_plots_and_verdicts(tiny_build, report):
    for name in ("report.json", "report.md", "latency.png", "budget.png"):
        assert (tiny_build / name).is_file(), name
    manifest = json.loads((tiny_build / "manifest.json").read_text())
    assert [a["path"] for a in report["artifacts"]] == [a["path"] for a in manifest["artifacts"]]
    for entry in manifest["artifacts"]:
        assert entry["verdict"]["verdict"] in ("fits", "does not fit")
        budgets = {c["budget"] for c in entry["verdict"]["checks"]}
        assert {"model_bytes", "memory_bytes", "latency_ms"} <= budgets
        assert entry["profile"]["bytes"] == entry["bytes"]
    md = (tiny_build / "report.md").read_text()
    assert "| artifact | verdict |" in md and all(a["path"] in md for a in manifest["artifacts"])


def test_profiler_size_equals_file_size(tiny_build, report):
    for a in report["artifacts"]:
        assert a["bytes"] == (tiny_build / a["path"]).stat().st_size
        model = next(c for c in a["checks"] if c["budget"] == "model_bytes")
        assert model["value"] == a["bytes"]


def test_figures_are_measured_and_labelled(report):
    profile = load_profile("mobile-arm")
    for a in report["artifacts"]:
        assert a["latency"]["runs"] >= 1000 or a["latency"]["seconds"] >= 2.0
        assert a["latency"]["threads"] == profile.hardware.threads
        assert 0 < a["latency"]["p50_ms"] <= a["latency"]["p95_ms"] <= a["latency"]["p99_ms"]
        assert a["memory"]["basis"] == "measured" and a["memory"]["measured_bytes"] > 0
        assert a["device_latency"]["basis"] == "estimated"
        assert a["device_latency"]["p95_ms"] == pytest.approx(a["latency"]["p95_ms"] * a["host"]["gflops"]
                                                              / profile.hardware.gflops)
        assert a["parity"]["top10_agreement"] > 0.8
        assert "ndcg10" in a["quality"]
        if a["format"] == "executorch":
            ops = a["ops"]
            assert ops["delegates"].get("XnnpackBackend", 0) >= 1 and ops["xnnpack_nodes_total"] >= 1
            assert ops["outside_xnnpack_total"] == sum(ops["outside_xnnpack"].values())
            assert a["memory"]["estimated"]["planned_activation_bytes"] > 0
            assert a["memory"]["estimated_bytes"] > 0
        else:
            assert a["ops"]["nodes"] == sum(a["ops"]["op_types"].values()) > 0


def test_figures_match_a_second_run_within_noise(tiny_build, report):
    """The build's figures vs. a fresh `python -m toolkit profile` of the same artifact."""
    first = next(a for a in report["artifacts"] if a["path"] == "model.fp32.onnx")
    result = run_cli("profile", str(tiny_build / "model.fp32.onnx"), "--profile", "mobile-arm", "--json", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    second = json.loads(result.stdout)["artifacts"][0]
    assert second["bytes"] == first["bytes"] and second["sha256"] == first["sha256"]
    assert second["parity"] == first["parity"]  # deterministic
    assert second["quality"]["ndcg10"] == first["quality"]["ndcg10"]  # the manifest's, matched by sha256
    assert second["ops"] == first["ops"]
    # memory: the same allocations, so within a few MB; latency: a shared machine, so a loose factor
    assert abs(second["memory"]["measured_bytes"] - first["memory"]["measured_bytes"]) < 4e6
    assert 1 / 4 < second["latency"]["p50_ms"] / first["latency"]["p50_ms"] < 4
    assert 1 / 4 < second["host"]["gflops"] / first["host"]["gflops"] < 4


def test_missed_budget_exits_1_naming_it(tiny_build, tmp_path):
    text = load_profile("mobile-arm").path
    tight = tmp_path / "tight.toml"
    tight.write_text(open(text).read().replace("model_bytes  = 4_000_000", "model_bytes  = 1_000"))
    result = run_cli("profile", str(tiny_build / "model.fp32.onnx"), "--profile", str(tight), timeout=300)
    assert result.returncode == 1, result.stderr
    assert "model_bytes" in result.stderr and "over by" in result.stderr
    assert "FAIL  model" in result.stdout


def test_format_outside_the_profile_does_not_fit(tiny_build):
    result = run_cli("profile", str(tiny_build / "model.fp32.pte"), "--profile", "browser-wasm", timeout=300)
    assert result.returncode == 1
    assert "format" in result.stderr


@pytest.mark.parametrize("name", ["model.fp32.pte", "model.fp32.onnx"])
def test_corrupt_artifact_exits_2_with_one_line(tiny_build, tmp_path, name):
    shutil.copy(tiny_build / "reference.npz", tmp_path / "reference.npz")
    data = (tiny_build / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 3] + b"\x00garbage" * 64)
    result = run_cli("profile", str(tmp_path / name), "--profile", "mobile-arm", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_artifact_exits_2(tmp_path):
    result = run_cli("profile", str(tmp_path / "model.int8.pte"), "--profile", "mobile-arm", timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_calibrate_prints_the_profile_line():
    result = run_cli("calibrate", "--threads", "1", "--seconds", "0.3", timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("gflops"))
    assert float(line.split("=")[1]) > 0


def test_importing_the_profiler_stays_light():
    code = ("import sys, toolkit.profiler, toolkit.report, toolkit.calibrate; "
            "print([m for m in ('torch', 'executorch', 'onnxruntime', 'matplotlib', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
