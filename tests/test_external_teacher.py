"""Bring your own teacher: a GRU4Rec-style module (tests/fixtures/gru_teacher.py, not SASRec) distilled
through both paths, `--teacher MODULE:FACTORY` and `--teacher-scores FILE.parquet`, on the first 150
MovieLens-100K users; the two give the same soft labels; bad modules and bad files are one clear error."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import ROOT, run_cli
from toolkit.core.errors import ToolkitError

GRU = "tests/fixtures/gru_teacher.py:make_teacher"


@pytest.fixture(scope="module")
def data(movielens):
    from toolkit.data import split_leave_one_out
    from toolkit.data import first_users

    dataset = first_users(movielens, 150)
    return dataset, split_leave_one_out(dataset).sealed()


@pytest.fixture(scope="module")
def gru_weights(data, tmp_path_factory) -> Path:
    """The example teacher trained for two epochs on the slice; its weights file (never committed)."""
    import sys

    from toolkit.training.loop import training_windows

    sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
    from gru_teacher import GRURecommender

    dataset, split = data
    torch.manual_seed(0)
    model = GRURecommender(dataset.num_items)
    windows = torch.from_numpy(training_windows(split, 50, 50))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(2):
        for i in range(0, len(windows), 64):
            x, y = windows[i:i + 64, :-1], windows[i:i + 64, 1:]
            loss = torch.nn.functional.cross_entropy(model(x)[y != 0], y[y != 0])
            opt.zero_grad()
            loss.backward()
            opt.step()
    path = tmp_path_factory.mktemp("gru") / "gru_teacher.pt"
    torch.save(model.state_dict(), path)
    os.environ["GRU_TEACHER_WEIGHTS"] = str(path)
    return path


@pytest.fixture(scope="module")
def module_teacher(data, gru_weights):
    from toolkit.teachers.module import load_module_teacher

    dataset, split = data
    teacher = load_module_teacher(GRU, dataset, split, 50)
    assert not teacher.prepare_scores(split, {"slice": 150}, 64, log=lambda *_: None)
    return teacher


@pytest.fixture(scope="module")
def scores_file(data, module_teacher, tmp_path_factory) -> Path:
    from toolkit.teachers.scores import write_teacher_scores

    path = tmp_path_factory.mktemp("scores") / "gru.parquet"
    assert write_teacher_scores(module_teacher.scores, data[0], path) == sum(len(t) for t in data[1].train)
    return path


def test_windows_map_onto_users_and_positions(data):
    """window_origins enumerates exactly training_windows' windows (so file rows land where they should)."""
    from toolkit.training.evaluate import pad_histories
    from toolkit.teachers.scores import window_origins
    from toolkit.training.loop import training_windows

    _, split = data
    for stride in (50, 20):
        windows = training_windows(split, 50, stride)
        users, ends = window_origins(split, 50, stride)
        rebuilt = pad_histories([split.train[u][max(0, e - 51):e] for u, e in zip(users, ends)], 51)
        assert np.array_equal(rebuilt, windows)


def test_both_paths_give_the_same_labels_and_both_distil(data, module_teacher, scores_file):
    from toolkit.training.distill import DistillConfig, distill, soft_labels
    from toolkit.training.evaluate import evaluate_model
    from toolkit.teachers.scores import read_teacher_scores
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig, training_windows

    dataset, split = data
    from_file = read_teacher_scores(scores_file, dataset, split, 50)
    windows = torch.from_numpy(training_windows(split, 50, 50))
    a = soft_labels(module_teacher, split, 50, TrainConfig(), DistillConfig())
    b = soft_labels(from_file, split, 50, TrainConfig(), DistillConfig())
    assert torch.equal(a.ids, b.ids) and torch.equal(a.covered, b.covered)
    assert torch.equal(a.log_probs, b.log_probs)
    real = windows[:, :-1] != 0
    assert bool(a.covered[real].all()) and not bool(a.covered[~real].any())
    # the file's teacher answers the validation histories exactly as the module does
    assert evaluate_model(from_file, split, "valid").ndcg == pytest.approx(evaluate_model(module_teacher, split,
                                                                                          "valid").ndcg, abs=1e-9)
    torch.set_num_threads(1)
    cfg = ModelConfig(num_items=dataset.num_items, dim=8, max_history=50)
    train = TrainConfig(epochs=1, min_steps=0, batch_size=64)
    for teacher in (module_teacher, from_file):
        result = distill(teacher, cfg, split, train, DistillConfig())
        assert np.isfinite(result.valid.ndcg)
        assert type(result.model.items).__name__ == "ItemTable"  # the student is the plain ID-only model


def test_uncovered_positions_keep_the_hard_label(data, scores_file, tmp_path):
    """A file covering half the positions: covered marks them; distillation runs (finite)."""
    from toolkit.training.distill import DistillConfig, distill, soft_labels
    from toolkit.teachers.scores import read_teacher_scores
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig, training_windows

    dataset, split = data
    table = pq.read_table(scores_file)
    half = tmp_path / "half.parquet"
    pq.write_table(table.filter(pa.compute.equal(pa.compute.bit_wise_and(table["position"], 1), 0)), half)
    teacher = read_teacher_scores(half, dataset, split, 50)
    windows = torch.from_numpy(training_windows(split, 50, 50))
    labels = soft_labels(teacher, split, 50, TrainConfig(), DistillConfig())
    real = windows[:, :-1] != 0
    share = labels.covered[real].float().mean().item()
    assert 0.4 < share < 0.6
    torch.set_num_threads(1)
    result = distill(teacher, ModelConfig(num_items=dataset.num_items, dim=8), split,
                     TrainConfig(epochs=1, min_steps=0, loss="sampled"), DistillConfig())
    assert np.isfinite(result.valid.ndcg)


def _write(path: Path, **columns) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_a_bad_scores_file_is_one_clear_error(data, scores_file, tmp_path):
    from toolkit.teachers.scores import read_teacher_scores

    dataset, split = data
    user, item = dataset.user_ids[0], dataset.item_ids[1]
    good = {"user": [user], "position": [0], "items": [[item]], "scores": [[1.0]]}
    cases = {
        "missing column(s) scores": {k: v for k, v in good.items() if k != "scores"},
        "is not a user of the data": {**good, "user": ["no-such-user"]},
        "is not an item of the data": {**good, "items": [["no-such-item"]]},
        "is outside user": {**good, "position": [10_000]},
        "ragged lists": {**good, "scores": [[1.0, 2.0]]},
        "has no items": {**good, "items": pa.array([[]], pa.list_(pa.string())), "scores": pa.array([[]], pa.list_(pa.float32()))},
        "NaN or infinite": {**good, "scores": [[float("nan")]]},
        "given twice": {k: v * 2 for k, v in good.items()},
        "expected integers": {**good, "position": ["0"]},
    }
    for expected, columns in cases.items():
        path = _write(tmp_path / "bad.parquet", **columns)
        with pytest.raises(ToolkitError) as e:
            read_teacher_scores(path, dataset, split, 50)
        assert expected in str(e.value)
        assert "--teacher-scores" in str(e.value) and str(path) in str(e.value)
    (tmp_path / "text.parquet").write_text("user,position\n")
    with pytest.raises(ToolkitError, match="not a readable Parquet file"):
        read_teacher_scores(tmp_path / "text.parquet", dataset, split, 50)


BAD_MODULES = {
    "wrong_shape": "def make(items, max_history):\n    return torch.nn.Linear(1, 1)\n",
    "not_causal": ("class M(torch.nn.Module):\n    def __init__(self, n):\n        super().__init__()\n"
                   "        self.e = torch.nn.Embedding(n, n)\n"
                   "    def forward(self, h):\n        return self.e(h).cumsum(1).flip(1)\n"
                   "def make(items, max_history):\n    return M(len(items))\n"),
    "not_a_module": "def make(items, max_history):\n    return 'a string'\n",
    "raises": "def make(items, max_history):\n    raise FileNotFoundError('weights.pt')\n",
}


@pytest.mark.parametrize("name, expected", [
    ("wrong_shape", "forward"), ("not_causal", "not causal"), ("not_a_module", "not a torch.nn.Module"),
    ("raises", "the factory raised FileNotFoundError"),
])
def test_a_bad_module_is_one_clear_error(data, tmp_path, name, expected):
    from toolkit.teachers.module import load_module_teacher

    dataset, split = data
    path = tmp_path / f"{name}.py"
    path.write_text("import torch\n" + BAD_MODULES[name])
    with pytest.raises(ToolkitError, match=expected) as e:
        load_module_teacher(f"{path}:make", dataset, split, 50)
    assert str(e.value).startswith(f"--teacher '{path}:make'")


def test_a_bad_teacher_spec_is_one_clear_error():
    from toolkit.models.user_module import import_factory

    for spec, expected in (("tests/fixtures/gru_teacher.py:nope", "has no function 'nope'; it has"),
                           ("no.such.module:make", "no module named 'no'"),
                           ("toolkit.core.errors:ToolkitError2", "has no function")):
        with pytest.raises(ToolkitError, match=expected):
            import_factory(spec)
    factory, path = import_factory(str(ROOT / GRU))
    assert factory.__name__ == "make_teacher" and path.name == "gru_teacher.py"


def test_bad_teacher_flags_exit_2_before_training(cache_dir, tmp_path):
    cases = {
        ("--teacher", "no_colon_here"): "expected MODULE:FACTORY",
        ("--teacher", "missing_file.py:make"): "no such file",
        ("--teacher-scores", str(tmp_path / "none.parquet")): "no such file",
        ("--kg", str(tmp_path / "none.kg")): "--kg and --kg-links go together",
        ("--teacher", "kg", "--data", str(ROOT / "tests" / "fixtures" / "gru_teacher.py")): "unsupported file type",
    }
    for args, expected in cases.items():
        result = run_cli("build", "--out", str(tmp_path / "out"), "--max-users", "150", *args, timeout=120)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "out").exists()


def test_teacher_scores_command_writes_what_build_reads(data, gru_weights, tmp_path):
    from toolkit.teachers.scores import read_teacher_scores

    dataset, split = data
    out = tmp_path / "gru.parquet"
    result = run_cli("teacher-scores", "--teacher", GRU, "--out", str(out), "--max-users", "150", "--top-k", "16",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    teacher = read_teacher_scores(out, dataset, split, 50)
    assert teacher.scores.ids.shape[1] == 16
    assert len(teacher.scores.users) == sum(len(t) for t in split.train)
    bad = run_cli("teacher-scores", "--teacher", GRU, "--out", str(tmp_path / "x.csv"), timeout=120)
    assert bad.returncode == 2 and "must end in .parquet" in bad.stderr


def test_the_pipeline_records_an_external_teacher(data, gru_weights, scores_file):
    """toolkit.teachers.obtain: the kind, the file's and weights' hashes, and no relational term."""
    from toolkit import teachers
    from toolkit.data import Dataset
    from toolkit.recipe.config import BuildConfig

    dataset, split = data
    cfg = BuildConfig(max_users=150)
    inputs = teachers.TeacherInputs(split, {"slice": 150}, 50, cfg.seed, dataset, top_k=cfg.student.distill.top_k)
    external = teachers.obtain(replace(cfg.teacher, kind="external", module=GRU), inputs, lambda *_: None)
    record = external.record(kind="external", **external.extra).to_dict()
    assert record["kind"] == "external" and len(record["file_sha256"]) == 64 and len(record["weights_sha256"]) == 64
    assert "logit distillation only" in record["relational"]
    scores = teachers.obtain(replace(cfg.teacher, kind="scores", scores=str(scores_file)), inputs, lambda *_: None)
    assert scores.extra["positions_covered"] == pytest.approx(1.0)
    assert isinstance(dataset, Dataset)
