"""Your own student (`python -m toolkit build --student MODULE:FACTORY`): any causal torch module
instead of the planner's SASRec, taken through the rest of the line like the toolkit's own.

The module follows the contract of toolkit/models/user_module.py (`FACTORY(items, max_history)`,
`forward([B, L] int64) -> [B, L, N]` scores, item 0 padding) and is probed on real training
histories before anything is trained (shape, causality, finite values: one-line errors, exit 2).
Then, in `own_student`:

1. distilled from the build's teacher (`toolkit.training.distill.distill` with `init=` the module:
   the loops take the generic path through `module(history)`, toolkit.models.user_model);
2. compressed with every technique that applies to its layers: the plan (`OwnStudentPlan`) lists
   each technique with whether it was applied and why (the item-table techniques need the
   toolkit's ItemTable, which a user's module does not have; low-rank of its nn.Linear layers is
   tried and kept when validation NDCG@10 stays within the plan's quality tolerance; export-time
   int8 applies to any Linear/MatMul where the profile's hardware has int8 kernels);
3. exported in every format the profile serves through the serving wrapper's generic path
   (export/serving.py: scores = module(history)[:, -1, :], padding and seen items masked), checked
   (parity, metrics through the runtime) by toolkit/recipe/artifacts.py; the build then profiles
   them against the profile (`profile_artifacts_`) with the same verdicts as any build.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.recipe.manifest import ArtifactRecord, ServingRecord
from toolkit.core.profiles import DeviceProfile
from toolkit.data import Split
from toolkit.recipe.artifacts import (QUANTIZATION, SUFFIX, Shipping, calibration_histories, check_artifacts,
                                      export_job, write_references)
from toolkit.recipe.config import BuildConfig
from toolkit.recipe.records import ExportJob, Shipped
from toolkit.recipe.serving import serving_record
from toolkit.training.trained import TrainedModel, evaluated
from toolkit.training.evaluate import cutoff_for
from toolkit.training.loop import TrainConfig

LOW_RANK_ENERGY = 0.9  # the share of each linear's Σσ² its factorization keeps (toolkit.compression.lowrank)
ITEM_TABLE = "needs the toolkit's ItemTable (model.items); a user's module has none"


@dataclass
class Technique:
    """One compression technique and whether it was applied to this student."""

    technique: str
    applied: bool
    why: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OwnStudentPlan:
    """What the build did with a user's own student: the plan-like record of the manifest's `plan`."""

    module: str  # MODULE:FACTORY as given
    file_sha256: str  # of the file that defines the factory
    parameters: int
    techniques: list[Technique]
    formats: tuple[str, ...]
    quality_tolerance: float  # relative; the low-rank keep rule and the recommended artifact's
    valid_ndcg10: float  # the distilled float student's
    low_rank: list[dict] = field(default_factory=list)  # the factorized linears (FactorizedLinear.to_dict())
    low_rank_valid_ndcg10: float | None = None
    unfit_formats: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": "own_student", "module": self.module, "file_sha256": self.file_sha256,
                "parameters": self.parameters, "techniques": [t.to_dict() for t in self.techniques],
                "formats": list(self.formats), "quality_tolerance": self.quality_tolerance,
                "valid_ndcg10": self.valid_ndcg10, "low_rank": self.low_rank,
                "low_rank_valid_ndcg10": self.low_rank_valid_ndcg10, "unfit_formats": self.unfit_formats}


def load_own_student(cfg: BuildConfig, sealed: Split, profile: DeviceProfile, item_ids: list[str]):
    """`cfg.student.module` built by its factory (seeded: the same seed, the same initial weights) and
    probed on real training histories: called before the teacher is trained, so a module off the
    contract is a one-line error (exit 2) at once. Returns a toolkit.models.user_module.LoadedModule."""
    import torch

    from toolkit.models.user_module import load_user_module, probe_histories

    torch.manual_seed(cfg.seed)
    return load_user_module(cfg.student.module, item_ids, probe_histories(sealed.train), profile.serving.max_history,
                            "--student")


def own_student(cfg: BuildConfig, sealed: Split, split: Split, teacher: TrainedModel, profile: DeviceProfile,
                staging: Path, log, loaded, item_ids: list[str]) -> Shipped:
    """Distil the loaded student (`load_own_student`) from `teacher`, compress, export into `staging`
    and check every artifact. `sealed` (test targets sealed) is what training and every choice read;
    `split` gives the test figures after them."""
    from toolkit.models.sasrec import count_parameters
    from toolkit.models.user_model import UserModel
    from toolkit.training.distill import distill

    spec, max_history, k = cfg.student.module, profile.serving.max_history, cutoff_for(profile.serving.top_k)
    model = UserModel(loaded.module, max_history, sealed.num_items)
    log(f"student: {spec} (your own module, {count_parameters(model):,} parameters), distilled from the teacher")
    train_cfg = TrainConfig(**{**cfg.student.train.to_dict(), "seed": cfg.seed})
    result = distill(teacher.model, model.cfg, sealed, train_cfg, cfg.student.distill, init=model,
                     desc="student (own)")
    trained = TrainedModel(model=result.model, config={"module": spec, **result.model.cfg.to_dict()},
                           parameters=count_parameters(result.model), metrics={}, seconds=result.seconds,
                           epochs=result.epochs, extra={"module": spec, "file_sha256": loaded.file_sha256})
    student = evaluated(trained, split, k, log, f"student ({spec}), float")
    valid = student.metrics["valid"].ndcg
    tolerance = cfg.plan.quality_tolerance
    low, factorized, low_valid = low_rank_student(result.model, teacher.model, sealed, cfg, log)
    kept = low is not None and low_valid >= valid * (1 - tolerance)
    techniques = not_applicable() + [low_rank_technique(factorized, valid, low_valid, tolerance, kept)]
    int8 = export_int8(result.model, profile)
    techniques += int8
    quantize = all(t.applied for t in int8)
    models = {"float": result.model, **({"compressed": low} if kept else {})}
    jobs = own_jobs(profile.serving.formats, quantize, kept)
    serving = serving_record(result.model, sealed, profile, k)
    shipping = Shipping(serving.candidates, split.allow_repeats)
    calibration = calibration_histories(split, max_history)
    for job in jobs:
        export_job(job, models[job.source], shipping, staging / job.name, max_history, calibration)
    write_references(staging, models, shipping, split, max_history)
    artifacts = check_artifacts(staging, jobs, models, shipping, split, profile.hardware.threads, k,
                                student.metrics["test"], {}, log)
    plan = OwnStudentPlan(module=spec, file_sha256=loaded.file_sha256, parameters=student.parameters,
                          techniques=techniques, formats=tuple(profile.serving.formats), quality_tolerance=tolerance,
                          valid_ndcg10=valid, low_rank=[f.to_dict() for f in factorized] if kept else [],
                          low_rank_valid_ndcg10=low_valid)
    for t in techniques:
        log(f"  {'applied' if t.applied else 'not applied'}: {t.technique} ({t.why})")
    return Shipped(student=student, artifacts=artifacts, serving=serving, plan=plan.to_dict(), item_ids=list(item_ids))


def not_applicable() -> list[Technique]:
    """The toolkit's SASRec-specific techniques, none of which a user's module can take."""
    return [Technique("item-table int8/int4 weight-only (toolkit.compression.quantize)", False, ITEM_TABLE),
            Technique("item-table product quantization (toolkit.compression.pq)", False, ITEM_TABLE),
            Technique("item-table SVD factorization (toolkit.compression.lowrank.factorize_table_)", False, ITEM_TABLE),
            Technique("two-stage serving (export.two_stage)", False, ITEM_TABLE + " to cluster"),
            Technique("attention-head / FFN pruning (toolkit.compression.prune)", False,
                      "prunes SASRec's attention and feed-forward blocks; the module has none the toolkit knows"),
            Technique("quantization-aware training (toolkit.compression.quantize.prepare_qat_)", False,
                      "wraps SASRec's block linears and item table; export-time int8 covers the module's linears")]


def low_rank_student(model, teacher, sealed: Split, cfg: BuildConfig, log):
    """A copy of the student with every nn.Linear factorized where it saves parameters, distilled
    again (the compression fine-tune); (model or None, the factorized layers, its valid NDCG@10)."""
    from toolkit.compression import CompressConfig, finetune_
    from toolkit.compression.lowrank import factorize_linears_
    from toolkit.models.user_module import check_module, probe_histories
    from toolkit.training.evaluate import evaluate_model

    low = copy.deepcopy(model)
    factorized = factorize_linears_(low.module, LOW_RANK_ENERGY)
    if not factorized:
        return None, [], None
    check_module(low.module.eval(), probe_histories(sealed.train), sealed.num_items, low.cfg.max_history,
                 f"--student {cfg.student.module!r} (low-rank)")
    c = CompressConfig()
    start = time.perf_counter()
    low = finetune_(low, teacher, sealed, min(c.finetune_epochs, cfg.student.train.epochs), c.finetune_patience,
                    cfg.seed, cfg.student.distill, c.finetune_budget)
    ndcg = evaluate_model(low, sealed, "valid").ndcg
    log(f"student, low-rank linears ({', '.join(f'{f.name} rank {f.rank}' for f in factorized)}): valid NDCG@10 "
        f"{ndcg:.4f} after a {time.perf_counter() - start:.0f} s fine-tune")
    return low, factorized, ndcg


def low_rank_technique(factorized: list, valid: float, low_valid: float | None, tolerance: float,
                       kept: bool) -> Technique:
    name = f"low-rank nn.Linear layers (toolkit.compression.lowrank.factorize_linear, {LOW_RANK_ENERGY:.0%} energy)"
    if not factorized:
        return Technique(name, False, "no nn.Linear layer of the module saves parameters at that rank")
    layers = ", ".join(f"{f.name} {f.out_features}x{f.in_features} -> rank {f.rank}" for f in factorized)
    if kept:
        return Technique(name, True, f"{layers}; valid NDCG@10 {low_valid:.4f} vs float {valid:.4f}, within "
                                     f"{tolerance:.0%}: exported as the compressed model")
    return Technique(name, False, f"tried ({layers}): valid NDCG@10 {low_valid:.4f} vs float {valid:.4f}, more "
                                  f"than {tolerance:.0%} below: not kept")


def export_int8(model, profile: DeviceProfile) -> list[Technique]:
    """Export-time int8 of the module's linears (and, in the .pte, its untied embeddings weight-only)."""
    from torch import nn

    linears = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    out = []
    for fmt in profile.serving.formats:
        name = {"executorch": "export-time int8 .pte (PT2E XNNPACKQuantizer per-channel linears, torchao "
                              "weight-only embeddings)",
                "onnx": "export-time int8 .onnx (ONNX Runtime quantize_dynamic: MatMul, Gemm, Gather)"}[fmt]
        if not profile.hardware.int8:
            out.append(Technique(name, False, f"profile {profile.name} has no fast int8 kernels (hardware.int8 false)"))
        elif not linears:
            out.append(Technique(name, False, "the module has no nn.Linear layer to quantize"))
        else:
            out.append(Technique(name, True, f"{linears} nn.Linear layer(s)"))
    return out


def own_jobs(formats, int8: bool, low_rank: bool) -> list[ExportJob]:
    """fp32 of the float student per format, its int8 where int8 applies, and the low-rank student
    (int8 where int8 applies, else fp32) when it was kept."""
    jobs = []
    for fmt in formats:
        jobs.append(ExportJob(f"model.fp32{SUFFIX[fmt]}", fmt, "fp32", "none", "float", QUANTIZATION[(fmt, "none")]))
        if int8:
            jobs.append(ExportJob(f"model.int8{SUFFIX[fmt]}", fmt, "int8", "int8", "float", QUANTIZATION[(fmt, "int8")]))
        if low_rank:
            method = "int8" if int8 else "none"
            jobs.append(ExportJob(f"model.lowrank.{'int8' if int8 else 'fp32'}{SUFFIX[fmt]}", fmt,
                                  "int8" if int8 else "fp32", method, "compressed",
                                  "low-rank linears (SVD, fine-tuned); " + QUANTIZATION[(fmt, method)]))
    return jobs
