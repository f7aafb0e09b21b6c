"""Your own student (`build --student MODULE:FACTORY`, toolkit/recipe/own_student.py): the GRU4Rec
student of bench/students/gru4rec.py built end to end on the first 150 MovieLens-100K users (distilled,
compressed where it applies, exported in both formats, checked and profiled); modules off the
contract are one-line errors; and an artifact exported with its own wrapper, not the toolkit's, is
profiled with the same verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, run_cli

GRU4REC = "bench/students/gru4rec.py:build"
OWN_BUILD_ARGS = ["--max-users", "150", "--epochs", "2", "--teacher-members", "1", "--teacher-dim", "16"]


@pytest.fixture(scope="module")
def own_build(cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "build"
    result = run_cli("build", "--out", str(out), "--student", GRU4REC, *OWN_BUILD_ARGS, timeout=1500)
    assert (out / "manifest.json").is_file(), f"build failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return out, result


def test_own_student_is_built_checked_and_profiled(own_build):
    out, result = own_build
    assert result.returncode in (0, 1), result.stderr  # 1: a 2-epoch student may miss the quality budget
    manifest = json.loads((out / "manifest.json").read_text())
    paths = {a["path"] for a in manifest["artifacts"]}
    assert {"model.fp32.pte", "model.fp32.onnx", "model.int8.pte", "model.int8.onnx"} <= paths
    verdicts = {a["path"]: a for a in json.loads((out / "report.json").read_text())["artifacts"]}
    assert set(verdicts) == paths
    for a in manifest["artifacts"]:
        assert (out / a["path"]).stat().st_size == a["bytes"]
        assert a["parity"]["histories"] > 0 and a["parity"]["top10_agreement"] >= a["parity_min"], a["path"]
        assert a["metrics"]["users"] == 150 and a["metrics"]["ndcg"] is not None
        assert a["profile"]["bytes"] == a["bytes"] and a["profile"]["latency"]["timings"]
        v = verdicts[a["path"]]
        checks = {c["budget"]: c for c in v["checks"]}
        assert {"model_bytes", "memory_bytes", "latency_ms", "parity", "quality"} <= set(checks), a["path"]
        assert v["not_checked"] == {} and v["fits"] == all(c["passed"] for c in v["checks"])
        assert v["verdict"]
    fp32 = next(a for a in manifest["artifacts"] if a["path"] == "model.fp32.onnx")
    assert fp32["parity"]["top10_agreement"] == pytest.approx(1.0, abs=0.02)  # same weights
    assert fp32["metrics"]["ndcg"] == pytest.approx(manifest["student"]["metrics"]["test"]["ndcg"], abs=2e-3)
    sha = __import__("hashlib").sha256((ROOT / "bench/students/gru4rec.py").read_bytes()).hexdigest()
    assert manifest["student"]["module"] == GRU4REC and manifest["student"]["file_sha256"] == sha
    plan = manifest["plan"]
    assert plan["kind"] == "own_student" and plan["module"] == GRU4REC and plan["file_sha256"] == sha
    techniques = {t["technique"].split(" (")[0]: t for t in plan["techniques"]}
    assert not techniques["item-table product quantization"]["applied"]
    assert "ItemTable" in techniques["item-table product quantization"]["why"]
    assert techniques["export-time int8 .pte"]["applied"] and techniques["export-time int8 .onnx"]["applied"]
    low = techniques["low-rank nn.Linear layers"]
    assert "rank" in low["why"] and (low["applied"] == bool(plan["low_rank"]))
    assert set(manifest["recommended"]) == {"executorch", "onnx"}
    report = (out / "report.md").read_text()
    assert "your own module" in report and "| export-time int8 .pte" in report


def _student_file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "student.py"
    path.write_text("import torch\nfrom torch import nn\n\n" + body)
    return f"{path}:build"


@pytest.mark.parametrize("make, says", [
    (lambda tmp: f"{tmp}/nope.py:build", "no such file"),
    (lambda tmp: _student_file(tmp, "class M(nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
                                    "        self.e = nn.Embedding(n, 8)\n        self.o = nn.Linear(8, 7)\n"
                                    "    def forward(self, h):\n        return self.o(self.e(h))\n\n"
                                    "def build(items, max_history):\n    return M(len(items))\n"),
     "forward returned shape [4, 50, 7]"),
    (lambda tmp: _student_file(tmp, "def build(items, max_history):\n    return 3\n"), "not a torch.nn.Module"),
])
def test_a_bad_student_is_one_line_and_exit_2(cache_dir, tmp_path, make, says):
    spec = make(tmp_path)
    result = run_cli("build", "--out", str(tmp_path / "out"), "--student", spec, *OWN_BUILD_ARGS, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --student") and says in lines[0], lines
    assert "Traceback" not in result.stderr + result.stdout


class OwnWrapper(torch.nn.Module):
    """Someone's own serving wrapper honouring the contract (not export.serving.ServingModel): the last
    position's scores, padding and the history masked with -inf, the top `candidates`."""

    def __init__(self, module, candidates: int, outputs: int = 2):
        super().__init__()
        self.module, self.candidates, self.outputs = module.eval(), candidates, outputs

    def forward(self, history):
        scores = self.module(history)[:, -1, :]
        masked = torch.nn.functional.pad(history, (1, 0), value=0)
        values, items = torch.topk(scores.scatter(1, masked, float("-inf")), self.candidates, dim=1)
        return (values, items) if self.outputs == 2 else values


@pytest.fixture(scope="module")
def gru(movielens):
    sys.path.insert(0, str(ROOT / "bench" / "students"))
    from gru4rec import build

    torch.manual_seed(0)
    return build(movielens.item_ids, 50).eval()


def _reference(path: Path, split, wrapper) -> Path:
    from toolkit.profiler.parity import write_reference
    from toolkit.training.evaluate import pad_histories

    history = pad_histories(split.history("test")[:50], 50)
    with torch.no_grad():
        rows = [wrapper(torch.from_numpy(h[None])) for h in history]
    write_reference(path, history, {"float": (np.concatenate([r[0].numpy() for r in rows]),
                                              np.concatenate([r[1].numpy() for r in rows]))})
    return path


def _profile(path: Path, reference: Path) -> dict:
    result = run_cli("profile", str(path), "--profile", "mobile-arm", "--json", "--reference", str(reference),
                     "--data", "movielens-100k", timeout=600)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)["artifacts"][0]


def test_an_artifact_with_its_own_wrapper_gets_the_same_verdicts(gru, movielens, small_split, tmp_path):
    """The same GRU4Rec weights exported twice, through its own wrapper with plain torch.onnx.export and
    through the toolkit's ServingModel: profiled with the same data and references, every budget gets a
    verdict for both, and the same one (size, parity, quality; latency and memory on this host too)."""
    from export.onnx import export_onnx
    from export.serving import ServingModel
    from toolkit.models.user_model import UserModel

    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir(), ours.mkdir()
    for folder in (theirs, ours):
        (folder / "items.json").write_text(json.dumps(movielens.item_ids))
    wrapper = OwnWrapper(gru, 40)
    torch.onnx.export(wrapper, (torch.arange(1, 51).unsqueeze(0),), str(theirs / "model.onnx"), dynamo=True,
                      input_names=["history"], output_names=["scores", "items"])
    serving = ServingModel(UserModel(gru, 50, movielens.num_items), 40)
    export_onnx(serving, ours / "model.onnx", 50)
    a = _profile(theirs / "model.onnx", _reference(theirs / "reference.npz", small_split, wrapper))
    b = _profile(ours / "model.onnx", _reference(ours / "reference.npz", small_split, serving))
    assert a["not_checked"] == {} and b["not_checked"] == {}
    verdicts = [{c["budget"]: c["passed"] for c in x["checks"]} for x in (a, b)]
    assert set(verdicts[0]) == set(verdicts[1]) >= {"model_bytes", "memory_bytes", "latency_ms", "parity", "quality"}
    assert verdicts[0] == verdicts[1]
    assert a["parity"]["top10_agreement"] >= 0.98 and b["parity"]["top10_agreement"] >= 0.98
    assert a["quality"]["ndcg"] == pytest.approx(b["quality"]["ndcg"], abs=1e-6)


def test_an_own_wrapper_off_the_contract_is_one_line(gru, tmp_path):
    """A wrapper that returns the scores only: the profiler says in one line what is missing."""
    path = tmp_path / "model.onnx"
    torch.onnx.export(OwnWrapper(gru, 40, outputs=1), (torch.arange(1, 51).unsqueeze(0),), str(path), dynamo=True,
                      input_names=["history"], output_names=["scores"])
    result = run_cli("profile", str(path), "--profile", "mobile-arm", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not follow the artifact contract" in lines[0] and "no output 'items'" in lines[0]


def test_the_python_api_distils_your_own_module(cache_dir):
    """`toolkit.distill` takes your own nn.Module as `build --student` does: probed, then distilled
    through its own forward (here from labels only: a short real run on the first 150 users)."""
    import toolkit
    from toolkit import StudentConfig, TrainConfig

    sys.path.insert(0, str(ROOT / "bench" / "students"))
    from gru4rec import build

    data = toolkit.load_dataset(max_users=150)
    torch.manual_seed(0)
    module = build(data.item_ids, 50)
    result = toolkit.distill(None, module, data, StudentConfig(train=TrainConfig(epochs=1, min_steps=0)))
    assert result.epochs == 1 and 0.0 < result.valid.ndcg <= 1.0
    with pytest.raises(toolkit.ToolkitError, match="toolkit.distill student"):  # off the contract: one line
        toolkit.distill(None, torch.nn.Linear(4, 4), data)
