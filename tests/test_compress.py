"""Each compression technique on a small real model (first 150 MovieLens users), with thresholds.

The model is trained for a few epochs once per module; each test compresses a copy and compares
it with the float model: exactness where the technique is lossless (full-rank SVD, keeping every
unit, kept rows), signal-to-noise and top-10 agreement where it is not, and the bytes it saves.
The export tests run the real exporters and runtimes on the compressed model.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from tests.conftest import scores, top10_agreement
from toolkit.compression import (
    CompressConfig,
    LowRankConfig,
    PruneConfig,
    PrunedItemTable,
    QuantConfig,
    QuantizedItemTable,
    QuantizedLinear,
    compress,
    low_rank_,
    model_bytes,
    prune_,
    quantize_,
)
from toolkit.compression.lowrank import LowRankLinear, energy_rank, factorize_linear
from toolkit.compression.prune import PRUNED_SCORE
from toolkit.compression.quantize import pack_int4, quantize_rows, unpack_int4
from toolkit.core.errors import ToolkitError
from toolkit.training.evaluate import evaluate_model, pad_histories

DIM, HEADS, HISTORY = 16, 2, 50
FORMAT_OVERHEAD = {"executorch": 45_000, "onnx": 15_000}  # program/graph bytes beyond the weights


def sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - approx).pow(2).sum().clamp_min(1e-20)))


@pytest.fixture(scope="module")
def trained(trained_small):
    return trained_small  # tests/conftest.py: DIM, HEADS and HISTORY as here


@pytest.fixture(scope="module")
def histories(small_split) -> torch.Tensor:
    return torch.from_numpy(pad_histories(small_split.history("test"), HISTORY))  # (150, L)


# --- quantization ----------------------------------------------------------------------------

def test_row_quantization_accuracy_and_int4_packing():
    torch.manual_seed(0)
    w = torch.randn(300, 16)
    for bits, min_db in ((8, 38.0), (4, 14.0)):
        q, scale = quantize_rows(w, bits)
        assert q.dtype == torch.int8 and scale.dtype == torch.float16
        assert int(q.min()) >= -(2 ** (bits - 1)) and int(q.max()) <= 2 ** (bits - 1) - 1
        assert sqnr_db(w, q.float() * scale.float()) >= min_db
    q4, _ = quantize_rows(w, 4)
    packed = pack_int4(q4)
    assert packed.dtype == torch.uint8 and packed.shape == (300, 8)
    assert torch.equal(unpack_int4(packed), q4.float())  # lossless packing


@pytest.mark.parametrize("table_bits,linear_bits,min_agree,max_ratio", [(8, 8, 0.9, 0.32), (4, 8, 0.6, 0.22),
                                                                         (8, 32, 0.9, 0.45)])
def test_quantize_shrinks_and_keeps_rankings(trained, histories, table_bits, linear_bits, min_agree, max_ratio):
    q = quantize_(copy.deepcopy(trained), QuantConfig(table_bits=table_bits, linear_bits=linear_bits))
    assert isinstance(q.items, QuantizedItemTable)
    assert all(isinstance(b.fc1, QuantizedLinear) for b in q.blocks) == (linear_bits == 8)
    assert model_bytes(q) <= max_ratio * model_bytes(trained)
    ref, got = scores(trained, histories), scores(q, histories)
    assert top10_agreement(ref, got) >= min_agree
    finite = torch.isfinite(ref)
    assert sqnr_db(ref[finite], got[finite]) >= (20.0 if table_bits == 8 else 8.0)


def test_quantized_table_lookup_and_scores_share_one_table(trained):
    q = QuantizedItemTable.from_table(trained.items, 8)
    ids = torch.tensor([[0, 5, 17, 42]])
    w = q.weight()  # (N, D) dequantized
    assert torch.allclose(q.lookup(ids), w[ids], atol=1e-6)
    h = torch.randn(3, DIM)
    assert torch.allclose(q.scores(h), h @ w.t(), atol=1e-4)
    assert sqnr_db(trained.items.weight().detach(), w) >= 35.0


def test_quant_config_rejects_bad_bits():
    with pytest.raises(ToolkitError, match="table_bits"):
        QuantConfig(table_bits=3)


# --- low-rank --------------------------------------------------------------------------------

def test_full_rank_factorization_is_exact(trained, histories):
    lin = trained.blocks[0].fc1
    low = factorize_linear(lin, min(lin.in_features, lin.out_features))
    x = torch.randn(7, lin.in_features)
    assert torch.allclose(low(x), lin(x), atol=1e-4)
    full = low_rank_(copy.deepcopy(trained), LowRankConfig(table_rank=DIM - 1, linear_rank=-1))
    assert full.items.project is not None and full.items.embedding.weight.shape[1] == DIM - 1
    assert top10_agreement(scores(trained, histories), scores(full, histories)) >= 0.85


def test_low_rank_table_by_energy_shrinks_the_table(trained, histories):
    w = trained.items.embedding.weight
    rank = energy_rank(w, 0.8)
    assert 1 <= rank < DIM
    low = low_rank_(copy.deepcopy(trained), LowRankConfig(table_rank=0, energy=0.8))
    assert low.items.embedding.weight.shape == (w.shape[0], rank)
    assert torch.equal(low.items.embedding.weight[0], torch.zeros(rank))  # padding row stays zero
    assert model_bytes(low) < model_bytes(trained) - (DIM - rank) * w.shape[0] * 4 + DIM * rank * 4 + 1
    # the kept spectrum holds >= 80% of the energy: the table itself is close
    assert sqnr_db(w.detach(), low.items.weight().detach()) >= 10 * math.log10(1 / 0.2) - 0.1
    assert top10_agreement(scores(trained, histories), scores(low, histories)) >= 0.3


def test_low_rank_linears_only_when_they_save(trained):
    low = low_rank_(copy.deepcopy(trained), LowRankConfig(table_rank=-1, linear_rank=4))
    assert isinstance(low.blocks[0].fc1, LowRankLinear) and low.blocks[0].fc1.rank == 4
    assert model_bytes(low) < model_bytes(trained)
    same = low_rank_(copy.deepcopy(trained), LowRankConfig(table_rank=-1, linear_rank=DIM))
    assert not isinstance(same.blocks[0].attn.q, LowRankLinear)  # 16·32 > 16·16: not worth it


# --- pruning ---------------------------------------------------------------------------------

def test_pruning_everything_kept_is_identity(trained, histories, small_split):
    same = prune_(copy.deepcopy(trained), PruneConfig(keep_heads=HEADS, keep_ffn=4 * DIM))
    assert torch.allclose(scores(same, histories), scores(trained, histories), atol=1e-5)


def test_pruning_heads_and_ffn_really_shrinks(trained, histories):
    small = prune_(copy.deepcopy(trained), PruneConfig(keep_heads=1, keep_ffn=DIM))
    block = small.blocks[0]
    assert block.attn.heads == 1 and block.attn.q.weight.shape == (DIM // HEADS, DIM)
    assert block.fc1.weight.shape == (DIM, DIM) and block.fc2.weight.shape == (DIM, DIM)
    saved = model_bytes(trained) - model_bytes(small)
    heads = 3 * (DIM // 2) * (DIM + 1) + DIM * (DIM // 2)  # q, k, v rows (+ bias), out columns
    ffn = 3 * DIM * (DIM + 1) + 3 * DIM * DIM  # fc1 rows (+ bias), fc2 columns: 4D -> D channels
    assert saved == 4 * (heads + ffn)
    assert scores(small, histories).shape == scores(trained, histories).shape
    assert top10_agreement(scores(trained, histories), scores(small, histories)) >= 0.3


def test_pruning_cold_rows(trained, histories, small_split):
    pruned = prune_(copy.deepcopy(trained), PruneConfig(min_item_count=2), small_split)
    assert isinstance(pruned.items, PrunedItemTable)
    counts = np.zeros(small_split.num_items, dtype=np.int64)
    for seq in small_split.train:
        np.add.at(counts, seq, 1)
    kept = np.flatnonzero(counts >= 2)
    assert pruned.items.inner.embedding.weight.shape[0] == len(kept[kept != 0]) + 1
    assert model_bytes(pruned) < model_bytes(trained)
    # kept items and history vectors are unchanged; cold items score PRUNED_SCORE
    ref = scores(trained, histories)
    hist_all_kept = histories.clone()
    hist_all_kept[torch.from_numpy(counts[hist_all_kept.numpy()] < 2)] = 0
    ref, got = scores(trained, hist_all_kept), scores(pruned, hist_all_kept)
    kept_t = torch.from_numpy(kept[kept != 0])
    assert torch.allclose(got[:, kept_t], ref[:, kept_t], atol=1e-5)
    cold = torch.from_numpy(np.flatnonzero(counts[1:] < 2) + 1)  # padding (0) is masked separately
    assert torch.all(got[:, cold] == PRUNED_SCORE)


# --- the recipe and the artifacts ------------------------------------------------------------

@pytest.fixture(scope="module")
def compressed(trained, small_split):
    cfg = CompressConfig(prune=PruneConfig(keep_heads=1, keep_ffn=32, min_item_count=2),
                         low_rank=LowRankConfig(table_rank=12), quant=QuantConfig(table_bits=4, linear_bits=8),
                         finetune_epochs=2, finetune_patience=2)
    return compress(trained, trained, small_split, cfg)


def test_compress_recipe_reports_every_step(trained, small_split, compressed):
    names = [s.technique for s in compressed.steps]
    assert names[:3] == ["prune", "low_rank", "quantize"]
    assert all(s.kept for s in compressed.steps[:3])  # only a QAT step that lost to PTQ is marked not kept
    for s in compressed.steps:
        assert s.bytes_after <= s.bytes_before
    assert compressed.steps[0].bytes_before == model_bytes(trained)
    assert model_bytes(compressed.model) <= 0.15 * model_bytes(trained)
    base = evaluate_model(trained, small_split, "valid").ndcg
    # a seven-fold smaller model keeps most of the (few-epoch) model's validation quality
    assert evaluate_model(compressed.model, small_split, "valid").ndcg >= 0.6 * base


def export_as_pipeline(serving, fmt: str, tmp_path, histories: torch.Tensor):
    """The pipeline's int8 call on a compressed model (its weights are already integer: calibration
    is unused, the exporters keep them as they are); returns the artifact's path."""
    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx

    path = tmp_path / ("m.pte" if fmt == "executorch" else "m.onnx")
    with quiet_exporters():
        if fmt == "executorch":
            export_executorch(serving, path, HISTORY, calibration=histories[:8])
        else:
            export_onnx(serving, path, HISTORY, int8=True)
    return path


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_compressed_model_exports_with_parity_and_table_once(compressed, histories, fmt, tmp_path):
    from export.runtime import Predictor
    from export.serving import ServingModel

    serving = ServingModel(compressed.model, top_k=20)
    path = export_as_pipeline(serving, fmt, tmp_path, histories)
    predictor = Predictor(path)
    agree = []
    for h in histories[:30]:
        with torch.no_grad():
            ref_scores, ref_items = serving(h[None])
        got_scores, got_items = predictor.predict(h[None].numpy())
        agree.append(float(np.mean(got_items[0, :10] == ref_items[0, :10].numpy())))
        assert np.abs(got_scores - ref_scores.numpy()).max() < 1e-3
    assert np.mean(agree) >= 0.98
    # the integer table is in the file once: a copy folded back to fp32 would add N·r·4 bytes
    fp32_table = compressed.model.items.inner.qweight.shape[0] * 12 * 4
    assert FORMAT_OVERHEAD[fmt] < fp32_table
    assert path.stat().st_size < model_bytes(compressed.model) + FORMAT_OVERHEAD[fmt]


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_an_int8_table_scores_in_the_runtimes_int8_matmul(trained, histories, fmt, tmp_path, monkeypatch):
    """A large int8 table stored once is scored by XNNPACK's / ORT's int8 matmul on the same int8 rows,
    not unpacked to fp32 on every request (60 ns an item in ExecuTorch, outside XNNPACK); only the
    scores are quantized at export, the fp32 block linears stay fp32. (This small table counts as
    large here; at its real size it is unpacked, as the next assertion says.)"""
    import export.serving
    from export.runtime import Predictor
    from export.serving import ServingModel
    from toolkit.profiler.ops import inspect_ops

    model = quantize_(copy.deepcopy(trained), QuantConfig(table_bits=8, linear_bits=32))
    assert not ServingModel(model, top_k=20).int8_scores
    monkeypatch.setattr(export.serving, "INT8_SCORES_MIN_ITEMS", 0)
    serving = ServingModel(model, top_k=20)
    assert serving.int8_scores
    path = export_as_pipeline(serving, fmt, tmp_path, histories)
    predictor = Predictor(path)
    agree = []
    for h in histories[:30]:
        with torch.no_grad():
            ref_items = serving(h[None])[1]
        agree.append(float(np.mean(predictor.predict(h[None].numpy())[1][0, :10] == ref_items[0, :10].numpy())))
    assert np.mean(agree) >= 0.85  # PARITY_MIN_AGREEMENT["quantized at export"]
    n, width = model.items.qweight.shape
    ops = inspect_ops(path, fmt)
    if fmt == "onnx":
        assert ops["op_types"].get("MatMulInteger") == 1  # the scores only
    else:
        assert ops["xnnpack_quantized_values"] > 0
        assert sum(ops["planned_buffers"]) < n * width * 4  # no fp32 table unpacked per request
    # the table twice as int8 (lookup + matmul weight), never as fp32
    assert path.stat().st_size < model_bytes(model) + n * (width + 4) + FORMAT_OVERHEAD[fmt]
