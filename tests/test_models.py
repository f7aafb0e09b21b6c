"""The SASRec model: shapes, causality, padding, and the last-position shortcut."""

from __future__ import annotations

import torch

from toolkit.models.sasrec import Ensemble, ModelConfig, SASRec, count_parameters


def _model(**kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(ModelConfig(num_items=40, dim=16, layers=2, heads=2, max_history=8, dropout=0.0, **kw)).eval()


def test_shapes():
    m = _model()
    h = torch.randint(1, 40, (3, 8))
    assert m(h).shape == (3, 8, 40)
    assert m.score_last(h).shape == (3, 40)


def test_causal_future_items_do_not_change_the_past():
    m = _model()
    h = torch.randint(1, 40, (1, 8))
    h2 = h.clone()
    h2[0, -1] = (h[0, -1] % 39) + 1
    with torch.no_grad():
        assert torch.allclose(m(h)[0, :-1], m(h2)[0, :-1], atol=1e-5)


def test_padding_does_not_leak():
    m = _model()
    a = torch.tensor([[0, 0, 0, 5, 6, 7, 8, 9]])
    b = a.clone()
    b[0, :3] = 0  # same padding, but the pad embedding is masked either way: compare to a shorter window
    with torch.no_grad():
        full = m.score_last(a)
        m2 = _model()
        assert torch.allclose(full, m2.score_last(b), atol=1e-5)


def test_last_only_equals_full_encode():
    m = _model()
    h = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(m(h)[:, -1], m.score_last(h), atol=1e-5)


def test_factorized_table_is_smaller_and_works():
    full, low = _model(), _model(embedding_rank=4)
    assert count_parameters(low) < count_parameters(full)
    assert low.score_last(torch.randint(1, 40, (2, 8))).shape == (2, 40)


def test_ensemble_is_a_log_probability():
    e = Ensemble([_model(), _model()])
    p = e.score_last(torch.randint(1, 40, (2, 8))).exp().sum(-1)
    assert torch.allclose(p, torch.ones(2), atol=1e-4)
