"""Ranking quality: HR@10 and NDCG@10 with full ranking over every item, history excluded.

One protocol everywhere (training, build, artifacts, benchmark): for each user the model sees the
last `max_history` items before the target; every item the user interacted with before the target
(the whole history, not only the window) and the padding index are excluded; the target's rank is
the number of remaining items scored strictly higher. Never sampled negatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.data import Split

CUTOFF = 10
EVAL_BATCH = 256


@dataclass
class Metrics:
    hr10: float
    ndcg10: float
    users: int

    def to_dict(self) -> dict:
        return asdict(self)


def pad_histories(histories: list[np.ndarray], length: int) -> np.ndarray:
    """Left-pad (or cut to the most recent `length`) item sequences: (U, length) int64."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, h in enumerate(histories):
        h = h[-length:]
        if len(h):
            out[row, length - len(h):] = h
    return out


def metrics_from_ranks(ranks: np.ndarray, k: int = CUTOFF) -> Metrics:
    """Ranks are 0-based; a rank >= k (or -1 for "not found in a top-K list") is a miss."""
    hit = (ranks >= 0) & (ranks < k)
    gain = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return Metrics(hr10=float(hit.mean()), ndcg10=float(gain.mean()), users=int(len(ranks)))


def evaluate_scores(score_fn: Callable[[np.ndarray], np.ndarray], split: Split, phase: str, max_history: int) -> Metrics:
    """Evaluate a function that maps padded histories (B, T) to scores over all items (B, N)."""
    histories = split.history(phase)
    targets = split.target(phase)
    padded = pad_histories(histories, max_history)
    ranks = np.empty(len(targets), dtype=np.int64)
    for start in range(0, len(targets), EVAL_BATCH):
        stop = min(start + EVAL_BATCH, len(targets))
        scores = np.array(score_fn(padded[start:stop]), dtype=np.float64, copy=True)  # (B, N)
        for row in range(stop - start):
            user = start + row
            scores[row, 0] = -np.inf
            scores[row, histories[user]] = -np.inf
            ranks[user] = int((scores[row] > scores[row, targets[user]]).sum())
    return metrics_from_ranks(ranks)


def evaluate_model(model, split: Split, phase: str) -> Metrics:
    """Evaluate a torch recommender (anything with `score_last` and `cfg.max_history`)."""
    import torch

    was_training = model.training
    model.eval()

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.score_last(torch.from_numpy(batch)).numpy()

    try:
        return evaluate_scores(score, split, phase, model.cfg.max_history)
    finally:
        model.train(was_training)


def evaluate_topk(topk_fn: Callable[[np.ndarray], np.ndarray], split: Split, phase: str, max_history: int) -> tuple[Metrics, int]:
    """Evaluate an artifact that returns only its top-K items for one history (1, T) -> (K,).

    The artifact already leaves out the items in its input window; older history items are
    dropped from its list here, so the target's position in what is left is its full-ranking
    rank. When fewer than 10 items are left and the target is not among them the rank is
    unknown and counted as a miss; the number of such users is returned with the metrics.
    """
    histories = split.history(phase)
    targets = split.target(phase)
    padded = pad_histories(histories, max_history)
    ranks = np.full(len(targets), -1, dtype=np.int64)
    undetermined = 0
    for user in range(len(targets)):
        items = np.asarray(topk_fn(padded[user:user + 1])).reshape(-1)
        seen = set(histories[user].tolist())
        kept = [int(i) for i in items if int(i) not in seen]
        if int(targets[user]) in kept:
            ranks[user] = kept.index(int(targets[user]))
        elif len(kept) < CUTOFF:
            undetermined += 1
    return metrics_from_ranks(ranks), undetermined


def popularity_scores(split: Split) -> np.ndarray:
    """Training-interaction counts per item: the most-popular baseline's scores (N,)."""
    counts = np.zeros(split.num_items, dtype=np.float64)
    for seq in split.train:
        np.add.at(counts, seq, 1.0)
    return counts


def evaluate_popularity(split: Split, phase: str, max_history: int = 1) -> Metrics:
    counts = popularity_scores(split)
    return evaluate_scores(lambda b: np.tile(counts, (len(b), 1)), split, phase, max_history)
