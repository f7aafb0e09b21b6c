"""Two-stage serving on a small real model (first 150 MovieLens users): clusters, relabelling, contract,
recall against exhaustive scoring, and the artifacts in their real runtimes.

The catalogue is small (1,682 items, C = 41 clusters), so the fractions are not the point here
(bench/serving_scale.py measures them at 10^6 items); what is checked is that every piece does
what it says: balanced contiguous clusters, a relabelling that changes nothing but the names,
probing every cluster equals exhaustive scoring, the chosen probe is the smallest that reaches
the recall target, and both runtimes return the PyTorch graph's items with the heavy matmuls
inside XNNPACK.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from export.serving import ServingModel
from export.cluster_index import (ClusterIndex, IndexConfig, balanced_assignment, build_index, guaranteed_candidates,
                                  min_probe, permute_items_)
from export.two_stage import TwoStageServing, choose_probe, recall_at_k
from toolkit.compression import PQConfig, PruneConfig, QuantConfig, model_bytes, pq_quantize_, prune_, quantize_
from tests.test_pq import HISTORY, trained  # noqa: F401  (the same small trained model, a module fixture)
from toolkit.core.errors import ToolkitError
from toolkit.training.evaluate import pad_histories

K = 10
# what may run outside XNNPACK in a two-stage .pte: gathers, topk, masks and small elementwise ops,
# never a matmul (stage 1 and stage 2 must be XNNPACK's FullyConnected / BatchMatrixMultiply)
MATMUL_OPS = ("mm", "bmm", "addmm", "linear", "matmul", "convolution")


@pytest.fixture(scope="module")
def index(trained) -> ClusterIndex:
    return build_index(trained.items.weight().detach(), IndexConfig())


@pytest.fixture(scope="module")
def pq_model(trained, index):
    """The PQ model, relabelled so every cluster is a contiguous index range."""
    return permute_items_(pq_quantize_(copy.deepcopy(trained), PQConfig(8)), index.order)


@pytest.fixture(scope="module")
def histories(small_split, index):
    """(valid, test) histories (150, L) each, in the relabelled index space."""
    return tuple(index.relabel(pad_histories(small_split.history(part), HISTORY)) for part in ("valid", "test"))


def test_index_config_names_bad_fields():
    with pytest.raises(ToolkitError, match=r"IndexConfig.clusters: -1 .*IndexConfig.balance: 0.9 .*>= 1.0"):
        IndexConfig(clusters=-1, balance=0.9)
    with pytest.raises(ToolkitError, match="IndexConfig.clusters: 5000 is more than the 1682 items"):
        build_index(np.random.default_rng(0).normal(size=(1683, 4)).astype(np.float32), IndexConfig(clusters=5000))


def test_balanced_assignment_fills_nearest_first_within_capacity():
    # four rows all nearest to cluster 0, which has room for two: the two nearest keep it
    neighbours = np.array([[0, 1], [0, 1], [0, 2], [0, 2]])
    distances = np.array([[0.3, 0.9], [0.1, 0.8], [0.2, 0.5], [0.4, 0.6]], dtype=np.float32)
    room = np.array([2, 1, 5])
    assign = balanced_assignment(neighbours, distances, room)
    assert assign.tolist() == [1, 0, 0, 2]
    assert room.tolist() == [0, 0, 4]


def test_clusters_are_balanced_contiguous_ranges(trained, index):
    n = trained.items.embedding.weight.shape[0]
    c = index.clusters
    assert c == round(4 * (n - 1) ** 0.5)  # C ≈ 4·sqrt(N) by default
    assert index.capacity == int(np.ceil(1.25 * (n - 1) / c))
    assert index.sizes.max() <= index.capacity and index.sizes.min() >= 1
    assert index.order[0] == 0 and sorted(index.order.tolist()) == list(range(n))
    assert index.starts[0] == 1 and np.array_equal(index.starts[1:], index.starts[:-1] + index.sizes[:-1])
    assert index.starts[-1] + index.sizes[-1] == n  # the ranges cover 1..N-1 exactly
    w = trained.items.weight().detach().numpy()[index.order]  # rows in the relabelled order
    for cl in (0, c // 2, c - 1):
        members = w[index.starts[cl]:index.starts[cl] + index.sizes[cl]]
        assert np.allclose(index.centroids[cl], members.mean(0), atol=1e-5)
    assert 0 < index.scored_fraction(1) < 1 and index.items_scored(2) == c + 2 * index.capacity


@pytest.mark.parametrize("table", ["float", "int4", "pq"])
def test_relabelling_changes_only_the_names(trained, index, small_split, table):
    model = copy.deepcopy(trained)
    if table == "int4":
        quantize_(model, QuantConfig(table_bits=4, linear_bits=32))
    elif table == "pq":
        pq_quantize_(model, PQConfig(4))
    old = torch.from_numpy(pad_histories(small_split.history("test"), HISTORY))[:40]
    relabelled = permute_items_(copy.deepcopy(model), index.order)
    with torch.no_grad():
        ref_scores, ref_items = ServingModel(model, K)(old)
        scores, items = ServingModel(relabelled, K)(torch.from_numpy(index.relabel(old.numpy())))
    assert np.array_equal(index.order[items.numpy()], ref_items.numpy())  # items.json in `order` maps them back
    assert torch.allclose(scores, ref_scores, atol=1e-5)


def test_two_stage_contract_and_probing_everything_is_exhaustive(pq_model, index, histories):
    test = torch.from_numpy(histories[1])
    exhaustive = ServingModel(pq_model, K)
    everything = TwoStageServing(pq_model, K, index, probe=index.clusters)
    with torch.no_grad():
        ref_scores, ref_items = exhaustive(test)
        scores, items = everything(test)
    assert torch.equal(items, ref_items) and torch.allclose(scores, ref_scores, atol=1e-5)
    probe = min_probe(index, K, HISTORY)  # the fewest clusters that always hold K answers beside a full history
    assert guaranteed_candidates(index, probe, HISTORY) >= K > guaranteed_candidates(index, probe - 1, HISTORY)
    few = TwoStageServing(pq_model, K, index, probe)
    assert few.items_scored == index.clusters + probe * index.capacity
    assert model_bytes(few) - model_bytes(pq_model) == index.graph_bytes(probe)  # what the planner is told
    with torch.no_grad():
        for row in test:
            s, got = few(row[None])
            assert s.shape == (1, K) and got.shape == (1, K) and got.dtype == torch.int64
            assert torch.all(s[0, :-1] >= s[0, 1:]) and torch.isfinite(s).all(), "best first, all real"
            assert 0 not in got[0].tolist() and not set(got[0].tolist()) & set(row.tolist()), "padding/history"


def test_choose_probe_is_the_smallest_reaching_the_target(pq_model, index, histories):
    valid, test = histories
    exhaustive = ServingModel(pq_model, K)
    choice = choose_probe(pq_model, index, valid, candidates=K)
    assert choice.recall >= 0.95 and choice.recalls[choice.probe] == choice.recall
    assert choice.scored_fraction == index.scored_fraction(choice.probe) < 1
    # on held-out histories it stays near the target (150 users: a few points of noise)
    assert recall_at_k(TwoStageServing(pq_model, K, index, choice.probe), exhaustive, test) >= 0.9
    # this small catalogue reaches 0.95 at the smallest servable probe; recall 1.0 needs more, and
    # one cluster fewer than the chosen probe must miss it
    exact = choose_probe(pq_model, index, valid, candidates=K, target=1.0)
    assert exact.recall == 1.0 and exact.probe > min_probe(index, K, HISTORY)
    assert recall_at_k(TwoStageServing(pq_model, K, index, exact.probe - 1), exhaustive, valid) < 1.0
    # monotone: more clusters probed never lose recall
    tried = [exact.recalls[p] for p in sorted(exact.recalls)]
    assert all(a <= b + 1e-12 for a, b in zip(tried, tried[1:]))


def test_two_stage_rejects_what_it_cannot_serve(trained, pq_model, index, small_split):
    with pytest.raises(ToolkitError, match=f"TwoStageServing.probe: 0 not valid; valid: 1..{index.clusters}"):
        TwoStageServing(pq_model, K, index, probe=0)
    with pytest.raises(ToolkitError, match="TwoStageServing.candidates: 500 not valid.*raise probe to at least"):
        TwoStageServing(pq_model, 500, index, probe=2)
    pruned = prune_(copy.deepcopy(trained), PruneConfig(min_item_count=2), small_split)
    with pytest.raises(ToolkitError, match="PrunedItemTable not supported"):
        TwoStageServing(pruned, K, index, probe=2)
    with pytest.raises(ToolkitError, match="permute_items_: order must be a permutation"):
        permute_items_(copy.deepcopy(trained), index.order[::-1])


@pytest.mark.parametrize("fmt", ["executorch", "onnx"])
def test_two_stage_exports_with_parity(pq_model, index, histories, fmt, tmp_path):
    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.runtime import Predictor
    from toolkit.profiler.ops import inspect_pte

    serving = TwoStageServing(pq_model, 20, index, probe=min_probe(index, 20, HISTORY))
    path = tmp_path / ("m.pte" if fmt == "executorch" else "m.onnx")
    with quiet_exporters():
        (export_executorch if fmt == "executorch" else export_onnx)(serving, path, HISTORY)
    predictor = Predictor(path)
    assert (predictor.max_history, predictor.top_k) == (HISTORY, 20)
    for row in histories[1][:30]:
        with torch.no_grad():
            ref_scores, ref_items = serving(torch.from_numpy(row[None]))
        scores, items = predictor.predict(row[None])
        assert items.tolist() == ref_items.tolist()
        assert np.abs(scores - ref_scores.numpy()).max() < 1e-3
    if fmt == "executorch":
        ops = inspect_pte(path.read_bytes())
        outside = {name.split("::")[-1].split(".")[0] for name in ops["outside_xnnpack"]}
        assert not outside & set(MATMUL_OPS), ops["outside_xnnpack"]
        # the block's six linears + stage 1 (the centroids); the attention's two bmm + stage 2 (the members)
        assert ops["xnnpack_nodes"].get("FullyConnected", 0) == 7
        assert ops["xnnpack_nodes"].get("BatchMatrixMultiply", 0) == 3
