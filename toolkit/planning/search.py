"""Planning against a device profile: the student and compression that fit, with the best quality.

`plan_student(teacher, split, profile, seed, log)` is the pipeline's entry point:

1. Enumerate candidates (dim, blocks, heads, item-table rank, table/linear bits); a profile with
   `int8 = false` only gets fp32 candidates.
2. Estimate each analytically for every format the profile serves (`estimate`): file bytes =
   weight bytes (parameters × their storage bytes) + the format's measured program overhead;
   peak memory = the runtime's measured base + weights + planned activations; latency = FLOPs ÷
   the profile's GFLOP/s + the runtime's measured per-request overhead. Keep those that fit every
   budget with `margin` to spare.
3. Try the most promising fitting candidates, ordered by their expected validation quality
   (`toolkit.training.priors`: proxy students measured on this build's own validation data):
   distil the student from the teacher, compress it (`toolkit.compression`: weight quantization,
   QAT when post-training quantization loses more than 1%), export it in every format and measure
   the files. A candidate whose measured file misses the budget is recorded and the plan steps
   down to the next one. The winner is the smallest fitting file whose validation NDCG@10 is
   within `quality_tolerance` of the best tried, relative (2 %: at NDCG@10 0.015 a smaller student
   may give up 0.0003, at 0.10 0.002): the smallest student that keeps the quality. The report
   states the tolerance.
4. Every candidate considered is recorded (config, predicted and measured bytes, predicted
   memory/latency, validation NDCG@10). When nothing fits, `DoesNotFitError` names the closest
   candidate and how far it misses each budget.

The profiler (toolkit/profiler/run.py) then measures memory and latency of the chosen artifacts in the
real runtimes; the estimates here only choose what to train.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from toolkit.core.errors import DoesNotFitError, ToolkitError
from toolkit.core.units import format_bytes

# Measured on this toolkit's exports (MovieLens-100K vocabulary, max_history 50, one block):
# bytes a file holds beyond its weights (graph/program, delegate headers), fp32 and quantized graphs.
FORMAT_OVERHEAD_BYTES = {"executorch": {"fp32": 17_000, "quantized": 31_500},
                         "onnx": {"fp32": 4_000, "quantized": 7_000}}
EXTRA_BLOCK_OVERHEAD_BYTES = {"executorch": 27_000, "onnx": 7_500}  # each block after the first
# fp32 .pte: XNNPACK runs the scores as a fully connected layer on its own packed copy of the
# (float) item table, so the table is in the file twice. A large int8 table is in both files twice,
# as int8: once for the lookup, once as the int8 matmul's weight (export.serving: `int8_scores`).
PACKED_TABLE_COPY = {"executorch": True, "onnx": False}
# What the runtime itself holds resident while serving a tiny model (measured on the host): for
# ONNX Runtime its CPU library's pages and a session (the profiler's Python figure above the bare
# interpreter); for ExecuTorch the native runtime.
RUNTIME_BASE_MEMORY = {"executorch": 7_500_000, "onnx": 33_000_000}
# the profiler's quality check (toolkit/profiler/judge.py): an artifact's NDCG@K may be at most this far below
# its float model's (relative); the plan applies it on validation, so it never ships a student that
# compression broke (a 50,000-item build shipped a table rank 8 that lost 27 % and failed it)
QUALITY_MARGIN = 0.05
# Per-request time that does not scale with FLOPs (op dispatch, top-k, copies), host-measured.
RUNTIME_OVERHEAD_MS = {"executorch": 2.0, "onnx": 0.6}
# Per scored item, host-measured ns (one thread): what an integer or PQ table costs a request beyond its
# matmul FLOPs (unpacking, LUT gathers outside the matmul kernels; ONNX Runtime unpacks an int4 table once
# at load), scaled to a device by REFERENCE_HOST_GFLOPS / the profile's GFLOP/s (`calibrate` on the host
# they were measured on). int4 and PQ: bench/serving_scale.json (10^6 items, dim 32). int8: unpacked on
# every request (below INT8_SCORES_MIN_ITEMS), the 50,000-item build's compressed .pte cost 60 ns an item
# (3.07 ms; ExecuTorch unpacks outside XNNPACK), its .onnx 3 ns (ORT folds the unpacking at load);
# "int8-matmul": from INT8_SCORES_MIN_ITEMS the scores run in each runtime's int8 matmul
# (export.serving `int8_scores`): a 50,000-item dim-32 int8-table model serves in 0.22 ms (.pte) /
# 0.16 ms (.onnx) a request on the host, ~3 ns an item above its FLOPs.
TABLE_ITEM_NS = {"executorch": {"float": 0.0, "int8": 60.0, "int8-matmul": 3.0, "int4": 155.0, "pq": 51.0},
                 "onnx": {"float": 0.0, "int8": 3.0, "int8-matmul": 3.0, "int4": 5.0, "pq": 23.0}}
REFERENCE_HOST_GFLOPS = 120.0
TWO_STAGE_SCORED = 0.07  # share of the catalogue a two-stage request scores at recall@10 0.96 (7.0 % at 10^6, C = 4·sqrt(N))
PQ_DIMS_PER_CODE = 4  # a PQ sub-space spans 4 dimensions: 8 bytes an item at dim 32 (RecJPQ-style)
SCALE_BYTES = 2  # fp16 per-row scales


@dataclass(frozen=True)
class Candidate:
    """One student architecture and its compression."""

    dim: int
    layers: int = 1
    heads: int = 1
    embedding_rank: int = 0  # 0 = full item table
    table_bits: int = 32  # 32 | 8 | 4: the item table, stored once
    linear_bits: int = 32  # 32 | 8: block linears and positions
    pq_subspaces: int = 0  # > 0: the item table as product-quantized codes (this many bytes an item)
    two_stage: bool = False  # serve by scoring cluster centroids, then the best clusters' members

    @property
    def quantized(self) -> bool:
        return self.table_bits < 32 or self.linear_bits < 32 or bool(self.pq_subspaces)

    @property
    def compressed(self) -> bool:
        """The plan's model differs from the float student: factorized table and/or integer weights."""
        return self.quantized or bool(self.embedding_rank) or self.two_stage

    @property
    def precision(self) -> str:
        """How the artifact is labelled, e.g. "fp32", "int8", "int4-table+int8", "pq8-table+int8"."""
        if not self.quantized:
            return "fp32"
        table = f"pq{self.pq_subspaces}" if self.pq_subspaces else "fp32" if self.table_bits == 32 else f"int{self.table_bits}"
        linear = "fp32" if self.linear_bits == 32 else "int8"
        return table if table == linear else f"{table}-table+{linear}"

    def name(self) -> str:
        rank = f" r{self.embedding_rank}" if self.embedding_rank else ""
        serving = ", two-stage" if self.two_stage else ""
        return f"dim {self.dim}, {self.layers} block(s), {self.heads} head(s){rank}, {self.precision}{serving}"

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision}


@dataclass
class Estimate:
    """Analytic predictions for one candidate: per-format file bytes, peak memory, latency."""

    weight_bytes: int
    file_bytes: dict[str, int]
    memory_bytes: dict[str, int]
    latency_ms: dict[str, float]
    flops: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidateRecord:
    candidate: dict
    predicted: dict  # Estimate.to_dict()
    fits_predicted: bool
    misses: dict  # budget -> relative excess (predicted, or measured bytes once measured)
    prior_ndcg10: float = 0.0  # expected valid NDCG@10 (toolkit.training.priors, this build's data): orders the trials
    tried: bool = False
    measured_bytes: dict = field(default_factory=dict)  # format -> bytes of the exported file
    valid_ndcg10: float | None = None  # of the compressed model
    float_valid_ndcg10: float | None = None  # of the distilled float student, before compression
    fits_measured: bool | None = None
    keeps_quality: bool | None = None  # compressed valid NDCG within QUALITY_MARGIN of the float student's
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExportOptions:
    """How to export the planned model: the weights are already quantized inside it, so every
    format is written with the plain path (`export_executorch(..., calibration=None)`,
    `export_onnx(..., int8=False)`); `precision` is the label for the manifest."""

    precision: str
    table_bits: int
    linear_bits: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlanConfig:
    dims: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    layers: tuple[int, ...] = (1, 2)
    ranks: tuple[float, ...] = (0, 0.5)  # item-table rank as a fraction of dim (0 = full table)
    table_bits: tuple[int, ...] = (32, 8, 4)
    linear_bits: tuple[int, ...] = (32, 8)
    # share of the best NDCG@10 a smaller student may give up (relative; prior order, final pick and the
    # recommended artifact): an absolute 0.002 was 12 % at NDCG@10 0.015 and 2 % at 0.10
    quality_tolerance: float = 0.02
    margin: float = 0.02  # predicted figures must fit with this fraction to spare (files are then measured)
    max_trials: int = 1  # candidates trained (each: distil + compress + export); more only to step down
    max_trials_binding: int = 2  # ... when the budget binds: the best fitting prior is below the best overall
    max_candidates: int = 6  # at most this many tried in all when measured files miss (step-down)
    pq_min_items: int = 20_000  # product-quantized tables are candidates from this catalogue size
    two_stage_min_items: int = 100_000  # two-stage serving is a candidate from this size (below, scoring all is cheap)
    dropout: float = 0.2
    epochs: int = 200
    patience: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlanResult:
    model: object  # the compressed student (torch module): ServingModel(model, top_k) and both exporters take it
    float_model: object  # the distilled float student of the same architecture, before compression
    candidate: Candidate
    export: dict[str, ExportOptions]  # format -> options
    candidates: list[CandidateRecord]  # every candidate considered, in the order tried
    steps: list  # toolkit.compression.StepReport of the chosen model's compression
    teacher_valid_ndcg10: float | None = None
    priors: dict = field(default_factory=dict)  # toolkit.training.priors.QualityPriors.to_dict()
    unfit_formats: dict[str, str] = field(default_factory=dict)  # requested formats nothing fits -> why
    quality_tolerance: float = 0.0  # the PlanConfig's (relative) tolerance the choice was made with

    @property
    def formats(self) -> tuple[str, ...]:
        """The formats the plan's student is built in (those that can fit)."""
        return tuple(self.export)

    def to_dict(self) -> dict:
        return {"candidate": self.candidate.to_dict(), "export": {k: v.to_dict() for k, v in self.export.items()},
                "candidates": [c.to_dict() for c in self.candidates], "steps": [s.to_dict() for s in self.steps],
                "teacher_valid_ndcg10": self.teacher_valid_ndcg10, "priors": self.priors,
                "unfit_formats": self.unfit_formats, "quality_tolerance": self.quality_tolerance}


# --- estimates -------------------------------------------------------------------------------

def weight_bytes(c: Candidate, num_items: int, max_history: int) -> int:
    """Bytes of the weights as stored: item table once (+ per-row scales; or PQ codes + codebooks),
    projection, positions, blocks, and a two-stage graph's cluster index."""
    from toolkit.compression.pq import PQConfig, pq_table_bytes

    d, hidden = c.dim, 4 * c.dim
    width = c.embedding_rank or d
    if c.pq_subspaces:
        table = pq_table_bytes(num_items, width, PQConfig(c.pq_subspaces))
    else:
        table = num_items * width * c.table_bits // 8 + (num_items * SCALE_BYTES if c.table_bits < 32 else 0)
    if c.two_stage:
        clusters = two_stage_clusters(num_items)
        table += clusters * d * 4 + 2 * clusters * 8 + two_stage_capacity(num_items) * 8  # centroids, starts, sizes
    project = width * d * 4 if c.embedding_rank else 0
    wbytes = 1 if c.linear_bits == 8 else 4
    scale = SCALE_BYTES if c.linear_bits == 8 else 0
    positions = max_history * d * wbytes + (max_history * scale)
    linear_weights = 4 * d * d + 2 * d * hidden  # q, k, v, out, fc1, fc2
    linear_rows = 4 * d + hidden + d  # output channels (biases, scales)
    block = linear_weights * wbytes + linear_rows * (4 + scale) + 4 * d * 4  # + 2 LayerNorms
    return table + project + positions + c.layers * block + 2 * d * 4  # + final LayerNorm


def two_stage_clusters(num_items: int) -> int:
    """C: export.two_stage's default for the catalogue."""
    from export.two_stage import default_clusters

    return default_clusters(num_items)


def two_stage_capacity(num_items: int) -> int:
    from export.two_stage import DEFAULT_BALANCE

    return math.ceil(DEFAULT_BALANCE * num_items / two_stage_clusters(num_items))


def items_scored(c: Candidate, num_items: int) -> int:
    """Items whose scores a request computes: all of them, or C centroids + the probed clusters'
    members (expected `TWO_STAGE_SCORED` of the catalogue at recall@10 0.95; the build measures it)."""
    if not c.two_stage:
        return num_items
    return two_stage_clusters(num_items) + math.ceil(TWO_STAGE_SCORED * num_items)


def flops(c: Candidate, num_items: int, max_history: int) -> int:
    """Multiply-adds × 2 of one request (last position only in the last block)."""
    t, d, hidden = max_history, c.dim, 4 * c.dim
    full_block = t * (4 * d * d + 2 * d * hidden) + 2 * t * t * d  # every position
    last_block = t * 2 * d * d + (2 * d * d + 2 * d * hidden) + 2 * t * d  # k, v for all; the rest once
    width = c.embedding_rank or d
    scores = items_scored(c, num_items) * width + (width * d if c.embedding_rank else 0)
    return 2 * ((c.layers - 1) * full_block + last_block + scores)


def int8_scores(c: Candidate, num_items: int) -> bool:
    """Whether the candidate's int8 table is scored by the runtime's int8 matmul, on a second int8
    copy of the table in the file (export.serving `int8_scores`: large catalogues)."""
    from toolkit.compression.quantize import INT8_SCORES_MIN_ITEMS

    return c.table_bits == 8 and not (c.pq_subspaces or c.two_stage) and num_items >= INT8_SCORES_MIN_ITEMS


def estimate(c: Candidate, num_items: int, max_history: int, gflops: float, formats: tuple[str, ...]) -> Estimate:
    w = weight_bytes(c, num_items, max_history)
    f = flops(c, num_items, max_history)
    kind = "quantized" if c.quantized else "fp32"
    width = c.embedding_rank or c.dim
    # planned activations: hidden states of every position (a few per block), the scores (N),
    # and a quantized table dequantized for the score matmul (N × width fp32), unless its scores run
    # in the runtime's int8 matmul (on a second int8 copy of the table in the file)
    int8_matmul = int8_scores(c, num_items)
    unpacked = c.quantized and not int8_matmul
    activations = 4 * (8 * max_history * 4 * c.dim * c.layers + 4 * num_items + (num_items * width if unpacked else 0))
    file_bytes, memory, latency = {}, {}, {}
    for fmt in formats:
        file_bytes[fmt] = w + FORMAT_OVERHEAD_BYTES[fmt][kind] + EXTRA_BLOCK_OVERHEAD_BYTES[fmt] * (c.layers - 1)
        if PACKED_TABLE_COPY[fmt] and c.table_bits == 32:
            file_bytes[fmt] += num_items * width * 4
        if int8_matmul:
            file_bytes[fmt] += num_items * (width + 4)  # the int8 matmul's copy, fp32 scales
        memory[fmt] = RUNTIME_BASE_MEMORY[fmt] + file_bytes[fmt] + activations
        # integer and PQ tables are unpacked or looked up item by item outside the matmul kernels
        per_item = TABLE_ITEM_NS[fmt]["pq" if c.pq_subspaces else "int8-matmul" if int8_matmul
                                      else f"int{c.table_bits}" if c.table_bits < 32 else "float"]
        decode = items_scored(c, num_items) * per_item * 1e-6 * REFERENCE_HOST_GFLOPS / gflops
        latency[fmt] = f / (gflops * 1e9) * 1e3 + RUNTIME_OVERHEAD_MS[fmt] + decode
    return Estimate(weight_bytes=w, file_bytes=file_bytes, memory_bytes=memory, latency_ms=latency, flops=f)


def misses(est: Estimate, profile, measured_bytes: dict[str, int] | None = None,
           formats: tuple[str, ...] | None = None) -> dict[str, float]:
    """Relative excess over each budget (worst of `formats`, default all estimated), 0 when it fits."""
    b = profile.budget
    formats = formats or tuple(est.file_bytes)
    size = max((measured_bytes or est.file_bytes)[f] for f in formats)
    return {"model_bytes": max(0.0, size / b.model_bytes - 1),
            "memory_bytes": max(0.0, max(est.memory_bytes[f] for f in formats) / b.memory_bytes - 1),
            "latency_ms": max(0.0, max(est.latency_ms[f] for f in formats) / b.latency_ms - 1)}


def prior_ndcg(c: Candidate, priors) -> float:
    """Expected valid NDCG@10 of a candidate from the build's measured priors (toolkit.training.priors); a
    second block gets no credit (measured: no gain on MovieLens; it is tried when the first misses)."""
    return priors.predict(c.dim, c.table_bits, c.linear_bits, factorized=bool(c.embedding_rank),
                          pq=bool(c.pq_subspaces), two_stage=c.two_stage)


def enumerate_candidates(cfg: PlanConfig, int8: bool, num_items: int = 0) -> list[Candidate]:
    """Every architecture x compression; PQ tables and two-stage serving only for catalogues large
    enough to need them (`cfg.pq_min_items`, `cfg.two_stage_min_items`)."""
    out = []
    for dim in cfg.dims:
        for layers in cfg.layers:
            heads = 2 if dim >= 64 else 1
            for frac in cfg.ranks:
                rank = int(dim * frac)
                if frac and (rank < 4 or rank % 2):
                    continue
                for tb in cfg.table_bits:
                    for lb in cfg.linear_bits:
                        if not int8 and (tb < 32 or lb < 32):
                            continue  # a profile without int8 never gets integer artifacts
                        if tb == 4 and (rank or dim) % 2:
                            continue
                        out.append(Candidate(dim, layers, heads, rank, tb, lb))
                if int8 and not frac and num_items >= cfg.pq_min_items and dim % PQ_DIMS_PER_CODE == 0:
                    for lb in cfg.linear_bits:  # PQ codes: one byte per PQ_DIMS_PER_CODE dimensions
                        out.append(Candidate(dim, layers, heads, 0, 32, lb, pq_subspaces=dim // PQ_DIMS_PER_CODE))
    if num_items >= cfg.two_stage_min_items:
        out += [replace(c, two_stage=True) for c in out if c.quantized]
    return out


# --- the plan --------------------------------------------------------------------------------

def rank_candidates(profile, num_items: int, priors, cfg: PlanConfig | None = None
                    ) -> tuple[list[CandidateRecord], list[tuple[Candidate, Estimate, CandidateRecord]], dict[str, str]]:
    """Estimate every candidate; return all records, the fitting ones in trial order (no training),
    and the requested formats no candidate can fit (format -> why).

    A format fits when some candidate fits every budget in it; the candidates tried must fit every
    format that can fit (a 25 KB profile asking for both formats gets its .onnx, and the .pte, whose
    program alone is ~31 KB, is reported as not fitting instead of nothing being built).

    Raises:
        DoesNotFitError: no candidate fits any format by estimate; names the closest and its misses.
    """
    cfg = cfg or PlanConfig()
    max_history, formats, int8 = profile.serving.max_history, profile.serving.formats, profile.hardware.int8
    candidates = enumerate_candidates(cfg, int8, num_items)
    estimates = [estimate(c, num_items, max_history, profile.hardware.gflops, formats) for c in candidates]
    margin = [_scaled(e, 1 + cfg.margin) for e in estimates]
    fits_in = {f: [not any(misses(m, profile, formats=(f,)).values()) for m in margin] for f in formats}
    possible = tuple(f for f in formats if any(fits_in[f]))
    unfit = {}
    for f in formats:
        if f not in possible:
            c, e = min(zip(candidates, estimates), key=lambda ce: max(misses(ce[1], profile, formats=(f,)).values()))
            unfit[f] = f"no student fits {f}; closest is {c.name()}, which misses {_describe(misses(e, profile, formats=(f,)))} (estimates)"
    records: list[CandidateRecord] = []
    fitting: list[tuple[Candidate, Estimate, CandidateRecord]] = []
    for i, (c, est) in enumerate(zip(candidates, estimates)):
        ok = bool(possible) and all(fits_in[f][i] for f in possible)
        rec = CandidateRecord(candidate=c.to_dict(), predicted=est.to_dict(), fits_predicted=ok,
                              misses=misses(est, profile, formats=possible or formats), prior_ndcg10=prior_ndcg(c, priors))
        records.append(rec)
        if ok:
            fitting.append((c, est, rec))
    if not fitting:
        closest_c, closest = min(zip(candidates, records), key=lambda cr: max(cr[1].misses.values()))
        raise DoesNotFitError(f"profile {profile.name}: no student fits; closest is {closest_c.name()}, "
                              f"which misses {_describe(closest.misses)} (estimates)")
    # the smallest student expected to keep the best quality: candidates whose prior is within
    # `quality_tolerance` (relative) of the best go first, smallest first; the rest follow by prior
    floor = within_tolerance(max(r.prior_ndcg10 for _, _, r in fitting), cfg.quality_tolerance)
    fitting.sort(key=lambda x: (x[2].prior_ndcg10 < floor,
                                weight_bytes(x[0], num_items, max_history) if x[2].prior_ndcg10 >= floor
                                else -x[2].prior_ndcg10))
    return records, fitting, unfit


def train_candidate(c: Candidate, teacher, split, max_history: int, seed: int, cfg: PlanConfig, log=None):
    """Distil a float student of `c`'s width and blocks with a full item table (teacher None: labels
    only), then compress it as `c` says: a factorized table comes from the trained table's SVD,
    fine-tuned (trained from scratch, a factorized table learns far worse: valid NDCG@10 0.035 vs
    0.092 for dim 16 in 4 epochs), then quantization. Returns (compressed model, float model, float
    model's valid NDCG@10, compression steps)."""
    from toolkit.compression import CompressConfig, LowRankConfig, PQConfig, QuantConfig, compress
    from toolkit.training.distill import DistillConfig, distill
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig

    model_cfg = ModelConfig(num_items=split.num_items, dim=c.dim, layers=c.layers, heads=c.heads,
                            max_history=max_history, dropout=cfg.dropout)
    train_cfg = TrainConfig(epochs=cfg.epochs, patience=cfg.patience, seed=seed)
    if teacher is None:
        from toolkit.training.loop import fit

        result = fit(model_cfg, split, train_cfg, desc=f"plan {c.name()}")
    else:
        result = distill(teacher, model_cfg, split, train_cfg, DistillConfig(), desc=f"plan {c.name()}")
    if not c.compressed:
        return result.model, result.model, result.valid.ndcg, []
    steps = CompressConfig(
        low_rank=LowRankConfig(table_rank=c.embedding_rank) if c.embedding_rank else None,
        pq=PQConfig(c.pq_subspaces) if c.pq_subspaces else None,
        quant=(QuantConfig(table_bits=c.table_bits, linear_bits=c.linear_bits)
               if c.table_bits < 32 or c.linear_bits < 32 else None))
    steps.finetune_epochs = min(steps.finetune_epochs, cfg.epochs)  # --epochs caps every training loop
    compressed = compress(result.model, teacher, split, steps, seed=seed, log=log)
    return compressed.model, result.model, result.valid.ndcg, compressed.steps


def measure_files(model, formats: tuple[str, ...], max_history: int, top_k: int) -> dict[str, int]:
    """Export the model in each format into a temporary folder and return the file sizes."""
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export import quiet_exporters
    from export.serving import ServingModel

    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            path = Path(tmp) / ("m.pte" if fmt == "executorch" else "m.onnx")
            with quiet_exporters():
                if fmt == "executorch":
                    export_executorch(ServingModel(model, top_k), path, max_history)
                else:
                    export_onnx(ServingModel(model, top_k), path, max_history)
            sizes[fmt] = path.stat().st_size
    return sizes


def plan_student(teacher, split, profile, priors, seed: int = 0, log=print, cfg: PlanConfig | None = None) -> PlanResult:
    """Choose, train and compress the student for `profile`; see the module docstring.

    Args:
        teacher: the trained teacher (distilled from; None trains from labels only), or its
            `toolkit.training.distill.SoftLabels`.
        split: the leave-one-out split (training + validation used; test is never looked at).
        profile: a `toolkit.core.profiles.DeviceProfile`.
        priors: `toolkit.training.priors.QualityPriors` measured on this build's data (orders the trials).
    Raises:
        DoesNotFitError: no candidate fits (by estimate, or by measured file size after trying).
    """
    from toolkit.training.evaluate import evaluate_model

    cfg = cfg or PlanConfig()
    log = log or (lambda *_: None)
    num_items, max_history = split.num_items, profile.serving.max_history
    records, fitting, unfit = rank_candidates(profile, num_items, priors, cfg)
    formats = tuple(f for f in profile.serving.formats if f not in unfit)
    for f, why in unfit.items():
        log(f"plan: {why}: only {', '.join(formats)} will be built (the build then does not fit, exit 1)")
    # a budget that binds quality is worth a second trained candidate (the priors are coarse there)
    binding = max(r.prior_ndcg10 for _, _, r in fitting) < within_tolerance(max(r.prior_ndcg10 for r in records),
                                                                            cfg.quality_tolerance)
    max_trials = cfg.max_trials_binding if binding else cfg.max_trials
    log(f"plan: {len(fitting)} of {len(records)} candidates fit {profile.name} by estimate; "
        f"trying up to {max_trials}{' (the budget binds)' if binding else ''}")
    from toolkit.training.distill import DistillConfig, SoftLabels, soft_labels
    from toolkit.training.loop import TrainConfig

    teacher_ndcg = None
    if teacher is not None and not isinstance(teacher, SoftLabels):
        teacher_ndcg = evaluate_model(teacher, split, "valid").ndcg
        # the teacher's outputs on the training windows, once for every student and fine-tune
        teacher = soft_labels(teacher, split, max_history, TrainConfig(), DistillConfig())
    fits: list = []
    tried = 0
    for c, est, rec in fitting:
        if tried >= cfg.max_candidates or (any(f[2].keeps_quality for f in fits) and tried >= max_trials):
            break  # (a candidate that fits but lost quality to compression makes the plan step down)
        tried += 1
        start = time.perf_counter()
        model, float_model, float_ndcg, steps = train_candidate(c, teacher, split, max_history, seed, cfg, log)
        rec.tried, rec.float_valid_ndcg10 = True, float_ndcg
        rec.valid_ndcg10 = evaluate_model(model, split, "valid").ndcg
        rec.measured_bytes = measure_files(model, formats, max_history, profile.serving.top_k)
        rec.misses = misses(est, profile, rec.measured_bytes, formats)
        # compression must keep the float student's quality as the profiler will require (validation here)
        rec.keeps_quality = rec.valid_ndcg10 >= float_ndcg * (1 - QUALITY_MARGIN)
        rec.fits_measured = not any(rec.misses.values())
        rec.seconds = time.perf_counter() - start
        records.remove(rec)
        records.insert(tried - 1, rec)  # tried candidates first, in the order tried
        sizes = ", ".join(f"{f} {format_bytes(b)}" for f, b in rec.measured_bytes.items())
        log(f"plan: {c.name()}: valid NDCG@10 {rec.valid_ndcg10:.4f} (float {float_ndcg:.4f}); {sizes}; "
            f"{'fits' if rec.fits_measured else 'misses ' + _describe(rec.misses)}"
            + ("" if rec.keeps_quality else f"; compression lost more than {QUALITY_MARGIN:.0%} of the float "
               "student's quality (the profiler would fail it): stepping down"))
        if rec.fits_measured:
            fits.append((c, (model, float_model), rec, steps))
    best = None
    if fits:
        # those that kept their quality through compression (all that fit when none did: the profiler says it)
        fits = [f for f in fits if f[2].keeps_quality] or fits
        # the smallest file whose validation NDCG@10 is within `quality_tolerance` (relative) of the best tried
        floor = within_tolerance(max(r.valid_ndcg10 for _, _, r, _ in fits), cfg.quality_tolerance)
        best = min((f for f in fits if f[2].valid_ndcg10 >= floor),
                   key=lambda f: max(f[2].measured_bytes.values()))
    if best is None:
        tried_recs = [(c, r) for c, _, r in fitting if r.tried]
        closest_c, closest = min(tried_recs, key=lambda cr: max(cr[1].misses.values()))
        raise DoesNotFitError(f"profile {profile.name}: no tried student fits; closest is {closest_c.name()}, "
                              f"which misses {_describe(closest.misses)} (measured file size)")
    c, (model, float_model), rec, steps = best
    options = ExportOptions(precision=c.precision, table_bits=c.table_bits, linear_bits=c.linear_bits)
    return PlanResult(model=model, float_model=float_model, candidate=c, export={fmt: options for fmt in formats},
                      candidates=records, steps=steps, teacher_valid_ndcg10=teacher_ndcg, priors=priors.to_dict(),
                      unfit_formats=unfit, quality_tolerance=cfg.quality_tolerance)


def within_tolerance(best: float, tolerance: float) -> float:
    """The lowest NDCG@10 that counts as keeping `best`'s quality: `tolerance` is relative."""
    return best * (1 - tolerance)


def _scaled(est: Estimate, k: float) -> Estimate:
    return Estimate(weight_bytes=est.weight_bytes, file_bytes={f: int(b * k) for f, b in est.file_bytes.items()},
                    memory_bytes={f: int(b * k) for f, b in est.memory_bytes.items()},
                    latency_ms={f: v * k for f, v in est.latency_ms.items()}, flops=est.flops)


def _describe(miss: dict[str, float]) -> str:
    parts = [f"{k} by {v:.0%}" for k, v in miss.items() if v > 0]
    return ", ".join(parts) if parts else "nothing"


def candidate_from_dict(d: dict) -> Candidate:
    fields = {k: d[k] for k in ("dim", "layers", "heads", "embedding_rank", "table_bits", "linear_bits",
                                "pq_subspaces", "two_stage") if k in d}
    if "dim" not in fields:
        raise ToolkitError("candidate: missing field 'dim'")
    return Candidate(**fields)
