"""Product-quantized item table on a small real model (first 150 MovieLens users), with thresholds.

The table's math is checked exactly against its own reconstruction; the rankings against the
float model (top-10 agreement); the artifacts in their real runtimes against PyTorch, and their
size against the codes stored once (a float copy of the table folded into a file would show).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tests.conftest import scores, top10_agreement
from toolkit.compression import CompressConfig, PQConfig, PQItemTable, QuantConfig, compress, model_bytes, pq_quantize_
from toolkit.compression.pq import LUT_MAX_ROWS, pq_table_bytes
from toolkit.core.errors import ToolkitError
from toolkit.training.evaluate import evaluate_model, pad_histories

DIM, HEADS, HISTORY = 16, 2, 50
SUBSPACES = 8  # 8 bytes an item against 64 in fp32
MIN_TOP10_AGREEMENT = 0.7  # measured 0.81 (m = 8, K = 256) on this model; m = 4 gives 0.61
FORMAT_OVERHEAD = {"executorch": 45_000, "onnx": 15_000}  # program/graph bytes beyond the weights (as test_compress)


@pytest.fixture(scope="module")
def trained(trained_small):
    return trained_small  # tests/conftest.py: DIM, HEADS and HISTORY as here


@pytest.fixture(scope="module")
def quantized(trained):
    return pq_quantize_(copy.deepcopy(trained), PQConfig(SUBSPACES))


@pytest.fixture(scope="module")
def histories(small_split) -> torch.Tensor:
    return torch.from_numpy(pad_histories(small_split.history("test"), HISTORY))  # (150, L)


def test_pq_config_names_bad_fields(trained):
    with pytest.raises(ToolkitError, match=r"PQConfig.subspaces: 0 .*PQConfig.centroids: 300 .*valid: 2..256"):
        PQConfig(subspaces=0, centroids=300)  # every problem at once
    with pytest.raises(ToolkitError, match=r"PQConfig.subspaces: 5 does not divide the table width 16; valid: "
                                           r"\[1, 2, 4, 8, 16\]"):
        pq_quantize_(copy.deepcopy(trained), PQConfig(5))
    small = copy.deepcopy(trained)
    with torch.no_grad():
        small.items.embedding.weight = torch.nn.Parameter(small.items.embedding.weight[:100].clone())
    with pytest.raises(ToolkitError, match="PQConfig.centroids: 256 is more than the 99 items"):
        pq_quantize_(small, PQConfig(4))
    with pytest.raises(ToolkitError, match="pq_quantize_: needs a float ItemTable"):
        pq_quantize_(pq_quantize_(copy.deepcopy(trained), PQConfig(4, centroids=16)), PQConfig(4))
    with pytest.raises(ToolkitError, match="CompressConfig.quant.table_bits"):
        CompressConfig(pq=PQConfig(4), quant=QuantConfig(table_bits=8))


def test_lookup_scores_and_weight_share_one_table(quantized):
    table = quantized.items
    assert isinstance(table, PQItemTable)
    n = table.codes.shape[0]
    assert table.codes.dtype == torch.uint8 and table.codes.shape == (n, SUBSPACES)
    assert model_bytes(table) == pq_table_bytes(n, DIM, PQConfig(SUBSPACES))
    with torch.no_grad():
        w = table.weight()  # (N, D)
        ids = torch.tensor([[0, 5, 17, 42], [3, 0, 0, 9]])
        assert torch.equal(table.lookup(ids), w[ids])
        assert torch.equal(w[0], torch.zeros(DIM)) and torch.equal(table.lookup(torch.tensor([0])), torch.zeros(1, DIM))
        torch.manual_seed(0)
        few, many = torch.randn(3, DIM), torch.randn(LUT_MAX_ROWS + 1, DIM)
        ref_few, ref_many = few @ w.t(), many @ w.t()
        # the LUT path (serving, few rows) and the matmul path (training batches) give the same numbers
        assert torch.allclose(table.scores(few)[:, 1:], ref_few[:, 1:], atol=1e-5)
        assert torch.allclose(table.scores(many)[:, 1:], ref_many[:, 1:], atol=1e-5)
        assert table.scores(torch.randn(2, 5, DIM)).shape == (2, 5, n)  # (B, T, D) -> (B, T, N)


def test_pq_keeps_rankings_and_shrinks_the_table(trained, quantized, histories):
    n = trained.items.embedding.weight.shape[0]
    assert model_bytes(quantized.items) < model_bytes(trained.items) / 3  # 8 B + codebooks against 64 B an item
    assert top10_agreement(scores(trained, histories), scores(quantized, histories)) >= MIN_TOP10_AGREEMENT
    # the codes reproduce each row's nearest centroids: the table is close to the float one
    w, wq = trained.items.weight().detach()[1:], quantized.items.weight().detach()[1:]
    assert float((w - wq).pow(2).sum() / w.pow(2).sum()) < 0.1
    assert wq.shape == (n - 1, DIM)


def test_codebooks_train_and_codes_stay_fixed(quantized, small_split):
    from toolkit.training.loop import training_windows
    from toolkit.training.losses import full_softmax

    model = copy.deepcopy(quantized).train()
    codes = model.items.codes.clone()
    windows = torch.from_numpy(training_windows(small_split, HISTORY, HISTORY)[:32])
    total, positions = full_softmax(model, windows[:, :-1], windows[:, 1:])
    (total / positions).backward()
    assert model.items.codebooks.grad is not None and model.items.codebooks.grad.abs().sum() > 0
    assert "codes" not in dict(model.named_parameters()) and "items.codebooks" in dict(model.named_parameters())
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.equal(model.items.codes, codes)


def test_compress_recipe_runs_the_pq_step(trained, small_split):
    cfg = CompressConfig(pq=PQConfig(SUBSPACES), quant=QuantConfig(table_bits=32, linear_bits=8), finetune_epochs=1,
                         finetune_patience=1)
    result = compress(trained, trained, small_split, cfg)
    assert [s.technique for s in result.steps][:2] == ["pq", "quantize"]
    assert isinstance(result.model.items, PQItemTable)
    pq_step = result.steps[0]
    assert pq_step.bytes_after < pq_step.bytes_before
    assert evaluate_model(result.model, small_split, "valid").ndcg >= 0.5 * evaluate_model(trained, small_split,
                                                                                            "valid").ndcg


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_pq_model_exports_with_parity_and_codes_once(quantized, histories, fmt, tmp_path):
    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.runtime import Predictor
    from export.serving import ServingModel

    serving = ServingModel(quantized, top_k=20)
    path = tmp_path / ("m.pte" if fmt == "executorch" else "m.onnx")
    with quiet_exporters():
        if fmt == "executorch":
            export_executorch(serving, path, HISTORY, calibration=histories[:8])  # integer table: calibration unused
        else:
            export_onnx(serving, path, HISTORY, int8=True)
    predictor = Predictor(path)
    agree = []
    for h in histories[:30]:
        with torch.no_grad():
            ref_scores, ref_items = serving(h[None])
        got_scores, got_items = predictor.predict(h[None].numpy())
        agree.append(float(np.mean(got_items[0, :10] == ref_items[0, :10].numpy())))
        assert np.abs(got_scores - ref_scores.numpy()).max() < 1e-3
        assert 0 not in got_items[0] and not set(got_items[0].tolist()) & set(h.tolist())
    assert np.mean(agree) >= 0.98
    # the codes are in the file once, as bytes: a float copy of the table would add N·D·4 bytes
    n = quantized.items.codes.shape[0]
    assert FORMAT_OVERHEAD[fmt] < n * DIM * 4
    assert path.stat().st_size < model_bytes(quantized) + FORMAT_OVERHEAD[fmt]
    if fmt == "onnx":
        import onnx
        from onnx import TensorProto

        big = [(i.data_type, tuple(i.dims)) for i in onnx.load(str(path)).graph.initializer
               if np.prod(i.dims) >= n * SUBSPACES]  # only the codes: no int64 or float copy
        assert big == [(TensorProto.UINT8, (n, SUBSPACES))]
