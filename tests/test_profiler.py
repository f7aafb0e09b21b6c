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
from toolkit.profiler.onnx_client import onnx_header_dir
from toolkit.core.profiles import load_profile


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
        # each format is judged on its native client's figures (what the app runs): the C++ ExecuTorch client
        # for a .pte, the ONNX Runtime C API client for an .onnx (where its header is installed)
        native = a["memory"]["basis"] == "native"
        chosen = lat["timings"][f"native/{lat['threads']}" if native else str(lat["threads"])]
        assert lat["device_p95_ms"] == pytest.approx(chosen["quiet_p95_ms"] * lat["scale"])
        assert lat["host_load"]["cpus"] >= 1
        mem = a["memory"]
        onnx_native = onnx_header_dir() is not None
        assert mem["verdict_bytes"] > 0 and mem["basis"] == (
            "native" if a["format"] == "executorch" or onnx_native else "python")
        assert mem["python_model_bytes"] > 0
        assert a["parity"]["top10_agreement"] >= 0.8
        assert a["quality"]["k"] == 10 and a["quality"]["ndcg"] is not None
        if a["format"] == "executorch":
            ops = a["ops"]
            assert ops["delegates"].get("XnnpackBackend", 0) >= 1 and ops["xnnpack_nodes_total"] >= 1
            assert ops["outside_xnnpack_total"] == sum(ops["outside_xnnpack"].values())
            assert mem["program"]["planned_activation_bytes"] > 0 and mem["program_bytes"] > 0
        else:
            assert mem["verdict_bytes"] == (mem["native_bytes"] if onnx_native else mem["python_bytes"])  # runtime included
            assert mem["python_bytes"] > 0  # always beside it
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


def test_without_its_manifest_parity_and_quality_are_not_checked(tiny_build, tmp_path):
    """An artifact without the manifest that lists it: a reference.npz beside it is not known to be its
    model's, and no quality was measured through it, so neither check passes: both are reported as not
    checked, with what to give (an unknown figure of a check that was asked for still fails)."""
    for name in ("model.fp32.onnx", "reference.npz"):
        shutil.copy(tiny_build / name, tmp_path / name)
    result = run_cli("profile", str(tmp_path / "model.fp32.onnx"), "--profile", "mobile-arm", timeout=300)
    assert result.returncode in (0, 1), result.stderr
    assert "pass  top-10" not in result.stdout and "pass  NDCG" not in result.stdout
    assert "not checked  parity" in result.stdout and "not checked  quality: no interactions" in result.stdout


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
    code = ("import sys, toolkit.profiler.run, toolkit.profiler.worker, toolkit.report.write, "
            "toolkit.report.markdown, toolkit.report.plots, toolkit.profiler.calibrate; "
            "print([m for m in ('torch', 'executorch', 'onnxruntime', 'matplotlib', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_measurement_that_failed_is_unknown_and_never_passes(tmp_path):
    """A runtime that crashed in the measuring process: size is known, every measured figure unknown,
    and unknown fails every check that needs it; the report still renders."""
    from pathlib import Path

    from toolkit.profiler.records import ProfileRequest
    from toolkit.profiler.run import _unmeasured
    from toolkit.report.write import write_report

    profile = load_profile("mobile-arm")
    r = _unmeasured(Path("model.fp32.onnx"), "onnx", 1234, "ab" * 32, ProfileRequest(), profile,
                    "profile_artifact failed in its fresh process (signal 11: no output)")
    failed = {c.budget for c in r.checks if not c.passed}
    assert not r.fits and {"memory_bytes", "latency_ms", "parity", "quality"} <= failed
    assert "model_bytes" not in failed  # the file's size was measured
    write_report(tmp_path, profile, [r])
    assert "signal 11" in (tmp_path / "report.md").read_text()


# --- an artifact the toolkit did not build (issue 25, point 8) -----------------------------------

def foreign_onnx(path, num_items: int = 300, max_history: int = 50, candidates: int = 40, dim: int = 16,
                 history_type: str = "int64", outputs: tuple[str, ...] = ("scores", "items")):
    """A recommender made elsewhere, with onnx.helper: mean of the history's item vectors, dot product with
    every item, top candidates. Follows the artifact contract unless told otherwise."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = rng.normal(size=(num_items, dim)).astype(np.float32)
    table[0] = 0
    dtype = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}[history_type]
    nodes = [helper.make_node("Cast", ["history"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids"], ["vectors"]),  # (1, L, D)
             helper.make_node("ReduceMean", ["vectors", "axis1"], ["user"], keepdims=0),  # (1, D)
             helper.make_node("MatMul", ["user", "table_t"], ["all_scores"]),  # (1, N)
             helper.make_node("TopK", ["all_scores", "k"], ["scores", "items"], axis=1)]
    graph = helper.make_graph(
        nodes, "foreign", [helper.make_tensor_value_info("history", dtype, [1, max_history])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, candidates]),
         helper.make_tensor_value_info("items", TensorProto.INT64, [1, candidates])][:len(outputs)],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.ascontiguousarray(table.T), "table_t"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
         numpy_helper.from_array(np.array([candidates], dtype=np.int64), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_contract_artifact_is_profiled_on_its_own(tmp_path):
    """No reference.npz, no manifest, no items.json: size, memory and latency are measured and judged;
    parity and quality are not checked, and the output says why (before: exit 2, no reference.npz)."""
    model = foreign_onnx(tmp_path / "theirs.onnx")
    result = run_cli("profile", str(model), "--profile", "mobile-arm", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    a = json.loads(result.stdout)["artifacts"][0]
    budgets = {c["budget"]: c for c in a["checks"]}
    assert {"model_bytes", "memory_bytes", "latency_ms", "serving"} <= set(budgets)
    assert "parity" not in budgets and "quality" not in budgets
    assert set(a["not_checked"]) == {"parity", "quality"} and "--reference" in a["not_checked"]["parity"]
    assert budgets["model_bytes"]["value"] == model.stat().st_size
    assert a["latency"]["timings"]["1"]["calls"] >= 1000 and a["memory"]["verdict_bytes"] > 0
    assert a["io"] == {"max_history": 50, "candidates": 40, "histories": a["io"]["histories"]}
    assert "synthetic" in a["io"]["histories"]
    table = run_cli("profile", str(model), "--profile", "mobile-arm", timeout=300)
    assert table.returncode == 0 and "not checked  parity" in table.stdout and "not checked  quality" in table.stdout


@pytest.mark.parametrize("change, says", [
    ({"history_type": "float32"}, "input history float32 [1, 50]: dtype float32, expected int64"),
    ({"outputs": ("scores",)}, "no output 'items'"),
])
def test_a_model_off_the_contract_exits_2_saying_what_differs(tmp_path, change, says):
    """Before: exit 1 with `history None (device 50), None candidates` and a raw ONNX Runtime error."""
    shutil.copy(foreign_onnx(tmp_path / "other.onnx"), tmp_path / "ok.onnx")
    model = foreign_onnx(tmp_path / "theirs.onnx", **change)
    result = run_cli("profile", str(model), "--profile", "mobile-arm", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not follow the artifact contract" in lines[0] and says in lines[0], lines
    assert "Traceback" not in result.stderr + result.stdout


def test_contract_differences_name_each_difference():
    from toolkit.core.contract import TensorSpec, contract_differences

    history = TensorSpec("history", "int64", (1, 50))
    scores, items = TensorSpec("scores", "float32", (1, 30)), TensorSpec("items", "int64", (1, 30))
    assert contract_differences([history], [scores, items]) == []
    assert contract_differences([history], [items, scores]) == []  # ONNX outputs are found by name
    assert contract_differences([history], [scores, items], positional=True) == []
    assert contract_differences([TensorSpec("history", "int64", (50,))], [scores, items]) == [
        "input history int64 [50]: rank 1, expected 2 ([1, L])"]
    assert contract_differences([TensorSpec("history", "int64", ("batch", 50))], [scores, items]) == [
        "input history int64 [batch, 50]: shape, expected [1, L] with a fixed size"]
    assert contract_differences([TensorSpec("ids", "int64", (1, 50))], [scores, items]) == [
        "input ids int64 [1, 50]: expected the name 'history'"]
    assert contract_differences([history], [scores, TensorSpec("items", "int64", (1, 20))]) == [
        "outputs scores and items return different numbers of candidates (30 and 20)"]
    assert contract_differences([history], [TensorSpec("", "float32", (1, 30))], positional=True) == [
        "1 outputs, expected 2: scores float32 [1, K'], items int64 [1, K']"]


def test_an_artifact_copied_into_another_build_is_not_compared_with_its_model(tiny_build, tmp_path):
    """The build folder's manifest does not list the copied file's sha256: its reference.npz and quality
    belong to another model, so neither is used (before: parity 0.007 against the wrong model, exit 1)."""
    folder = tmp_path / "build"
    shutil.copytree(tiny_build, folder)
    model = foreign_onnx(folder / "model.fp32.onnx", num_items=len(json.loads((folder / "items.json").read_text())))
    result = run_cli("profile", str(model), "--profile", "mobile-arm", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    a = json.loads(result.stdout)["artifacts"][0]
    assert {c["budget"] for c in a["checks"]}.isdisjoint({"parity", "quality"})
    assert "sha256" in a["not_checked"]["parity"] and "sha256" in a["not_checked"]["quality"]
    assert a["parity"]["histories"] == 0 and a["quality"]["ndcg"] is None


def test_reference_and_data_give_parity_and_quality(tiny_build, tmp_path):
    """An artifact outside its build folder, with its reference histories and a data file: parity against
    its source model's outputs, quality through it on the data's test targets, against popularity."""
    for name in ("model.fp32.onnx", "items.json"):
        shutil.copy(tiny_build / name, tmp_path / name)
    result = run_cli("profile", str(tmp_path / "model.fp32.onnx"), "--profile", "mobile-arm", "--json",
                     "--reference", str(tiny_build / "reference.npz"), "--data", "movielens-100k", timeout=600)
    assert result.returncode in (0, 1), result.stderr
    a = json.loads(result.stdout)["artifacts"][0]
    checks = {c["budget"]: c for c in a["checks"]}
    assert a["not_checked"] == {}
    assert checks["parity"]["passed"] and a["parity"]["top10_agreement"] >= 0.98  # its own source model
    built = next(x for x in json.loads((tiny_build / "manifest.json").read_text())["artifacts"]
                 if x["path"] == "model.fp32.onnx")
    q = a["quality"]
    assert q["users"] == 943 and q["popularity_ndcg"] > 0 and q["float_ndcg"] is None
    from toolkit.profiler.judge import popularity_noise  # above popularity by more than the noise of that many users

    noise = popularity_noise(q["ndcg"], q["popularity_ndcg"], q["users"])
    assert checks["quality"]["value"] == q["ndcg"]
    assert checks["quality"]["limit"] == pytest.approx(q["popularity_ndcg"] + noise)
    if built["metrics"]["users"] == 943:  # the build evaluated every user: the same split, the same figure
        assert q["ndcg"] == pytest.approx(built["metrics"]["ndcg"], abs=1e-6)


def test_reference_without_histories_exits_2(tmp_path):
    import numpy as np

    model = foreign_onnx(tmp_path / "theirs.onnx")
    np.savez(tmp_path / "ref.npz", scores=np.zeros((2, 3)))
    result = run_cli("profile", str(model), "--profile", "mobile-arm", "--reference", str(tmp_path / "ref.npz"))
    assert result.returncode == 2 and "history" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_counted_web_runtime_is_in_the_download_budget(web, tmp_path):
    """A browser profile whose page downloads onnxruntime-web: the model_bytes check adds the runtime's
    files (gzip, as served) to the model's (before: the 3.7 MB runtime was ignored)."""
    from toolkit.profiler.download import WEB_RUNTIME_DIR, WEB_RUNTIME_FILES

    assert all((WEB_RUNTIME_DIR / f).is_file() for f in WEB_RUNTIME_FILES), "the web fixture installed the runtime"
    model = foreign_onnx(tmp_path / "theirs.onnx")
    counted = tmp_path / "page.toml"
    counted.write_text(open(load_profile("browser-wasm").path).read().replace('web_runtime = "cached"',
                                                                               'web_runtime = "counted"'))
    runs = {name: json.loads(run_cli("profile", str(model), "--profile", profile, "--json", timeout=300).stdout)
            ["artifacts"][0] for name, profile in (("cached", "browser-wasm"), ("counted", str(counted)))}
    for name, a in runs.items():
        check = next(c for c in a["checks"] if c["budget"] == "model_bytes")
        runtime = a["download"]["runtime_bytes"]
        assert 1_000_000 < runtime < 20_000_000 and a["download"]["web_runtime"] == name
        assert check["value"] == (model.stat().st_size + runtime if name == "counted" else model.stat().st_size)
    assert "runtime counted" in next(c["text"] for c in runs["counted"]["checks"] if c["budget"] == "model_bytes")
    assert "cached" in runs["cached"]["download"]["how"]


def test_a_pte_off_the_contract_exits_2_saying_what_differs(tmp_path):
    """A .pte's method is positional: input 0 the history, outputs 0 and 1 scores and items."""
    import torch
    from executorch.exir import to_edge

    class FloatHistory(torch.nn.Module):
        def forward(self, history):  # (1, 50) float32: off the contract
            return history[:, :10] * 2.0, torch.arange(10).unsqueeze(0)

    program = to_edge(torch.export.export(FloatHistory(), (torch.zeros(1, 50),))).to_executorch()
    model = tmp_path / "theirs.pte"
    model.write_bytes(program.buffer)
    result = run_cli("profile", str(model), "--profile", "mobile-arm", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not follow the artifact contract" in lines[0], lines
    assert "input unnamed float32 [1, 50]: dtype float32, expected int64" in lines[0], lines
