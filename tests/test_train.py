"""Training and distillation on a small real slice of MovieLens-100K."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tests.conftest import top10_agreement
from toolkit.training.distill import DistillConfig, distill, distillation_loss
from toolkit.training.evaluate import evaluate_model, evaluate_popularity
from toolkit.models.sasrec import ModelConfig
from toolkit.training.loop import TrainConfig, fit, training_windows


def test_training_windows_cover_every_training_transition(small_split):
    w = training_windows(small_split, max_history=10, stride=5)
    assert w.shape[1] == 11
    pairs = {(int(a), int(b)) for row in w for a, b in zip(row[:-1], row[1:]) if a and b}
    seq = small_split.train[0]
    assert {(int(a), int(b)) for a, b in zip(seq[:-1], seq[1:])} <= pairs


def test_distillation_loss_limits():
    torch.manual_seed(0)
    s, t = torch.randn(6, 7), torch.randn(6, 7)  # (positions, items)
    y = torch.tensor([1, 2, 3, 4, 5, 6])
    hard = torch.nn.functional.cross_entropy(s, y, reduction="sum")
    log_probs = lambda x, temp: torch.log_softmax(x / temp, dim=-1)  # noqa: E731  (what the teacher cache holds)
    assert torch.allclose(distillation_loss(s, log_probs(t, 1.0), y, DistillConfig(alpha=0.0)), hard)
    assert distillation_loss(s, log_probs(s, 3.0), y, DistillConfig(alpha=1.0, temperature=3.0)).abs() < 1e-5
    assert distillation_loss(s, log_probs(s, 1.0), y, DistillConfig(alpha=1.0, temperature=1.0)).abs() < 1e-5
    assert distillation_loss(s, log_probs(t, 1.0), y, DistillConfig(alpha=1.0)) > 0
    # T = 1 shares the student's softmax between the two terms: same value as computing both
    mixed = distillation_loss(s, log_probs(t, 1.0), y, DistillConfig(alpha=0.5, temperature=1.0))
    kl = torch.nn.functional.kl_div(log_probs(s, 1.0), log_probs(t, 1.0), reduction="sum", log_target=True)
    assert torch.allclose(mixed, 0.5 * hard + 0.5 * kl)


def test_topk_distillation_equals_full_when_it_sees_every_item():
    """With K = every item and no negatives, the top-K form is the full form."""
    from toolkit.training.distill import topk_distillation_loss

    torch.manual_seed(0)
    s, t = torch.randn(6, 7), torch.log_softmax(torch.randn(6, 7), -1)
    y = torch.tensor([1, 2, 3, 4, 5, 6])
    cfg = DistillConfig(alpha=1.0)
    none = torch.empty(6, 0)
    target_first = s.gather(1, y[:, None])  # the hard term's logits (alpha = 1 ignores it)
    assert torch.allclose(topk_distillation_loss(s, none, t, target_first, cfg), distillation_loss(s, t, y, cfg),
                          atol=1e-5)


def test_sampled_softmax_points_where_the_full_softmax_points(small_split):
    """The logQ-corrected sampled loss's gradient, averaged over draws, is the exact one's direction."""
    from toolkit.models.sasrec import SASRec
    from toolkit.training.losses import SampledSoftmax, full_softmax

    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=small_split.num_items, dim=16, max_history=20, dropout=0.0))
    windows = torch.from_numpy(training_windows(small_split, 20, 20))[:64]
    inputs, targets = windows[:, :-1], windows[:, 1:]

    def gradient(loss_fn) -> torch.Tensor:
        model.zero_grad()
        total, n = loss_fn(model, inputs, targets)
        (total / n).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    exact = gradient(full_softmax)
    sampled = SampledSoftmax(small_split, TrainConfig(negatives=1024, seed=0))
    mean = torch.stack([gradient(sampled) for _ in range(8)]).mean(0)
    assert torch.nn.functional.cosine_similarity(exact, mean, dim=0) > 0.9


@pytest.fixture(scope="module")
def trained(small_split):
    torch.set_num_threads(2)
    cfg = ModelConfig(num_items=small_split.num_items, dim=16, layers=1, max_history=50, dropout=0.2)
    return fit(cfg, small_split, TrainConfig(epochs=6, batch_size=32, lr=5e-3, patience=6, seed=0))


def test_training_learns_more_than_popularity(trained, small_split):
    # on 150 users the popularity baseline is weak; a trained model must at least match it on validation
    assert trained.valid.ndcg >= evaluate_popularity(small_split, "valid").ndcg
    assert trained.valid.hr > 0.05  # random ranking would give ≈ 10 / 1682 ≈ 0.006


def test_best_validation_state_is_kept(trained, small_split):
    again = evaluate_model(trained.model, small_split, "valid")
    assert again.ndcg == pytest.approx(trained.valid.ndcg)


def _top10_overlap(a: torch.nn.Module, b: torch.nn.Module, histories: torch.Tensor) -> float:
    with torch.no_grad():
        return top10_agreement(a.score_last(histories), b.score_last(histories))


def test_distilled_student_follows_the_teacher(trained, small_split):
    from toolkit.training.evaluate import pad_histories
    from toolkit.models.sasrec import SASRec

    cfg = ModelConfig(num_items=small_split.num_items, dim=8, layers=1, max_history=50, dropout=0.1)
    torch.manual_seed(1)
    untrained = SASRec(cfg).eval()
    student = distill(trained.model, cfg, small_split, TrainConfig(epochs=6, batch_size=32, lr=5e-3, patience=6, seed=1),
                      DistillConfig(alpha=1.0, temperature=1.0))
    h = torch.from_numpy(pad_histories(small_split.history("valid")[:64], 50))
    before, after = _top10_overlap(trained.model, untrained, h), _top10_overlap(trained.model, student.model, h)
    # a student trained only on the teacher's soft labels agrees with it far more than chance
    assert after > max(0.2, 3 * before), (before, after)


def test_a_finetune_that_never_improves_keeps_its_starting_weights(trained, small_split):
    import copy

    start = copy.deepcopy(trained.model)
    before = evaluate_model(start, small_split, "valid")
    # a learning rate this large wrecks the model on the first step: no epoch can beat the start
    result = fit(start.cfg, small_split, TrainConfig(epochs=2, min_steps=0, lr=50.0, seed=0), init=start)
    assert result.valid.ndcg == pytest.approx(before.ndcg)
    for (name, a), b in zip(trained.model.state_dict().items(), result.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_no_training_pairs_is_a_clear_error():
    import numpy as np

    from toolkit.data import Split
    from toolkit.core.errors import ToolkitError

    # every user has exactly 3 interactions: one training item each, so no (input, next item) pair
    split = Split(train=[np.array([i]) for i in range(1, 6)], valid_target=np.arange(6, 11),
                  test_target_=np.arange(11, 16), num_items=20)
    with pytest.raises(ToolkitError, match="nothing to train on"):
        training_windows(split, max_history=10, stride=10)


def test_a_budget_stops_the_loop_at_the_step_it_runs_out_and_says_capped(small_split, capsys):
    """A budget of 2.5 steps' work stops the loop after its 2nd step, mid-epoch; the best state is kept."""
    from toolkit.training.loop import fit_budget

    cfg = ModelConfig(num_items=small_split.num_items, dim=8, max_history=20)
    per_epoch = -(-len(training_windows(small_split, 20, 20)) // 16)
    assert per_epoch > 3
    train_cfg = TrainConfig(epochs=50, batch_size=16, min_steps=0, patience=50)
    step = fit_budget(cfg, small_split, train_cfg).step_work
    result = fit(cfg, small_split.sealed(), replace(train_cfg, budget=2.5 * step))
    assert result.capped and result.steps == 2 and result.epochs == 1 and result.budget.steps == 2
    assert result.work == pytest.approx(2 * step)
    assert "capped at 2 steps" in capsys.readouterr().err
    explicit = fit(cfg, small_split.sealed(), replace(train_cfg, max_steps=per_epoch + 1))  # a step cap besides it
    assert explicit.capped and explicit.steps == per_epoch + 1 and explicit.epochs == 2
    free = fit(cfg, small_split.sealed(), replace(train_cfg, epochs=2))
    assert not free.capped and free.epochs == 2 and free.steps == 2 * per_epoch


def test_a_step_costs_what_its_catalogue_and_loss_cost(small_split):
    """Work per step grows with the items each target is scored against, not with the steps: a
    larger catalogue under the full softmax gets fewer steps from the same budget; the sampled
    softmax's step costs its negatives, whatever the catalogue."""
    from dataclasses import replace as with_

    from toolkit.training.loop import fit_budget

    def step(num_items: int, **train) -> float:
        split = with_(small_split, num_items=num_items)
        return fit_budget(ModelConfig(num_items=num_items, dim=32, max_history=50), split,
                          TrainConfig(**train)).step_work

    small, large = step(1_682), step(6_000)
    assert 2.5 < large / small < 3.6  # the logits dominate: ~(6,000 / 1,682) x, less the blocks' share
    assert fit_budget(ModelConfig(num_items=6_000, dim=32, max_history=50), with_(small_split, num_items=6_000),
                      TrainConfig()).steps < fit_budget(ModelConfig(num_items=1_682, dim=32, max_history=50),
                                                        small_split, TrainConfig()).steps
    sampled_20k, sampled_50k = step(20_000, loss="sampled"), step(50_000, loss="sampled")
    assert sampled_50k / sampled_20k < 1.3  # only validation and the optimizer see the whole catalogue
    assert step(20_000, loss="sampled") < step(20_000, loss="full") / 5


def test_movielens_trains_well_under_every_from_scratch_budget(movielens):
    """MovieLens-100K's default build must not change: its loops stop early long before their
    budget. Seed 0's first teacher member stops at epoch 24 (456 steps); the most seen there is
    ~900 steps (47 epochs). A dim-32 member's step is what the budgets are counted in."""
    from toolkit.data import split_leave_one_out
    from toolkit.training.loop import MEMBER_BUDGET, MOVIELENS_MEMBER_STEP, fit_budget

    split = split_leave_one_out(movielens)
    member = fit_budget(ModelConfig(num_items=split.num_items, dim=32, max_history=50), split, TrainConfig())
    assert member.step_work == pytest.approx(MOVIELENS_MEMBER_STEP, rel=0.02)
    assert member.steps >= 1_100 and MEMBER_BUDGET == TrainConfig().budget
    for dim in (8, 16, 64):  # the priors' proxies (dim 32 is a teacher member), full data on MovieLens
        proxy = fit_budget(ModelConfig(num_items=split.num_items, dim=dim, max_history=50, dropout=0.2), split,
                           TrainConfig())
        assert proxy.steps >= 45 * 19, (dim, proxy.steps)  # >= 45 epochs of 19 steps
