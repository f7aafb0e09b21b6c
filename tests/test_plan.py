"""Planning against a profile: estimates checked against real exports, candidate choice, the
int8 = false rule, DoesNotFitError, and one real (tiny) plan on a slice of MovieLens."""

from __future__ import annotations

import pytest
import torch

from toolkit.core.errors import DoesNotFitError
from toolkit.planning.candidates import Candidate, PlanConfig, enumerate_candidates
from toolkit.planning.estimate import estimate, weight_bytes
from toolkit.planning.search import plan, rank_candidates
from toolkit.training.priors import QualityPriors
from toolkit.core.profiles import parse_profile

NUM_ITEMS, HISTORY = 1683, 50
# priors as a build measures them (toolkit.training.priors): here written down, so the plan's order is known
PRIORS = QualityPriors(by_dim={8: 0.09, 16: 0.11, 32: 0.12, 64: 0.115}, table_keep={32: 1.0, 8: 0.99, 4: 0.95},
                       linear_keep=0.995, rank_keep=0.9, users=150)


def profile(model_bytes: int, int8: bool = True, formats=("onnx",), latency_ms: float = 8.0, memory: int = 64_000_000):
    raw = {"name": "test", "description": "test profile",
           "budget": {"model_bytes": model_bytes, "memory_bytes": memory, "latency_ms": latency_ms},
           "hardware": {"int8": int8, "threads": 1, "gflops": 10.0},
           "serving": {"max_history": HISTORY, "top_k": 20, "formats": list(formats)}}
    return parse_profile(raw, "test.toml")


@pytest.mark.parametrize("cand", [Candidate(16, table_bits=4, linear_bits=8), Candidate(32, heads=2, embedding_rank=16,
                                                                                      table_bits=8, linear_bits=8),
                                  Candidate(8)])
def test_estimates_match_real_exports(cand, tmp_path):
    from toolkit.compression import QuantConfig, model_bytes, quantize_
    from toolkit.models.sasrec import ModelConfig, SASRec

    torch.manual_seed(0)
    model = SASRec(ModelConfig(num_items=NUM_ITEMS, dim=cand.dim, heads=cand.heads, embedding_rank=cand.embedding_rank,
                               max_history=HISTORY)).eval()
    if cand.quantized:
        quantize_(model, QuantConfig(cand.table_bits, cand.linear_bits))
    assert weight_bytes(cand, NUM_ITEMS, HISTORY) == model_bytes(model)  # exact: what the weights cost
    est = estimate(cand, NUM_ITEMS, HISTORY, 30.0, ("onnx",))
    from toolkit.recipe.artifacts import export_model

    measured = export_model(model, profile(1_000_000), tmp_path)[0].bytes
    assert 0.92 * est.file_bytes["onnx"] <= measured <= 1.02 * est.file_bytes["onnx"]  # estimate errs on the safe side


def test_int8_false_never_gets_integer_candidates():
    assert all(not c.quantized for c in enumerate_candidates(PlanConfig(), int8=False))
    assert any(c.table_bits == 4 for c in enumerate_candidates(PlanConfig(), int8=True))


def test_nothing_fits_names_the_closest_candidate():
    with pytest.raises(DoesNotFitError, match=r"closest is dim 8.*model_bytes by \d+%"):
        plan(profile(5_000), NUM_ITEMS, PRIORS)
    with pytest.raises(DoesNotFitError, match="latency_ms"):
        plan(profile(10_000_000, latency_ms=0.01), NUM_ITEMS, PRIORS)


def test_trials_follow_the_measured_priors():
    """The best expected quality that fits goes first; a smaller candidate only when it is as good."""
    _, fitting, _ = rank_candidates(profile(4_000_000), NUM_ITEMS, PRIORS, PlanConfig(layers=(1,)))
    assert fitting[0][0].dim == 32  # the priors' best width
    worse = QualityPriors(by_dim={8: 0.09, 16: 0.12, 32: 0.12, 64: 0.12}, table_keep={32: 1.0, 8: 1.0, 4: 1.0},
                          linear_keep=1.0, rank_keep=1.0, users=150)
    _, fitting, _ = rank_candidates(profile(4_000_000), NUM_ITEMS, worse, PlanConfig(layers=(1,)))
    assert fitting[0][0].dim == 16 and fitting[0][0].table_bits == 4  # as good and smallest


def test_the_quality_tolerance_is_relative():
    """The same priors at an eighth of the NDCG (0.015, a sparse log) give the same trial order: an
    absolute 0.002 let a dim-16 int4 student (13 % below the best) go first there."""
    low = QualityPriors(by_dim={d: q / 8 for d, q in PRIORS.by_dim.items()}, table_keep=PRIORS.table_keep,
                        linear_keep=PRIORS.linear_keep, rank_keep=PRIORS.rank_keep, users=150)
    cfg = PlanConfig(layers=(1,))
    high, sparse = (rank_candidates(profile(4_000_000), NUM_ITEMS, p, cfg)[1] for p in (PRIORS, low))
    assert high[0][0].dim == 32 and [c for c, _, _ in sparse[:5]] == [c for c, _, _ in high[:5]]
    top = max(r.prior_ndcg10 for _, _, r in sparse)
    assert sparse[0][2].prior_ndcg10 >= top * (1 - cfg.quality_tolerance) and cfg.quality_tolerance == 0.02


def test_plan_picks_a_fitting_candidate_and_records_it(small_split, tmp_path):
    """A real plan (one short training, exported as it ships) for a 40 KB ONNX-only budget."""
    from toolkit.recipe.config import StudentConfig
    from toolkit.recipe.records import Data
    from toolkit.recipe.student import planned_student
    from toolkit.training.loop import TrainConfig

    torch.set_num_threads(1)
    budget = 40_000
    cfg = PlanConfig(dims=(8, 16), layers=(1,), max_trials=1)
    student = StudentConfig(train=TrainConfig(epochs=2, patience=2))
    data = Data(dataset=None, split=small_split, key={}, item_ids=[""] * small_split.num_items)
    the_plan = plan(profile(budget), small_split.num_items, PRIORS, cfg)
    result = planned_student(the_plan, None, data, profile(budget), student, 0, 10, tmp_path, log=lambda *_: None)
    tried = [r for r in the_plan.records if r.tried]
    assert len(tried) >= 1 and tried[0].fits_measured
    shipped = result.chosen.folder / result.chosen.files[0].name
    chosen = result.chosen.trial.record
    assert chosen.tried and chosen.measured_bytes["onnx"] == shipped.stat().st_size <= budget  # measured = shipped
    assert [p.name for p in tmp_path.iterdir()] == [result.chosen.folder.name]  # the other trials' files removed
    assert result.chosen.trial.candidate.compressed
    assert result.plan_dict()["export"]["onnx"]["precision"] == result.chosen.trial.candidate.precision
    assert 0.0 < tried[0].valid_ndcg10 <= 1.0
    assert result.plan_dict()["quality_tolerance"] == cfg.quality_tolerance  # the report states it
    untried = [r for r in the_plan.records if not r.tried]
    assert untried and all("file_bytes" in r.predicted for r in untried)
    # int8 = false: a budget that integer weights make is out of reach for fp32 students
    with pytest.raises(DoesNotFitError):
        plan(profile(25_000, int8=False), small_split.num_items, PRIORS, cfg)


def test_a_format_that_cannot_fit_is_reported_and_the_others_are_planned():
    """25 KB for both formats: a .pte's program alone is ~31 KB, so the .onnx is planned and the
    .pte reported as not fitting (the build then exits 1), instead of nothing being built."""
    records, fitting, unfit = rank_candidates(profile(25_000, formats=("executorch", "onnx")), NUM_ITEMS, PRIORS)
    assert set(unfit) == {"executorch"} and "model_bytes" in unfit["executorch"]
    assert fitting and all(est.file_bytes["onnx"] <= 25_000 for _, est, _ in fitting)
    with pytest.raises(DoesNotFitError):  # nothing fits any format: no build at all
        rank_candidates(profile(2_000, formats=("executorch", "onnx")), NUM_ITEMS, PRIORS)


def test_an_int8_table_has_its_own_decode_cost():
    """The per-item decode cost is per table width: an int8 table scores in the runtimes' int8 matmul
    (a 50,000-item model serves in 0.22 ms in ExecuTorch, 0.16 ms in ONNX Runtime on the host), so it
    fits mobile-arm's 8 ms in both; int4 is unpacked on every request in ExecuTorch and does not. The
    int8 table is in both files twice (lookup + matmul weight), as int8."""
    est = {bits: estimate(Candidate(32, table_bits=bits, linear_bits=8), 50_000, HISTORY, 30.0, ("executorch", "onnx"))
           for bits in (32, 8, 4)}
    for fmt in ("executorch", "onnx"):
        assert est[8].latency_ms[fmt] < 8.0
        assert est[8].latency_ms[fmt] <= est[4].latency_ms[fmt]
        assert est[8].file_bytes[fmt] - est[8].weight_bytes >= 50_000 * 32  # the second int8 copy
    assert est[4].latency_ms["executorch"] > 8.0
    assert est[8].file_bytes["executorch"] < est[32].file_bytes["executorch"]
    # a small catalogue's int8 table is unpacked per request, stored once (MovieLens: 1,683 rows)
    small = estimate(Candidate(32, table_bits=8, linear_bits=8), 1_683, HISTORY, 30.0, ("executorch",))
    assert small.file_bytes["executorch"] - small.weight_bytes < 1_683 * 32


def test_a_student_that_compression_broke_is_not_chosen():
    """The plan applies the profiler's quality rule on validation: a tried candidate whose compressed
    NDCG is more than QUALITY_MARGIN below its float student's makes the plan step down to the next,
    and the one that kept its quality is chosen even when it is larger."""
    cfg = PlanConfig(dims=(8, 16), layers=(1,), table_bits=(32,), linear_bits=(32,), ranks=(0,), max_trials=1)
    the_plan = plan(profile(4_000_000), NUM_ITEMS, PRIORS, cfg)
    first = the_plan.next_trial()
    the_plan.record(first, {"onnx": 30_000}, valid_ndcg10=0.01, float_valid_ndcg10=0.10, seconds=1.0)  # lost 90 %
    assert not first.record.keeps_quality and first.record.fits_measured
    second = the_plan.next_trial()  # stepping down
    assert second is not None and second.candidate != first.candidate
    the_plan.record(second, {"onnx": 60_000}, valid_ndcg10=0.09, float_valid_ndcg10=0.09, seconds=1.0)
    assert the_plan.next_trial() is None  # one that fits and kept its quality, after max_trials
    assert the_plan.choose() is second
    assert [r.tried for r in the_plan.records[:2]] == [True, True]  # tried ones first, in the order tried


def test_a_plan_whose_tried_files_all_miss_names_the_closest():
    the_plan = plan(profile(40_000), NUM_ITEMS, PRIORS, PlanConfig(layers=(1,), max_candidates=1))
    trial = the_plan.next_trial()
    the_plan.record(trial, {"onnx": 80_000}, valid_ndcg10=0.1, float_valid_ndcg10=0.1, seconds=1.0)
    assert the_plan.next_trial() is None  # max_candidates
    with pytest.raises(DoesNotFitError, match=r"no tried student fits; closest is .*model_bytes by 100%"):
        the_plan.choose()


def test_the_float_students_int8_export_counts_its_table_twice_once():
    """The float student's int8 export holds the table twice as int8 (lookup + scores) at any size;
    at 50,000 items the estimate already counts that copy and must not add a third (the dim-32 int8
    exports, 3.4-3.6 MB measured, fit mobile-arm's 4 MB)."""
    from toolkit.core.profiles import load_profile
    from toolkit.planning.estimate import float_precisions

    profile = load_profile("mobile-arm")
    for items in (50_000, 1_683):
        est = estimate(Candidate(32, table_bits=8, linear_bits=8), items, 50, 30.0, ("executorch",))
        assert est.file_bytes["executorch"] - est.weight_bytes < items * 32 * 2  # at most one extra copy
    assert float_precisions(Candidate(32, table_bits=8, linear_bits=8), profile, 50_000, ("executorch", "onnx")) == {
        "executorch": ["int8"], "onnx": ["int8"]}


def test_movielens_students_and_their_finetunes_stay_under_their_budgets(movielens):
    """The plan's students (every width it may choose) train under the from-scratch budget with room
    for 40 epochs on MovieLens-100K (its members stop at 24-26), and a fine-tune's budget allows more
    than its epoch cap (15 epochs), so neither binds there and the default build is unchanged."""
    from toolkit.compression import CompressConfig
    from toolkit.data import split_leave_one_out
    from toolkit.models.sasrec import ModelConfig
    from toolkit.recipe.config import StudentConfig
    from toolkit.training.loop import TrainConfig, fit_budget

    split = split_leave_one_out(movielens)
    plan, tune, how = PlanConfig(), CompressConfig(), StudentConfig()
    per_epoch = 19  # 2,412 windows of 50 in batches of 128
    for dim in plan.dims:
        for layers in plan.layers:
            cfg = ModelConfig(num_items=split.num_items, dim=dim, layers=layers, max_history=50, dropout=how.dropout)
            student = fit_budget(cfg, split, how.train)
            assert student.steps >= 40 * per_epoch, (dim, layers, student.steps)
            finetune = fit_budget(cfg, split, TrainConfig(budget=tune.finetune_budget))
            assert finetune.steps > tune.finetune_epochs * per_epoch, (dim, layers, finetune.steps)


def test_the_priors_proxies_stop_at_their_budget_and_record_it(cache_dir, small_split):
    """Each proxy trains under `PriorConfig.train.budget` (2.5 steps' work of the widest here): every
    width stops at its budget's step, mid-epoch, and the priors say which and after how many steps."""
    from dataclasses import replace

    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.priors import PriorConfig, measure_priors
    from toolkit.training.loop import TrainConfig, fit_budget

    train = TrainConfig(epochs=20, batch_size=16, min_steps=0, patience=20)
    widest = fit_budget(ModelConfig(num_items=small_split.num_items, dim=16, max_history=20, dropout=0.2),
                        small_split, train).step_work
    cfg = PriorConfig(dims=(8, 16), train=replace(train, budget=2.5 * widest))
    priors = measure_priors(small_split.sealed(), 20, cfg, 0, {"sha256": "priors-budget"}, log=lambda *_: None)
    assert priors.capped == [8, 16]
    assert priors.steps[16] == 2 and priors.steps[8] >= 2  # a narrower proxy's step costs less
    assert priors.steps[8] == fit_budget(ModelConfig(num_items=small_split.num_items, dim=8, max_history=20,
                                                     dropout=0.2), small_split, cfg.train).steps
