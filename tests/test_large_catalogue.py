"""The large-catalogue path of the build: the plan's PQ and two-stage candidates, and the pipeline's
two-stage step (cluster, relabel the items, choose the probe, export, check) on a real model."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from toolkit.planning.candidates import Candidate, PlanConfig, enumerate_candidates
from toolkit.planning.estimate import estimate, weight_bytes


def test_pq_and_two_stage_are_candidates_only_for_large_catalogues():
    small = enumerate_candidates(PlanConfig(), True, 1_683)
    assert not any(c.pq_subspaces or c.two_stage for c in small)  # MovieLens plans as before
    large = enumerate_candidates(PlanConfig(), True, 1_000_001)
    assert any(c.pq_subspaces for c in large) and any(c.two_stage for c in large)
    assert not any(c.pq_subspaces or c.two_stage for c in enumerate_candidates(PlanConfig(), False, 1_000_001))


def test_a_million_items_fit_20_mb_only_compressed_and_two_stage_is_faster():
    n = 1_000_001
    pq = Candidate(32, pq_subspaces=8, linear_bits=8)
    int4 = Candidate(32, table_bits=4, linear_bits=8)
    assert weight_bytes(pq, n, 50) < 9e6 < weight_bytes(int4, n, 50) < 20e6 < weight_bytes(Candidate(32), n, 50)
    exhaustive = estimate(pq, n, 50, 30.0, ("executorch", "onnx"))
    two_stage = estimate(Candidate(32, pq_subspaces=8, linear_bits=8, two_stage=True), n, 50, 30.0, ("executorch", "onnx"))
    for fmt in ("executorch", "onnx"):
        assert two_stage.latency_ms[fmt] < exhaustive.latency_ms[fmt] / 3
    assert two_stage.file_bytes["onnx"] - exhaustive.file_bytes["onnx"] < 700_000  # 4,000 centroids + starts/sizes


@pytest.fixture(scope="module")
def two_stage_build(trained_small, small_split, tmp_path_factory):
    """The pipeline's two-stage step on a real (small) PQ model, exported in both formats."""
    from toolkit.compression import PQConfig, pq_quantize_
    from toolkit.core.profiles import load_profile
    from toolkit.recipe.artifacts import Shipping, check_artifacts, export_job, write_references
    from toolkit.recipe.records import Data, ExportJob
    from toolkit.recipe.serving import choose_two_stage, cluster_index_, serving_record
    from toolkit.training.evaluate import metrics_from_ranks

    float_model = copy.deepcopy(trained_small)
    model = pq_quantize_(copy.deepcopy(trained_small), PQConfig(4))
    candidate = Candidate(16, heads=2, pq_subspaces=4, two_stage=True)
    original = copy.deepcopy(model)
    item_ids = [""] + [f"i{n}" for n in range(1, small_split.num_items)]
    data = Data(dataset=None, split=small_split, key={}, item_ids=item_ids)
    index, data = cluster_index_(model, float_model, data, log=lambda *_: None)
    split, relabelled_ids = data.split, data.item_ids
    profile = load_profile("mobile-arm")
    serving = serving_record(float_model, split.sealed(), profile, 10)
    serving.two_stage = choose_two_stage(model, index, split.sealed(), serving.candidates, log=lambda *_: None)
    out = tmp_path_factory.mktemp("two-stage")
    (out / "items.json").write_text(json.dumps(relabelled_ids))
    jobs = [ExportJob(f"model.compressed.{s}", f, candidate.precision, "compressed", "compressed", "pq")
            for f, s in (("executorch", "pte"), ("onnx", "onnx"))]
    shipping = Shipping(serving.candidates, False, (index, serving.two_stage["probe"]))
    for job in jobs:
        export_job(job, model, shipping, out / job.name, profile.serving.max_history)
    write_references(out, {"compressed": model}, shipping, split, profile.serving.max_history)
    floor = metrics_from_ranks(np.array([0]))
    artifacts = check_artifacts(out, jobs, {"compressed": model}, shipping, split, profile.hardware.threads, 10, floor,
                                {}, log=lambda *_: None)
    return {"index": index, "split": split, "ids": relabelled_ids, "original": original, "serving": serving,
            "artifacts": artifacts, "out": out, "item_ids": item_ids}


def test_relabelling_keeps_every_item_and_its_answers(two_stage_build, small_split):
    b = two_stage_build
    assert sorted(b["ids"]) == sorted(b["item_ids"]) and b["ids"][0] == ""  # a permutation, padding first
    # the relabelled split holds the same items, under their new indices
    new_of_old = b["index"].inverse()
    assert all(np.array_equal(new_of_old[old], new) for old, new in zip(small_split.train, b["split"].train))


def test_two_stage_artifacts_answer_like_their_graph_and_mostly_like_exhaustive(two_stage_build):
    from export.runtime import Predictor
    from toolkit.training.evaluate import pad_histories

    b = two_stage_build
    two = b["serving"].two_stage
    assert two["recall"] >= 0.96 and 0 < two["scored_fraction"] <= 1  # chosen on validation
    for a in b["artifacts"]:
        assert a.parity["top10_agreement"] >= 0.98, a.path  # against the two-stage graph it came from
        assert a.metrics.undetermined == 0
    # through the runtime, mapped back to original ids: the exhaustive model's top-10, mostly
    histories = pad_histories(b["split"].history("test")[:100], 50)
    onnx = Predictor(b["out"] / "model.compressed.onnx")
    from export.serving import ServingModel
    import torch

    exhaustive = ServingModel(b["original"], 10).eval()
    overlap = []
    for h in histories:
        got = [b["ids"][i] for i in onnx.predict(h[None])[1][0, :10].tolist()]
        old = b["index"].order[h]  # the same history in the original index space
        with torch.no_grad():
            want = [b["item_ids"][i] for i in exhaustive(torch.from_numpy(old[None]))[1][0].tolist()]
        overlap.append(len(set(got) & set(want)) / 10)
    assert np.mean(overlap) >= 0.9
