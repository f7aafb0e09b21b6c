"""Compression suite: pruning, low-rank factorization and weight quantization, and their recipe.

Each technique is a config dataclass and an in-place function on a trained SASRec:

    prune_(model, PruneConfig(keep_heads, keep_ffn, min_item_count), split)   structured, really smaller
    low_rank_(model, LowRankConfig(table_rank, linear_rank, energy))          truncated SVD
    pq_quantize_(model, PQConfig(subspaces, centroids))                       item table as PQ codes, stored once
    quantize_(model, QuantConfig(table_bits, linear_bits, qat))               int8/int4, table stored once

`compress(model, teacher, split, CompressConfig)` runs them in one fixed order, fine-tuning with
distillation after each step that changes the function, and measures every step:

    prune -> distill -> low-rank -> distill -> pq -> distill -> quantize (PTQ; QAT + distill when PTQ
    loses more than `qat_threshold` of validation NDCG@10, or when asked)

Pruning first removes whole units while the model is still float and can re-learn around them;
factorizing the pruned matrices then costs less rank; quantization comes last because rounding
is the step fine-tuning can least undo (that is what QAT is for). Product quantization of the item
table sits with quantization but is fine-tuned: its codes are fixed and its codebooks are trained
parameters that the distillation adapts (RecJPQ); the integer quantization after it then leaves
the table alone (`quant.table_bits` must be 32). The compressed model is a plain torch module:
`ServingModel` and both exporters take it as is, and the files hold its integer weights (no
calibration needed: weights only, activations stay fp32).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
import time
from dataclasses import asdict, dataclass, field, replace

from toolkit.compression.lowrank import LowRankConfig, LowRankLinear, low_rank_
from toolkit.compression.pq import PQConfig, PQItemTable, pq_quantize_, pq_table_bytes
from toolkit.compression.prune import PruneConfig, PrunedItemTable, prune_
from toolkit.compression.quantize import QuantConfig, QuantizedItemTable, QuantizedLinear, prepare_qat_, quantize_
from toolkit.core.errors import ToolkitError
from toolkit.training.loop import MOVIELENS_MEMBER_STEP
from toolkit.core.units import format_bytes

# 500 MovieLens member steps: MovieLens-100K's fine-tunes stop at `finetune_epochs` (15 x 19 = 285 steps)
# first, for every student the plan may choose (the widest, dim 64 with two blocks, costs 1.57x a dim-32
# step: 319 steps); at 50,000 items a fine-tune had cost ~360 s under the old 1,000-step cap, and a plan
# runs one to three of them a candidate
FINETUNE_BUDGET = 500 * MOVIELENS_MEMBER_STEP

__all__ = [
    "CompressConfig", "CompressResult", "LowRankConfig", "LowRankLinear", "PQConfig", "PQItemTable", "PruneConfig",
    "PrunedItemTable", "QuantConfig", "QuantizedItemTable", "QuantizedLinear", "StepReport", "compress",
    "low_rank_", "model_bytes", "pq_quantize_", "pq_table_bytes", "prepare_qat_", "prune_", "quantize_",
]


@dataclass
class CompressConfig:
    """Which techniques to run (None = skip) and how to fine-tune after each.

    finetune_epochs / finetune_patience: the distillation fine-tune after each step.
    finetune_budget: its compute budget, multiply-adds (toolkit/training/loop.py's budgets: turned into
        steps from the fine-tune's own step cost, it stops at that step): a fine-tune starts from
        a trained model, so it needs far fewer steps than training (`FINETUNE_BUDGET`).
    qat_threshold: relative loss of validation NDCG@10 from PTQ above which QAT is run instead.
    """

    prune: PruneConfig | None = None
    low_rank: LowRankConfig | None = None
    pq: PQConfig | None = None
    quant: QuantConfig | None = None
    finetune_epochs: int = 15
    finetune_patience: int = 4
    finetune_budget: float = FINETUNE_BUDGET
    qat_threshold: float = 0.01

    def __post_init__(self) -> None:
        if self.pq is not None and self.quant is not None and self.quant.table_bits < 32:
            raise ToolkitError(f"CompressConfig.quant.table_bits: {self.quant.table_bits} with CompressConfig.pq set; "
                               "both compress the item table, valid: table_bits=32 (PQ codes are the table)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StepReport:
    """The measured effect of one technique: weight bytes and validation NDCG@10, before/after."""

    technique: str
    config: dict
    bytes_before: int
    bytes_after: int
    ndcg_before: float
    ndcg_after: float  # after its fine-tune, if any
    ndcg_untuned: float  # right after the technique, before fine-tuning
    seconds: float
    kept: bool = True  # False: the step was tried and dropped (QAT that did not beat post-training quantization)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompressResult:
    model: object  # the compressed SASRec (a torch module)
    steps: list[StepReport] = field(default_factory=list)


@dataclass(frozen=True)
class Technique:
    """One structural technique of the recipe: the `CompressConfig` field that turns it on and the
    in-place function that applies it (`apply(model, config, split)`), fine-tuned after."""

    name: str  # the StepReport's technique
    field: str  # CompressConfig's field
    apply: Callable


# in the order they run (prune -> low-rank -> product quantization), then weight quantization
TECHNIQUES = (
    Technique("prune", "prune", lambda model, c, split: prune_(model, c, split)),
    Technique("low_rank", "low_rank", lambda model, c, split: low_rank_(model, c)),
    Technique("pq", "pq", lambda model, c, split: pq_quantize_(model, c)),
)


def model_bytes(model) -> int:
    """Bytes of every parameter and buffer, each tensor once (what the weights cost on disk)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def finetune_(model, teacher, split, epochs: int, patience: int, seed: int = 0, distill_cfg=None,
              budget: float = FINETUNE_BUDGET):
    """Distillation fine-tune in place (plain cross-entropy when `teacher` is None); best valid state kept."""
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.training.loop import TrainConfig, fit

    train_cfg = TrainConfig(epochs=epochs, patience=patience, min_steps=0, seed=seed, lr=1e-3, budget=budget)
    if teacher is None:
        return fit(model.cfg, split, train_cfg, init=model, desc="finetune").model
    return distill(teacher, model.cfg, split, train_cfg, distill_cfg or DistillConfig(), init=model,
                   desc="finetune").model


def compress(model, teacher, split, cfg: CompressConfig, seed: int = 0, distill_cfg=None, log=None) -> CompressResult:
    """Run the configured techniques on a copy of `model`, in the fixed order, measuring each.

    Args:
        model: a trained SASRec (left unchanged).
        teacher: the model to distil from while fine-tuning (None: plain cross-entropy).
        split: data; validation NDCG@10 is measured before and after every step.
    """
    from toolkit.training.evaluate import evaluate_model

    model = copy.deepcopy(model)
    steps: list[StepReport] = []
    ndcg = evaluate_model(model, split, "valid").ndcg

    def step(name: str, config, apply, tune: bool) -> None:
        nonlocal model, ndcg
        start, before_bytes, before = time.perf_counter(), model_bytes(model), ndcg
        apply()
        untuned = evaluate_model(model, split, "valid").ndcg
        if tune and cfg.finetune_epochs:
            model = finetune_(model, teacher, split, cfg.finetune_epochs, cfg.finetune_patience, seed, distill_cfg,
                              cfg.finetune_budget)
            ndcg = evaluate_model(model, split, "valid").ndcg
        else:
            ndcg = untuned
        steps.append(StepReport(name, config.to_dict(), before_bytes, model_bytes(model), before, ndcg, untuned,
                                time.perf_counter() - start))
        if log:
            s = steps[-1]
            log(f"  {name}: {format_bytes(s.bytes_before)} -> {format_bytes(s.bytes_after)}, valid NDCG@10 "
                f"{s.ndcg_before:.4f} -> {s.ndcg_untuned:.4f} (untuned) -> {s.ndcg_after:.4f}")

    for technique in TECHNIQUES:  # the fixed order; quantization (with its QAT fallback) last
        config = getattr(cfg, technique.field)
        if config is not None:
            step(technique.name, config, lambda t=technique, c=config: t.apply(model, c, split), tune=True)
    if cfg.quant is not None:
        float_model, float_ndcg = copy.deepcopy(model), ndcg
        step("quantize", cfg.quant, lambda: quantize_(model, cfg.quant), tune=False)
        lost = (float_ndcg - ndcg) / max(float_ndcg, 1e-9)
        if cfg.quant.qat or lost > cfg.qat_threshold:
            ptq_model, ptq_ndcg = model, ndcg
            model, ndcg = float_model, float_ndcg

            def qat() -> None:
                prepare_qat_(model, cfg.quant)

            step("qat", replace(cfg.quant, qat=True), qat, tune=True)
            quantize_(model, cfg.quant)
            ndcg = evaluate_model(model, split, "valid").ndcg
            steps[-1].bytes_after, steps[-1].ndcg_after = model_bytes(model), ndcg
            if ndcg < ptq_ndcg:  # QAT did not help: keep the post-training result
                model, ndcg = ptq_model, ptq_ndcg
                steps[-1].kept = False
    model.eval()
    return CompressResult(model=model, steps=steps)
