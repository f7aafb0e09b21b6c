"""How the artifacts serve: how many candidates they return (sized on validation histories with the
float student), and for the largest catalogues the two-stage index (clusters, then their members)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from toolkit.recipe.manifest import ServingRecord
from toolkit.recipe.records import Data
from toolkit.training.evaluate import candidates_needed, pad_histories


def serving_record(model, split, profile, k: int) -> ServingRecord:
    """How many candidates the artifacts return (sized on validation histories with the float student)."""
    import torch

    max_history, top_k = profile.serving.max_history, profile.serving.top_k
    model.eval()

    def scores(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.score_last(torch.from_numpy(batch)).numpy()

    if split.allow_repeats:  # the app keeps every answer: nothing to make room for
        return ServingRecord(max_history=max_history, top_k=top_k, candidates=top_k, k=k, repeats="allow",
                             how="repeats allowed: the artifacts may answer items the user already has and the "
                                 "app keeps them, so top_k candidates are enough")
    candidates, figures = candidates_needed(scores, split, max_history, top_k)
    how = (f"on {figures['users']} validation histories at most {figures['max_older_items_above']} items older "
           f"than the {max_history}-item window rank above the {top_k}th new one (99th percentile "
           f"{figures['p99_older_items_above']:.0f})")
    return ServingRecord(max_history=max_history, top_k=top_k, candidates=candidates, k=k, how=how)


def cluster_index_(model, float_model, data: Data, log) -> tuple:
    """Cluster the compressed student's item vectors (faiss), relabel the items so each cluster is a
    contiguous index range, in both students (in place), the split and items.json's order.
    Returns (ClusterIndex, relabelled Data)."""
    from export.cluster_index import build_index, permute_items_

    index = build_index(model.items.weight().detach())
    for m in {id(model): model, id(float_model): float_model}.values():
        permute_items_(m, index.order)
    log(f"two-stage index: {index.clusters} clusters of at most {index.capacity} items, the items relabelled so "
        "each cluster is a contiguous range")
    return index, replace(data, split=data.split.relabelled(index.inverse()),
                          item_ids=[data.item_ids[i] for i in index.order.tolist()])


def choose_two_stage(model, index, split, candidates: int, log, histories: int = 1000) -> dict:
    """The smallest probe reaching recall@10 `export.two_stage.RECALL_TARGET` against exhaustive scoring
    of the same model, on validation histories."""
    from export.two_stage import RECALL_TARGET, choose_probe

    sample = split.evaluated_on(histories)
    padded = pad_histories(sample.history("valid"), model.cfg.max_history)
    choice = choose_probe(model, index, padded, candidates=candidates, target=RECALL_TARGET)
    log(f"two-stage: probe {choice.probe} of {index.clusters} clusters, {choice.scored_fraction:.1%} of the items "
        f"scored, recall@10 {choice.recall:.3f} against exhaustive scoring on {len(padded)} validation histories")
    return {**index.summary(), **choice.to_dict(), "validation_histories": len(padded)}
