"""The evaluation protocol: full ranking, history excluded, ties against the model, HR@K / NDCG@K."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from toolkit.data import Split, TestDataAccessError
from toolkit.training.evaluate import (candidates_needed, cutoff_for, evaluate_popularity, evaluate_scores, evaluate_topk,
                              metrics_from_ranks, pad_histories)


def test_metrics_from_ranks():
    m = metrics_from_ranks(np.array([0, 1, 9, 10, -1]))
    assert m.hr == pytest.approx(3 / 5)
    assert m.ndcg == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(11)) / 5)
    assert m.users == 5 and m.k == 10 and m.names == ("HR@10", "NDCG@10")


def test_a_cutoff_below_ten_is_named_by_its_k():
    assert cutoff_for(20) == 10 and cutoff_for(5) == 5
    m = metrics_from_ranks(np.array([0, 4, 5]), k=5)
    assert m.names == ("HR@5", "NDCG@5") and m.hr == pytest.approx(2 / 3)
    assert "NDCG@5" in m.text() and "@10" not in m.text()


def test_pad_histories_keeps_most_recent():
    out = pad_histories([np.array([1, 2, 3, 4]), np.array([5])], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 5]]


def _one_user(history=(1, 2), valid=3, test=4, items=6) -> Split:
    return Split(train=[np.array(history)], valid_target=np.array([valid]), test_target_=np.array([test]),
                 num_items=items)


def test_history_is_excluded():
    split = _one_user()
    # item 1 and 2 (history) score highest but are excluded; 5 beats the target 3
    scores = np.array([[9.0, 8.0, 7.0, 1.0, 0.0, 2.0]])
    m = evaluate_scores(lambda b: scores, split, "valid", max_history=2)
    assert m.hr == 1.0 and m.ndcg == pytest.approx(1 / np.log2(3))  # rank 1 (0-based)


def test_ties_count_against_the_model():
    split = Split(train=[np.array([1, 2])] * 3, valid_target=np.array([3, 4, 5]), test_target_=np.array([6, 6, 6]),
                  num_items=20)
    constant = evaluate_scores(lambda b: np.zeros((len(b), 20)), split, "valid", max_history=2)
    assert constant.hr == 0.0 and constant.ndcg == 0.0  # a model that scores every item equally finds nothing
    # a tie with one other item: the target ranks second, not first
    scores = np.zeros((1, 20))
    scores[0, 3] = scores[0, 7] = 1.0
    m = evaluate_scores(lambda b: np.repeat(scores, len(b), 0), _one_user(items=20), "valid", max_history=2)
    assert m.ndcg == pytest.approx(1 / np.log2(3))


def test_ties_count_against_an_artifact_too():
    split = _one_user(items=20)

    def constant_artifact(history):  # every candidate scores the same: order says nothing
        return np.zeros((1, 15), dtype=np.float32), np.arange(3, 18)[None]

    m = evaluate_topk(constant_artifact, split, "valid", max_history=2)
    assert m.hr == 0.0


def test_sealed_split_keeps_test_targets_away():
    split = _one_user()
    sealed = split.sealed()
    assert sealed.valid_target.tolist() == [3] and sealed.history("test")[0].tolist() == [1, 2, 3]
    with pytest.raises(TestDataAccessError):
        sealed.test_target
    with pytest.raises(TestDataAccessError):
        evaluate_scores(lambda b: np.zeros((len(b), 6)), sealed, "test", max_history=2)
    assert split.test_target.tolist() == [4]


def test_popularity_baseline_matches_reference(movielens):
    from toolkit.data import split_leave_one_out

    m = evaluate_popularity(split_leave_one_out(movielens), "test")
    # under this protocol (ties against): NDCG@10 ≈ 0.043, HR@10 ≈ 0.084 (0.045 / 0.086 when ties helped)
    assert m.ndcg == pytest.approx(0.0432, abs=0.002)
    assert m.hr == pytest.approx(0.0838, abs=0.003)
    assert m.users == 943


def _random_scores(split, seed=0):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(len(split.train), split.num_items))
    lookup = {}

    def scores(batch):
        return np.stack([lookup.setdefault(tuple(row), table[len(lookup) % len(table)]) for row in batch])

    return scores


def test_topk_evaluation_equals_full_ranking(small_split):
    scores = _random_scores(small_split)
    full = evaluate_scores(scores, small_split, "test", max_history=50)

    def artifact(history):  # window items and padding masked, top 200
        s = scores(history)[0].copy()
        s[0] = -np.inf
        s[history[0]] = -np.inf
        best = np.argsort(-s, kind="stable")[:200]
        return s[best][None], best[None]

    top = evaluate_topk(artifact, small_split, "test", max_history=50)
    assert top.undetermined == 0
    assert top.hr == pytest.approx(full.hr) and top.ndcg == pytest.approx(full.ndcg)


def test_enough_candidates_survive_the_apps_filtering(small_split):
    """With `candidates_needed` candidates, the app's dropping of older history items leaves top_k
    for every validation user: the artifact's quality is the model's."""
    scores = _random_scores(small_split, seed=1)
    top_k, window = 20, 10
    candidates, figures = candidates_needed(scores, small_split, window, top_k)
    assert top_k < candidates <= small_split.num_items - 1 and figures["users"] == len(small_split.train)

    def artifact(history, c=candidates):
        s = scores(history)[0].copy()
        s[0] = -np.inf
        s[history[0]] = -np.inf
        best = np.argsort(-s, kind="stable")[:c]
        return s[best][None], best[None]

    full = evaluate_scores(scores, small_split, "valid", max_history=window)
    enough = evaluate_topk(artifact, small_split, "valid", max_history=window)
    assert enough.undetermined == 0 and enough.ndcg == pytest.approx(full.ndcg)
    short = evaluate_topk(lambda h: artifact(h, 10), small_split, "valid", max_history=window)
    assert short.undetermined > 0  # 10 candidates are not enough for NDCG@10 once older items are dropped


def test_with_repeats_allowed_a_seen_target_is_a_hit():
    """--repeats allow: the history is not excluded, so a test item the user already has counts."""
    split = _one_user(history=(1, 2), valid=3, test=1)
    scores = np.array([[0.0, 9.0, 8.0, 7.0, 1.0, 2.0]])  # item 1, the target, scores best
    drop = evaluate_scores(lambda b: scores, split, "test", max_history=3)
    allow = evaluate_scores(lambda b: scores, replace(split, allow_repeats=True), "test", max_history=3)
    assert drop.hr == 0.0 and allow.hr == 1.0 and allow.ndcg == 1.0

    def artifact(history):  # returns the seen items 1 and 2 first, as an artifact built with allow does
        return np.array([[9.0, 8.0, 7.0]]), np.array([[1, 2, 3]])

    assert evaluate_topk(artifact, split, "test", 3, k=3).hr == 0.0  # the app dropped 1 and 2
    assert evaluate_topk(artifact, replace(split, allow_repeats=True), "test", 3, k=3).ndcg == 1.0
