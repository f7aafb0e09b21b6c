"""Ranking quality: HR@K and NDCG@K with full ranking over every item, history excluded.

One protocol everywhere (training, build, artifacts, benchmark): for each user the model sees the
last `max_history` items before the target; every item the user interacted with before the target
(the whole history, not only the window) and the padding index are excluded (under `--repeats
allow`, `Split.allow_repeats`, only the padding: a seen item is an answer and can be the hit); the target's rank is
the number of remaining items scoring **at least as high** as the target (ties count against the
model: a model that scores every item equally ranks every target last). Never sampled negatives.

K is 10 (`CUTOFF`), or the profile's `top_k` when that is smaller (an artifact that returns 5
items cannot be measured at 10): every figure carries its K and is named HR@K / NDCG@K.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.data import Split

CUTOFF = 10
EVAL_BATCH = 256
EVAL_ELEMENTS = 1 << 24  # scores held at once (users x items): a batch shrinks for a large catalog


@dataclass
class Metrics:
    k: int  # the cutoff: HR@k, NDCG@k
    hr: float
    ndcg: float
    users: int
    undetermined: int = 0  # users whose rank an artifact's candidate list could not decide (counted as misses)

    @property
    def names(self) -> tuple[str, str]:
        return f"HR@{self.k}", f"NDCG@{self.k}"

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """e.g. "NDCG@10 0.1138, HR@10 0.2089"."""
        return f"NDCG@{self.k} {self.ndcg:.4f}, HR@{self.k} {self.hr:.4f}"


def cutoff_for(top_k: int) -> int:
    """The K every figure of a build is measured at: 10, or top_k when the artifact returns fewer."""
    return min(CUTOFF, top_k)


def pad_histories(histories: list[np.ndarray], length: int) -> np.ndarray:
    """Left-pad (or cut to the most recent `length`) item sequences: (U, length) int64."""
    out = np.zeros((len(histories), length), dtype=np.int64)
    for row, h in enumerate(histories):
        h = h[-length:]
        if len(h):
            out[row, length - len(h):] = h
    return out


def metrics_from_ranks(ranks: np.ndarray, k: int = CUTOFF, undetermined: int = 0) -> Metrics:
    """Ranks are 0-based; a rank >= k (or -1 for "not found in a top-K list") is a miss."""
    hit = (ranks >= 0) & (ranks < k)
    gain = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return Metrics(k=k, hr=float(hit.mean()), ndcg=float(gain.mean()), users=int(len(ranks)),
                   undetermined=undetermined)


def evaluate_scores(score_fn: Callable[[np.ndarray], np.ndarray], split: Split, phase: str, max_history: int,
                    k: int = CUTOFF) -> Metrics:
    """Evaluate a function that maps padded histories (B, T) to scores over all items (B, N)."""
    histories = split.history(phase)
    targets = split.target(phase)
    padded = pad_histories(histories, max_history)
    ranks = np.empty(len(targets), dtype=np.int64)
    batch = max(1, min(EVAL_BATCH, EVAL_ELEMENTS // split.num_items))
    for start in range(0, len(targets), batch):
        stop = min(start + batch, len(targets))
        scores = np.array(score_fn(padded[start:stop]), dtype=np.float64, copy=True)  # (B, N)
        for row in range(stop - start):
            user = start + row
            scores[row, 0] = -np.inf
            if not split.allow_repeats:
                scores[row, histories[user]] = -np.inf
            target = scores[row, targets[user]]
            # every other item scoring >= the target ranks above it (ties count against the model);
            # a target excluded as history (-inf) is never a hit
            ranks[user] = int((scores[row] >= target).sum()) - 1 if np.isfinite(target) else k
    return metrics_from_ranks(ranks, k)


def evaluate_model(model, split: Split, phase: str, k: int = CUTOFF) -> Metrics:
    """Evaluate a torch recommender (anything with `score_last` and `cfg.max_history`)."""
    import torch

    was_training = model.training
    model.eval()

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.score_last(torch.from_numpy(batch)).numpy()

    try:
        return evaluate_scores(score, split, phase, model.cfg.max_history, k)
    finally:
        model.train(was_training)


def evaluate_topk(predict: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], split: Split, phase: str,
                  max_history: int, k: int = CUTOFF) -> Metrics:
    """Evaluate an artifact that returns only its best candidates: history (1, T) -> (scores (1, C), items (1, C)).

    What the app does is done here too: candidates the user already has (the whole history, not
    only the window the artifact saw) and candidates with a non-finite score are dropped; the
    target's rank is then the number of remaining candidates scoring at least as high as it (ties
    count against). When fewer than k candidates remain and the target is not among them its rank
    is unknown: counted as a miss and reported as `undetermined`.
    """
    histories = split.history(phase)
    targets = split.target(phase)
    padded = pad_histories(histories, max_history)
    ranks = np.full(len(targets), -1, dtype=np.int64)
    undetermined = 0
    for user in range(len(targets)):
        scores, items = predict(padded[user:user + 1])
        scores, items = np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(items).reshape(-1)
        seen = set() if split.allow_repeats else set(histories[user].tolist())
        kept = [(s, int(i)) for s, i in zip(scores.tolist(), items.tolist()) if int(i) not in seen and np.isfinite(s)]
        target = int(targets[user])
        found = [s for s, i in kept if i == target]
        if found:
            ranks[user] = sum(1 for s, i in kept if s >= found[0] and i != target)
        elif len(kept) < k:
            undetermined += 1
    return metrics_from_ranks(ranks, k, undetermined)


def candidates_needed(score_fn: Callable[[np.ndarray], np.ndarray], split: Split, max_history: int,
                      top_k: int, max_users: int = 2000, seed: int = 0) -> tuple[int, dict]:
    """How many candidates an artifact must return so that, after the app drops what the user has
    already seen (items older than the window included), `top_k` are left: sized on validation.

    For each validation user (a sample of `max_users` on large data): rank the items as the
    artifact does (window items and padding masked) and count the older history items met before
    the `top_k`-th new one; the answer is top_k + the largest count (capped by the catalogue).
    Returns (candidates, figures).
    """
    histories = split.history("valid")
    users = np.arange(len(histories))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    padded = pad_histories([histories[u] for u in users], max_history)
    need = np.zeros(len(users), dtype=np.int64)
    batch = max(1, min(EVAL_BATCH, EVAL_ELEMENTS // split.num_items))
    for start in range(0, len(users), batch):
        stop = min(start + batch, len(users))
        scores = np.array(score_fn(padded[start:stop]), dtype=np.float64, copy=True)
        for row in range(stop - start):
            window = padded[start + row][padded[start + row] > 0]
            older = np.setdiff1d(histories[users[start + row]], window)
            if not len(older):
                continue
            s = scores[row]
            s[0] = -np.inf
            s[window] = -np.inf
            m = min(top_k + len(older), len(s) - 1)  # the top_k-th new item is within the best m
            best = np.argpartition(-s, m - 1)[:m]
            best = best[np.argsort(-s[best], kind="stable")]
            is_old = np.isin(best, older)
            cut = int(np.searchsorted(np.cumsum(~is_old), top_k))  # where the top_k-th new item is
            need[start + row] = int(is_old[: cut + 1].sum())
    candidates = int(min(top_k + need.max(initial=0), split.num_items - 1))
    return candidates, {"users": int(len(need)), "max_older_items_above": int(need.max(initial=0)),
                        "p99_older_items_above": float(np.percentile(need, 99)) if len(need) else 0.0}


def popularity_scores(split: Split) -> np.ndarray:
    """Training-interaction counts per item: the most-popular baseline's scores (N,)."""
    counts = np.zeros(split.num_items, dtype=np.float64)
    for seq in split.train:
        np.add.at(counts, seq, 1.0)
    return counts


def evaluate_popularity(split: Split, phase: str, k: int = CUTOFF) -> Metrics:
    counts = popularity_scores(split)
    return evaluate_scores(lambda b: np.tile(counts, (len(b), 1)), split, phase, 1, k)
