"""The profiler and the report, on the artifacts of one tiny real build (tests/conftest.py: tiny_build).

The build itself profiled every artifact (report.json, manifest "profile"/"verdict"); the tests
here run the real `python -m toolkit profile` against those artifacts again.
"""

from __future__ import annotations

import json
import os
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
        assert {"model_bytes", "memory_bytes", "latency_ms", "parity", "quality"} <= budgets
        assert entry["profile"]["bytes"] == entry["bytes"]
        assert entry["verdict"]["fits"] == all(c["passed"] for c in entry["verdict"]["checks"])
    md = (tiny_build / "report.md").read_text()
    assert "| artifact | verdict |" in md and all(a["path"] in md for a in manifest["artifacts"])
    assert "top-10 agreement at least" in md and report["thresholds"]["quality_margin"] > 0


def test_profiler_size_equals_file_size(tiny_build, report):
    for a in report["artifacts"]:
        assert a["bytes"] == (tiny_build / a["path"]).stat().st_size
        model = next(c for c in a["checks"] if c["budget"] == "model_bytes")
        assert model["value"] == a["bytes"]


def test_figures_are_measured_and_labelled(report):
    profile = load_profile("mobile-arm")
    for a in report["artifacts"]:
        lat = a["latency"]
        assert set(lat["timings"]) >= {"1", str(profile.hardware.threads)}  # both settings measured
        assert lat["threads"] in (1, profile.hardware.threads)  # the faster one, recorded
        for t in (lat["timings"]["1"], lat["timings"][str(profile.hardware.threads)]):
            assert t["calls"] >= 1000 or t["seconds"] >= 1.0
            assert 0 < t["min_ms"] <= t["quiet_p50_ms"] <= t["quiet_p95_ms"]
            assert t["p50_ms"] <= t["p95_ms"] <= t["p99_ms"]
        # a .pte is judged on the native C++ client's figures (what the app runs), an .onnx on ONNX Runtime's
        native = a["format"] == "executorch" and a["memory"]["basis"] == "native"
        chosen = lat["timings"][f"native/{lat['threads']}" if native else str(lat["threads"])]
        assert lat["device_p95_ms"] == pytest.approx(chosen["quiet_p95_ms"] * lat["scale"])
        assert lat["host_load"]["cpus"] >= 1
        mem = a["memory"]
        assert mem["verdict_bytes"] > 0 and mem["basis"] == ("native" if a["format"] == "executorch" else "python")
        assert mem["python_model_bytes"] > 0
        assert a["parity"]["top10_agreement"] >= 0.8
        assert a["quality"]["k"] == 10 and a["quality"]["ndcg"] is not None
        if a["format"] == "executorch":
            ops = a["ops"]
            assert ops["delegates"].get("XnnpackBackend", 0) >= 1 and ops["xnnpack_nodes_total"] >= 1
            assert ops["outside_xnnpack_total"] == sum(ops["outside_xnnpack"].values())
            assert mem["program"]["planned_activation_bytes"] > 0 and mem["program_bytes"] > 0
        else:
            assert mem["basis"] == "python" and mem["verdict_bytes"] == mem["python_bytes"]  # runtime included
            assert a["ops"]["nodes"] == sum(a["ops"]["op_types"].values()) > 0


def test_figures_match_a_second_run_within_noise(tiny_build, report):
    """The build's figures vs. a fresh `python -m toolkit profile` of the same artifact."""
    first = next(a for a in report["artifacts"] if a["path"] == "model.fp32.onnx")
    result = run_cli("profile", str(tiny_build / "model.fp32.onnx"), "--profile", "mobile-arm", "--json", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    second = json.loads(result.stdout)["artifacts"][0]
    assert second["bytes"] == first["bytes"] and second["sha256"] == first["sha256"]
    assert second["parity"] == first["parity"]  # deterministic
    assert second["quality"] == first["quality"]  # the manifest's, matched by sha256
    assert second["ops"] == first["ops"]
    assert [c["passed"] for c in second["checks"]] == [c["passed"] for c in first["checks"]]
    # memory: the same allocations, so within a few MB; latency: a shared machine, so a loose factor
    assert abs(second["memory"]["verdict_bytes"] - first["memory"]["verdict_bytes"]) < 4e6
    assert 1 / 4 < second["latency"]["device_p50_ms"] / first["latency"]["device_p50_ms"] < 4


def _hogs(n: int) -> list[subprocess.Popen]:
    """Busy loops on `n` cores: another user's jobs on the build machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_a_busy_machine_does_not_flip_the_verdict(tiny_build, tmp_path):
    """Profiling with a CPU hog on every core gives the same verdicts as on a quiet host: the latency
    budget sits at 4x the quiet estimate, between it and what the hogs do to the raw figures."""
    artifact = "model.int8.pte"
    quiet = run_cli("profile", str(tiny_build / artifact), "--profile", "mobile-arm", "--json", timeout=300)
    q = json.loads(quiet.stdout)["artifacts"][0]
    tight = tmp_path / "tight.toml"
    text = open(load_profile("mobile-arm").path).read()
    tight.write_text(text.replace("latency_ms   = 8.0", f"latency_ms   = {4 * q['latency']['device_p95_ms']:.6f}"))
    calm = run_cli("profile", str(tiny_build / artifact), "--profile", str(tight), "--json", timeout=300)
    hogs = _hogs(os.cpu_count() or 2)
    try:
        busy = run_cli("profile", str(tiny_build / artifact), "--profile", str(tight), "--json", timeout=600)
    finally:
        for h in hogs:
            h.kill()
    a, b = json.loads(calm.stdout)["artifacts"][0], json.loads(busy.stdout)["artifacts"][0]
    assert b["latency"]["host_load"]["others_busy_fraction"] > 0.5, b["latency"]["host_load"]  # really busy
    assert [(c["budget"], c["passed"]) for c in a["checks"]] == [(c["budget"], c["passed"]) for c in b["checks"]]
    assert calm.returncode == busy.returncode


def test_missed_budget_exits_1_naming_it(tiny_build, tmp_path):
    text = load_profile("mobile-arm").path
    tight = tmp_path / "tight.toml"
    tight.write_text(open(text).read().replace("model_bytes  = 4_000_000", "model_bytes  = 1_000"))
    result = run_cli("profile", str(tiny_build / "model.fp32.onnx"), "--profile", str(tight), timeout=300)
    assert result.returncode == 1, result.stderr
    assert "model_bytes" in result.stderr and "over by" in result.stderr
    assert "FAIL  model" in result.stdout


def test_unknown_quality_never_passes(tiny_build, tmp_path):
    """An artifact without its build's manifest: quality cannot be judged, so it does not fit."""
    for name in ("model.fp32.onnx", "reference.npz"):
        shutil.copy(tiny_build / name, tmp_path / name)
    result = run_cli("profile", str(tmp_path / "model.fp32.onnx"), "--profile", "mobile-arm", timeout=300)
    assert result.returncode == 1 and "quality" in result.stderr and "unknown" in result.stderr


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


def test_a_measurement_that_failed_is_unknown_and_never_passes(tmp_path):
    """A runtime that crashed in the measuring process: size is known, every measured figure unknown,
    and unknown fails every check that needs it; the report still renders."""
    from pathlib import Path

    from toolkit.profiler import ProfileRequest, _unmeasured
    from toolkit.report import write_report

    profile = load_profile("mobile-arm")
    r = _unmeasured(Path("model.fp32.onnx"), "onnx", 1234, "ab" * 32, ProfileRequest(), profile,
                    "profile_artifact failed in its fresh process (signal 11: no output)")
    failed = {c.budget for c in r.checks if not c.passed}
    assert not r.fits and {"memory_bytes", "latency_ms", "parity", "quality"} <= failed
    assert "model_bytes" not in failed  # the file's size was measured
    write_report(tmp_path, profile, [r])
    assert "signal 11" in (tmp_path / "report.md").read_text()
