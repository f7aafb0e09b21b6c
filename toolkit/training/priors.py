"""Quality priors: how good a student of each width can be, measured on the user's own validation data.

The plan (toolkit/planning/search.py) orders its trials by an expected quality per candidate. That
expectation comes from the build's data, never from constants or test figures: proxy students of
a few widths are trained from scratch with the build's recipe on the (sealed) training split and
scored on validation; their post-training quantization (table int8/int4, int8 linears) and a
half-rank factorized table, applied without fine-tuning, give the relative loss of each
compression. A candidate's prior is the width curve (log-linear between measured widths) times
those retention factors; fine-tuning in the real plan only does better, so compressed candidates
are, if anything, underrated.

The teacher's members are proxies already when their architecture matches one (they are trained
from scratch with the same recipe); they are reused. The priors are cached like the teacher, keyed
on the data, the settings and the code; a large dataset trains its proxies on a sample of users, and
each proxy stops at its compute budget (`PriorConfig.train.budget`, toolkit/training/loop.py), so their cost
stays bounded: `steps` and `capped` say what each took.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from toolkit.core.cache import cache_path, code_version, write_json_atomic
from toolkit.data import Split
from toolkit.training.loop import TrainConfig

CACHE_FORMAT = 1
_CODE = ("models", "training/loop.py", "training/losses.py", "training/priors.py", "training/evaluate.py",
         "compression/quantize.py", "compression/lowrank.py", "compression/pq.py")


@dataclass
class PriorConfig:
    dims: tuple[int, ...] = (8, 16, 32, 64)  # proxy widths: the plan's widths are interpolated between them
    dropout: float = 0.2
    max_windows: int = 5_000  # proxies train on a sample of users with at most this many training windows
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QualityPriors:
    """Validation NDCG@10 by width, and the share of it each compression keeps (measured, no fine-tune)."""

    by_dim: dict[int, float]
    table_keep: dict[int, float]  # table bits -> NDCG kept by a quantized table (1.0 for 32)
    linear_keep: float  # NDCG kept by int8 linears
    rank_keep: float  # NDCG kept by a table factorized at half its width
    users: int  # users the proxies trained on
    pq_keep: float = 1.0  # NDCG kept by a product-quantized table (large catalogues only; else not measured)
    two_stage_keep: float = 1.0  # two-stage serving: its recall@10 target (the build measures the real one)
    seconds: float = 0.0
    cached: bool = False
    reused: list[int] = field(default_factory=list)  # widths taken from the teacher's members
    steps: dict[int, int] = field(default_factory=dict)  # width -> optimizer steps its proxy took (trained here)
    capped: list[int] = field(default_factory=list)  # widths whose proxy its budget stopped (not early stopping)

    def predict(self, dim: int, table_bits: int = 32, linear_bits: int = 32, factorized: bool = False,
                pq: bool = False, two_stage: bool = False) -> float:
        xs = sorted(self.by_dim)
        w = min(max(dim, xs[0]), xs[-1])
        lo, hi = max(x for x in xs if x <= w), min(x for x in xs if x >= w)
        q = self.by_dim[lo] if lo == hi else self.by_dim[lo] + (self.by_dim[hi] - self.by_dim[lo]) * (
            math.log(w / lo) / math.log(hi / lo))
        q *= self.table_keep.get(table_bits, 1.0) * (self.linear_keep if linear_bits < 32 else 1.0)
        q *= (self.pq_keep if pq else 1.0) * (self.two_stage_keep if two_stage else 1.0)
        return q * (self.rank_keep if factorized else 1.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> QualityPriors:
        return cls(by_dim={int(k): v for k, v in d["by_dim"].items()},
                   table_keep={int(k): v for k, v in d["table_keep"].items()}, linear_keep=d["linear_keep"],
                   rank_keep=d["rank_keep"], users=d["users"], seconds=d["seconds"], reused=d.get("reused", []),
                   pq_keep=d.get("pq_keep", 1.0), two_stage_keep=d.get("two_stage_keep", 1.0),
                   steps={int(k): v for k, v in d.get("steps", {}).items()}, capped=d.get("capped", []))


def measure_priors(split: Split, max_history: int, cfg: PriorConfig, seed: int, data_key: dict,
                   reuse: dict | None = None, log=print, plan=None) -> QualityPriors:
    """Train (or load) the proxies and measure the priors; `reuse`: width -> a trained model of the
    proxy architecture (the teacher's members); `plan` (a PlanConfig): which catalogue sizes get PQ
    tables and two-stage serving, so their retention is measured only where they are candidates."""
    from toolkit.planning.candidates import PlanConfig

    plan = plan or PlanConfig()
    key = {"format": CACHE_FORMAT, "code": code_version(*_CODE), "data": data_key, "max_history": max_history,
           "config": cfg.to_dict(), "seed": seed, "pq": split.num_items >= plan.pq_min_items,
           "two_stage": split.num_items >= plan.two_stage_min_items}
    key = json.loads(json.dumps(key))  # as it reads back from the file (tuples become lists)
    path = cache_path("priors", key, ".json")
    try:
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            priors = QualityPriors.from_dict(saved["priors"])
            priors.cached = True
            return priors
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or an unreadable one: measure again
    start = time.perf_counter()
    priors = _measure(split, max_history, cfg, seed, reuse or {}, log, plan)
    priors.seconds = time.perf_counter() - start
    write_json_atomic(path, {"key": key, "priors": priors.to_dict()})
    return priors


def _measure(split: Split, max_history: int, cfg: PriorConfig, seed: int, reuse: dict, log, plan) -> QualityPriors:
    import copy

    from toolkit.compression.lowrank import LowRankConfig, low_rank_
    from toolkit.compression.quantize import QuantConfig, quantize_
    from toolkit.training.evaluate import evaluate_model
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import fit

    from toolkit.compression.pq import PQConfig, pq_quantize_
    from toolkit.planning.candidates import PQ_DIMS_PER_CODE

    proxy_split = _sample_users(split, max_history, cfg.max_windows, seed)
    by_dim, table_keep, linear_keep, rank_keep, pq_keep, reused = {}, {8: [], 4: []}, [], [], [], []
    steps, capped = {}, []
    for dim in cfg.dims:
        model_cfg = ModelConfig(num_items=split.num_items, dim=dim, max_history=max_history, dropout=cfg.dropout)
        if dim in reuse and len(proxy_split.train) == len(split.train):
            model, reused = reuse[dim], reused + [dim]
        else:
            result = fit(model_cfg, proxy_split, cfg.train, desc=f"prior dim {dim}")
            model, steps[dim], capped = result.model, result.steps, capped + [dim] * result.capped
        base = evaluate_model(model, proxy_split, "valid").ndcg
        by_dim[dim] = base

        def keep(change) -> float:
            m = copy.deepcopy(model)
            change(m)
            return evaluate_model(m, proxy_split, "valid").ndcg / base if base > 0 else 1.0

        for bits in (8, 4):
            table_keep[bits].append(keep(lambda m, b=bits: quantize_(m, QuantConfig(table_bits=b, linear_bits=32))))
        linear_keep.append(keep(lambda m: quantize_(m, QuantConfig(table_bits=32, linear_bits=8))))
        rank_keep.append(keep(lambda m, d=dim: low_rank_(m, LowRankConfig(table_rank=d // 2))))
        if split.num_items >= plan.pq_min_items and dim % PQ_DIMS_PER_CODE == 0:
            pq_keep.append(keep(lambda m, d=dim: pq_quantize_(m, PQConfig(d // PQ_DIMS_PER_CODE))))
        log(f"  prior: dim {dim}: valid NDCG@10 {base:.4f}" + (" (a teacher member)" if dim in reused else
                                                                f" ({steps[dim]:,} steps{', capped' if dim in capped else ''})"))
    from export.two_stage import RECALL_TARGET

    return QualityPriors(by_dim=by_dim, table_keep={32: 1.0, **{b: float(np.mean(v)) for b, v in table_keep.items()}},
                         linear_keep=float(np.mean(linear_keep)), rank_keep=float(np.mean(rank_keep)),
                         users=len(proxy_split.train), reused=reused, steps=steps, capped=capped,
                         pq_keep=float(np.mean(pq_keep)) if pq_keep else 1.0,
                         two_stage_keep=RECALL_TARGET if split.num_items >= plan.two_stage_min_items else 1.0)


def _sample_users(split: Split, max_history: int, max_windows: int, seed: int) -> Split:
    """The split restricted to a random sample of users whose training windows number <= max_windows."""
    windows = np.array([max(0, math.ceil((len(t) - 1) / max_history)) for t in split.train])
    if windows.sum() <= max_windows:
        return split
    order = np.random.default_rng(seed).permutation(len(split.train))
    return split.subset(np.sort(order[: int(np.searchsorted(np.cumsum(windows[order]), max_windows)) + 1]))
