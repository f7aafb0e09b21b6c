"""Exporters: each artifact honours the contract and matches PyTorch in its real runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.runtime import Predictor
from export.serving import ServingModel
from toolkit.models.sasrec import ModelConfig, SASRec

L, K, N = 12, 8, 300


@pytest.fixture(scope="module")
def model() -> SASRec:
    torch.manual_seed(0)
    m = SASRec(ModelConfig(num_items=N, dim=16, layers=1, heads=2, max_history=L, dropout=0.0)).eval()
    with torch.no_grad():  # spread the item table so the ranking is not decided by noise
        m.items.embedding.weight.mul_(20)
    return m


@pytest.fixture(scope="module")
def histories() -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = []
    for n in rng.integers(0, L + 1, size=40):
        row = np.zeros(L, dtype=np.int64)
        row[L - n:] = rng.choice(np.arange(1, N), size=n, replace=False)
        rows.append(row)
    return np.stack(rows)


def _export(model, histories, fmt, precision, path):
    from export.executorch import export_executorch
    from export.onnx import export_onnx

    int8 = precision == "int8"
    serving = ServingModel(model, K, split_table=int8)
    if fmt == "executorch":
        export_executorch(serving, path, L, torch.from_numpy(histories) if int8 else None)
    else:
        export_onnx(serving, path, L, int8=int8)
    return Predictor(path, threads=1)


@pytest.mark.parametrize("fmt,suffix", [("executorch", ".pte"), ("onnx", ".onnx")])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_artifact_contract_and_parity(model, histories, tmp_path, fmt, suffix, precision):
    predictor = _export(model, histories, fmt, precision, tmp_path / f"m{suffix}")
    assert (predictor.max_history, predictor.top_k) == (L, K)
    reference = ServingModel(model, K).eval()
    exact = overlap = 0
    for row in histories:
        scores, items = predictor.predict(row[None])
        assert scores.shape == (1, K) and items.shape == (1, K)
        assert scores.dtype == np.float32 and items.dtype == np.int64
        assert np.all(np.diff(scores[0]) <= 0), "best first"
        assert 0 not in items[0] and not set(items[0].tolist()) & set(row.tolist()), "padding/history leaked"
        with torch.no_grad():
            ref_scores, ref_items = reference(torch.from_numpy(row[None]))
        exact += items[0].tolist() == ref_items[0].tolist()
        overlap += len(set(items[0].tolist()) & set(ref_items[0].tolist())) / K
        if precision == "fp32":
            assert np.allclose(scores, ref_scores.numpy(), atol=1e-4)
    if precision == "fp32":
        assert exact == len(histories)
    else:
        assert overlap / len(histories) >= 0.8


def test_corrupt_artifact_is_a_clear_error(tmp_path):
    from toolkit.core.errors import ToolkitError

    for name in ("bad.pte", "bad.onnx"):
        (tmp_path / name).write_bytes(b"not a model at all")
        with pytest.raises(ToolkitError, match=f"{name}: not a loadable"):
            Predictor(tmp_path / name)
    with pytest.raises(ToolkitError, match="unknown artifact type"):
        Predictor(tmp_path / "model.tflite")


def test_ensemble_teacher_exports_in_fp32(model, histories, tmp_path):
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from toolkit.models.sasrec import Ensemble

    torch.manual_seed(1)
    other = SASRec(model.cfg).eval()
    teacher = Ensemble([model, other]).eval()
    serving = ServingModel(teacher, K)
    export_executorch(serving, tmp_path / "t.pte", L)
    export_onnx(serving, tmp_path / "t.onnx", L)
    for path in (tmp_path / "t.pte", tmp_path / "t.onnx"):
        predictor = Predictor(path)
        for row in histories[:10]:
            with torch.no_grad():
                expected = serving(torch.from_numpy(row[None]))[1][0].tolist()
            assert predictor.predict(row[None])[1][0].tolist() == expected


@pytest.mark.parametrize("fmt,suffix", [("executorch", ".pte"), ("onnx", ".onnx")])
def test_with_repeats_allowed_the_artifact_answers_history_items(model, histories, tmp_path, fmt, suffix):
    """--repeats allow: only padding is masked; the artifact may answer what the history holds."""
    from export.executorch import export_executorch
    from export.onnx import export_onnx

    serving = ServingModel(model, K, allow_repeats=True).eval()
    path = tmp_path / f"m{suffix}"
    (export_executorch(serving, path, L) if fmt == "executorch" else export_onnx(serving, path, L))
    predictor = Predictor(path, threads=1)
    full = histories[(histories > 0).sum(1) == L][:1]
    # a history of the items the model scores highest: masked, they cannot be answers; allowed, they are
    with torch.no_grad():
        best = torch.topk(model.score_last(torch.from_numpy(full))[0, 1:], L).indices + 1
    history = best.numpy()[None].astype(np.int64)
    _, items = predictor.predict(history)
    _, masked = ServingModel(model, K).eval()(torch.from_numpy(history))
    assert set(items[0].tolist()) & set(history[0].tolist())
    assert not set(masked[0].tolist()) & set(history[0].tolist()) and 0 not in items[0].tolist()
