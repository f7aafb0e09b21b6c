"""The planned student: each of the plan's trials distilled from the teacher, compressed, and exported
on the graph that ships, until the plan has its choice (toolkit/planning/search.py decides; this module
trains and measures).

A trial: distil a float student of the candidate's width and blocks with a full item table (labels
only when there is no teacher); compress it as the candidate says (`toolkit.compression`: a factorized
table from the trained table's SVD, fine-tuned, then quantization; trained from scratch, a factorized
table learns far worse: valid NDCG@10 0.035 vs 0.092 for dim 16 in 4 epochs); size its serving
(candidates, and a two-stage index for the largest catalogues); export the file it ships in every
format; measure the files and the validation NDCG@10.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from toolkit.recipe.manifest import ServingRecord
from toolkit.core.units import format_bytes
from toolkit.planning.candidates import Candidate
from toolkit.planning.estimate import describe
from toolkit.planning.search import QUALITY_MARGIN, Plan, Trial
from toolkit.recipe.artifacts import Shipping, export_job, plan_job
from toolkit.recipe.config import StudentConfig
from toolkit.recipe.records import Data, Shipped
from toolkit.recipe.serving import choose_two_stage, cluster_index_, serving_record
from toolkit.training.trained import TrainedModel, evaluated


@dataclass
class TrialResult:
    """One trained trial: its models, what its serving needs, and the files it ships (in `folder`)."""

    trial: Trial
    float_model: object  # the distilled float student (full item table)
    model: object  # the compressed student (the float student itself when the candidate is not compressed)
    steps: list  # toolkit.compression.StepReport of its compression
    serving: ServingRecord
    shipping: Shipping
    data: Data  # relabelled for a two-stage candidate (items in cluster order)
    folder: Path
    files: list  # ExportJob of each shipped file in `folder`
    measured_bytes: dict[str, int]  # format -> bytes of the shipped file
    valid_ndcg10: float  # the compressed student's
    float_valid_ndcg10: float
    seconds: float
    epochs: int  # the float student's training epochs


@dataclass
class PlannedStudent:
    """The plan with its trials measured, and the chosen one."""

    plan: Plan
    chosen: TrialResult
    teacher_valid_ndcg10: float | None

    def plan_dict(self) -> dict:
        return self.plan.to_dict(self.chosen.trial, self.chosen.steps, self.teacher_valid_ndcg10)


def distill_candidate(c: Candidate, teacher, split, max_history: int, student: StudentConfig, seed: int,
                      world=None):
    """A float student of `c`'s width and blocks, full item table, distilled from `teacher` (a model or
    its `SoftLabels`; None: labels only). Returns toolkit.training.loop.TrainResult."""
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.distill import distill
    from toolkit.training.loop import fit

    model_cfg = ModelConfig(num_items=split.num_items, dim=c.dim, layers=c.layers, heads=c.heads,
                            max_history=max_history, dropout=student.dropout)
    train_cfg = replace(student.train, seed=seed)
    if teacher is None:
        return fit(model_cfg, split, train_cfg, desc=f"plan {c.name()}", world=world)
    return distill(teacher, model_cfg, split, train_cfg, student.distill, desc=f"plan {c.name()}", world=world)


def compress_candidate(c: Candidate, model, teacher, split, student: StudentConfig, seed: int, log=None):
    """`model` compressed as `c` says (a copy; `model` itself when `c` is not compressed): (model, steps)."""
    from toolkit.compression import CompressConfig, LowRankConfig, PQConfig, QuantConfig, compress

    if not c.compressed:
        return model, []
    steps = CompressConfig(
        low_rank=LowRankConfig(table_rank=c.embedding_rank) if c.embedding_rank else None,
        pq=PQConfig(c.pq_subspaces) if c.pq_subspaces else None,
        quant=(QuantConfig(table_bits=c.table_bits, linear_bits=c.linear_bits)
               if c.table_bits < 32 or c.linear_bits < 32 else None))
    steps.finetune_epochs = min(steps.finetune_epochs, student.train.epochs)  # --epochs caps every training loop
    compressed = compress(model, teacher, split, steps, seed=seed, distill_cfg=student.distill, log=log)
    return compressed.model, compressed.steps


def teacher_labels(teacher, data: Data, max_history: int, student: StudentConfig, seed: int):
    """The teacher's outputs on the training windows, once for every trial and fine-tune, and its
    validation NDCG@10: (SoftLabels or None, NDCG or None)."""
    from toolkit.training.distill import SoftLabels, soft_labels
    from toolkit.training.evaluate import evaluate_model

    if teacher is None or isinstance(teacher, SoftLabels):
        return teacher, None
    ndcg = evaluate_model(teacher, data.sealed, "valid").ndcg
    return soft_labels(teacher, data.sealed, max_history, replace(student.train, seed=seed), student.distill), ndcg


def run_trial(trial: Trial, formats: tuple[str, ...], labels, data: Data, profile, student: StudentConfig, seed: int,
              k: int, folder: Path, log) -> TrialResult:
    """Train, compress, size the serving of and export one trial (see the module docstring)."""
    from toolkit.training.evaluate import evaluate_model

    c, max_history = trial.candidate, profile.serving.max_history
    sealed = data.sealed
    start = time.perf_counter()
    result = distill_candidate(c, labels, sealed, max_history, student, seed)
    model, steps = compress_candidate(c, result.model, labels, sealed, student, seed, log)
    valid = evaluate_model(model, sealed, "valid").ndcg
    index = None
    if c.two_stage:  # items relabelled so every cluster is a contiguous range
        index, data = cluster_index_(model, result.model, data, log)
    serving = serving_record(result.model, data.sealed, profile, k)
    if index is not None:
        serving.two_stage = choose_two_stage(model, index, data.sealed, serving.candidates, log)
    shipping = Shipping(serving.candidates, data.split.allow_repeats,
                        (index, serving.two_stage["probe"]) if index is not None else None)
    folder.mkdir(parents=True, exist_ok=True)
    files = [plan_job(c, fmt) for fmt in formats]
    for job in files:
        export_job(job, model if job.source == "compressed" else result.model, shipping, folder / job.name, max_history)
    return TrialResult(trial=trial, float_model=result.model, model=model, steps=steps, serving=serving,
                       shipping=shipping, data=data, folder=folder, files=files,
                       measured_bytes={job.format: (folder / job.name).stat().st_size for job in files},
                       valid_ndcg10=valid, float_valid_ndcg10=result.valid.ndcg, seconds=time.perf_counter() - start,
                       epochs=result.epochs)


def planned_student(plan: Plan, teacher, data: Data, profile, student: StudentConfig, seed: int, k: int,
                    folder: Path, log=print) -> PlannedStudent:
    """Train the plan's trials until it has its choice; the chosen trial's files stay in its folder
    under `folder`, the others are removed.

    Raises:
        DoesNotFitError: no tried student fits (by measured file size).
    """
    labels, teacher_ndcg = teacher_labels(teacher, data, profile.serving.max_history, student, seed)
    results = {}
    while (trial := plan.next_trial()) is not None:
        c = trial.candidate
        result = run_trial(trial, plan.formats, labels, data, profile, student, seed, k,
                           folder / f"trial-{len(plan.tried)}", log)
        rec = plan.record(trial, result.measured_bytes, result.valid_ndcg10, result.float_valid_ndcg10, result.seconds)
        results[id(trial)] = result
        sizes = ", ".join(f"{f} {format_bytes(b)}" for f, b in rec.measured_bytes.items())
        log(f"plan: {c.name()}: valid NDCG@10 {rec.valid_ndcg10:.4f} (float {result.float_valid_ndcg10:.4f}); {sizes}; "
            f"{'fits' if rec.fits_measured else 'misses ' + describe(rec.misses)}"
            + ("" if rec.keeps_quality else f"; compression lost more than {QUALITY_MARGIN:.0%} of the float "
               "student's quality (the profiler would fail it): stepping down"))
    chosen = results[id(plan.choose())]
    for result in results.values():
        if result is not chosen:
            shutil.rmtree(result.folder, ignore_errors=True)
    return PlannedStudent(plan=plan, chosen=chosen, teacher_valid_ndcg10=teacher_ndcg)


def ship_planned(plan: Plan, teacher, data: Data, profile, cfg, k: int, staging: Path, log, step) -> Shipped:
    """The planned path of a build: the trials (`planned_student`), then the chosen trial's files with
    the float student's other exports, every one checked in its runtime (toolkit/recipe/shipping.py).
    `step(name)`: the recipe's timed stage."""
    from toolkit.recipe.shipping import ship_trial

    with step("student"):  # each trial distilled, compressed and exported as it ships
        student = planned_student(plan, teacher.model, data, profile, cfg.student, cfg.seed, k, staging / ".trials",
                                  log)
        chosen = student.chosen
        float_student = student_record(chosen, chosen.data.split, k, log)
        log_serving(chosen.serving, log)
    artifacts = ship_trial(chosen, profile, staging, log, float_student.metrics["test"], move=True, step=step)
    shutil.rmtree(staging / ".trials")
    return Shipped(student=float_student, artifacts=artifacts, serving=chosen.serving, plan=student.plan_dict(),
                   item_ids=chosen.data.item_ids)


def student_record(chosen: TrialResult, split, k: int, log=print) -> TrainedModel:
    """The chosen trial's float student (before compression), with its measured quality."""
    from toolkit.models.sasrec import count_parameters

    model = chosen.float_model
    trained = TrainedModel(model=model, config=model.cfg.to_dict(), parameters=count_parameters(model), metrics={},
                           seconds=chosen.seconds, epochs=chosen.epochs)
    return evaluated(trained, split, k, log, f"student ({chosen.trial.candidate.name()}), float")


def log_serving(serving, log) -> None:
    if serving.repeats == "allow":
        log(f"serving: the artifacts return {serving.candidates} candidates ({serving.how})")
    else:
        log(f"serving: the artifacts return {serving.candidates} candidates so that {serving.top_k} are left "
            f"after the app drops what the user has seen ({serving.how})")
