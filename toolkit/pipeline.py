"""The recipe: load → split → teacher → plan (distil + compress the student the profile can hold)
→ export → check → profile → write, top to bottom.

`build(BuildConfig)` is what `python -m toolkit build` runs. The plan (toolkit/plan.py) chooses
the student's architecture and compression for the profile's budgets and trains it; the build
exports the float student (fp32, and int8 through ExecuTorch's PT2E quantizer / ONNX Runtime's
quantizer) where those fit the model budget, plus the compressed student when the plan chose one.
Every output is written into a temporary directory next to the target and moved into place only
when complete, so a failed or interrupted build never leaves a half-written build directory (and
never loses the previous one before the new one is whole).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import toolkit
from toolkit.data import Dataset, Split, load_dataset, split_leave_one_out
from toolkit.distill import DistillConfig
from toolkit.errors import DoesNotFitError, ToolkitError
from toolkit.evaluate import Metrics, evaluate_model, evaluate_popularity, pad_histories
from toolkit.plan import PlanConfig, PlanResult, estimate, plan_student
from toolkit.profiles import DeviceProfile, load_profile
from toolkit.teacher import TeacherConfig
from toolkit.train import TrainConfig

CALIBRATION_HISTORIES = 128  # real training histories used to calibrate int8 activations
PARITY_HISTORIES = 200  # test histories each artifact is compared on against PyTorch
REFERENCE_FILE = "reference.npz"  # those histories and the PyTorch outputs (history, scores, items)
WEIGHT_ONLY = "toolkit.compress weight-only (integer table stored once, int8 linears)"
# how each artifact's weights were quantized, by (format, method)
QUANTIZATION = {
    ("executorch", "none"): "none", ("onnx", "none"): "none",
    ("executorch", "int8"): "torchao int8 weight-only lookup + PT2E XNNPACKQuantizer static int8 per-channel linears",
    ("onnx", "int8"): "ONNX Runtime quantize_dynamic int8 (MatMul, Gather)",
    ("executorch", "compressed"): WEIGHT_ONLY, ("onnx", "compressed"): WEIGHT_ONLY,
}


@dataclass
class StudentConfig:
    dim: int = 32
    layers: int = 1
    heads: int = 1
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class BuildConfig:
    profile: str = "mobile-arm"
    data: str | None = None  # None = MovieLens-100K
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    out: Path | None = None  # None = builds/<profile name>
    seed: int = 0
    max_users: int = 0  # > 0: build on the first N users only (quick runs and tests)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)  # train_student (fixed architecture)
    plan: PlanConfig = field(default_factory=PlanConfig)  # the build's student: planned for the profile


@dataclass
class Artifact:
    format: str  # "executorch" | "onnx"
    precision: str  # "fp32" | "int8"
    path: str  # relative to the build directory
    bytes: int
    sha256: str
    metrics: dict  # HR@10 / NDCG@10 on test, measured through the runtime
    parity: dict  # top-10 agreement and max score error against the float student in PyTorch
    quantization: str = "none"  # how the weights became integers (QUANTIZATION)


@dataclass
class BuildResult:
    out: Path
    manifest: dict
    seconds: float


def build(cfg: BuildConfig, log=print) -> BuildResult:
    """Run the whole line for one device profile and write the build directory."""
    import torch

    start = time.perf_counter()
    profile = load_profile(cfg.profile)
    out = Path(cfg.out) if cfg.out is not None else Path("builds") / profile.name
    _check_output_dir(out)
    torch.manual_seed(cfg.seed)

    dataset = load_dataset(cfg.data, cfg.user_col, cfg.item_col, cfg.time_col)
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    split = split_leave_one_out(dataset)
    log(f"data: {dataset.name}: {len(dataset.user_ids)} users, {dataset.num_items - 1} items, "
        f"{dataset.num_interactions} interactions")
    max_history = profile.serving.max_history
    popularity = {"valid": evaluate_popularity(split, "valid"), "test": evaluate_popularity(split, "test")}
    log(f"popularity baseline: test NDCG@10 {popularity['test'].ndcg10:.4f}, HR@10 {popularity['test'].hr10:.4f}")

    teacher = train_teacher_for(cfg, split, dataset, max_history, log)
    # --- plan: the student architecture and compression that fit the profile (toolkit/plan.py) ---
    plan = plan_student(teacher.model, split, profile, cfg.seed, log, cfg.plan)
    student = planned_student(plan, split, log)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        artifacts = export_artifacts(plan.float_model, profile, split, staging, log,
                                     precisions=float_precisions(plan, profile, split.num_items),
                                     compressed=(plan.model, plan.candidate.precision) if plan.candidate.quantized else None)
        (staging / "items.json").write_text(json.dumps(dataset.item_ids, ensure_ascii=False))
        manifest = _manifest(cfg, profile, dataset, popularity, teacher, student, artifacts, time.perf_counter() - start)
        manifest["plan"] = plan.to_dict()
        # --- profile: every artifact in its runtime against the device profile; report.* (toolkit/profiler.py) ---
        from toolkit.profiler import not_fit_message, profile_build_

        profiled = profile_build_(staging, profile, manifest, log)  # adds "profile" + "verdict" to each artifact
        # --- end profile ---
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not_fit_message(profiled):  # the build is in place and complete; it does not fit its profile (exit 1)
        raise DoesNotFitError(f"{out}: {not_fit_message(profiled)}")
    return BuildResult(out=out, manifest=manifest, seconds=time.perf_counter() - start)


@dataclass
class TrainedModel:
    """A trained teacher or student with its measured quality."""

    model: object  # torch.nn.Module (SASRec or Ensemble)
    config: dict
    parameters: int
    metrics: dict[str, Metrics]  # "valid" and "test"
    seconds: float
    cached: bool = False
    epochs: int = 0


def train_teacher_for(cfg: BuildConfig, split: Split, dataset: Dataset, max_history: int, log) -> TrainedModel:
    from toolkit.models import count_parameters
    from toolkit.teacher import train_teacher

    data_key = f"{dataset.sha256}:{cfg.max_users}"
    teacher = train_teacher(cfg.teacher, split, data_key, max_history, cfg.seed)
    metrics = {p: evaluate_model(teacher.model, split, p) for p in ("valid", "test")}
    how = "loaded from cache" if teacher.cached else f"trained in {teacher.seconds:.0f} s"
    log(f"teacher ({cfg.teacher.members} × dim {cfg.teacher.dim}, {cfg.teacher.layers} block(s); {how}): "
        f"test NDCG@10 {metrics['test'].ndcg10:.4f}, HR@10 {metrics['test'].hr10:.4f}")
    return TrainedModel(model=teacher.model, config=cfg.teacher.to_dict(), parameters=count_parameters(teacher.model),
                        metrics=metrics, seconds=teacher.seconds, cached=teacher.cached)


def train_student(s: StudentConfig, teacher, split: Split, max_history: int, seed: int, log=print) -> TrainedModel:
    """Distil a student from `teacher`, or (teacher=None) train the same architecture from scratch."""
    from toolkit.distill import distill
    from toolkit.models import ModelConfig, count_parameters
    from toolkit.train import fit

    model_cfg = ModelConfig(num_items=split.num_items, dim=s.dim, layers=s.layers, heads=s.heads,
                            max_history=max_history, dropout=s.dropout)
    train_cfg = TrainConfig(**{**s.train.to_dict(), "seed": seed})
    if teacher is None:
        result = fit(model_cfg, split, train_cfg, desc="student (scratch)")
    else:
        result = distill(teacher, model_cfg, split, train_cfg, s.distill)
    metrics = {p: evaluate_model(result.model, split, p) for p in ("valid", "test")}
    how = "distilled" if teacher is not None else "trained from scratch"
    log(f"student (dim {s.dim}, {s.layers} block(s); {how} in {result.seconds:.0f} s, {result.epochs} epochs): "
        f"test NDCG@10 {metrics['test'].ndcg10:.4f}, HR@10 {metrics['test'].hr10:.4f}")
    return TrainedModel(model=result.model, config=model_cfg.to_dict(), parameters=count_parameters(result.model),
                        metrics=metrics, seconds=result.seconds, epochs=result.epochs)


def planned_student(plan: PlanResult, split: Split, log=print) -> TrainedModel:
    """The plan's float student (before compression), with its measured quality."""
    from toolkit.models import count_parameters

    model = plan.float_model
    metrics = {p: evaluate_model(model, split, p) for p in ("valid", "test")}
    tried = next(r for r in plan.candidates if r.tried and r.candidate == plan.candidate.to_dict())
    log(f"student ({plan.candidate.name()}; distilled and compressed in {tried.seconds:.0f} s): float test "
        f"NDCG@10 {metrics['test'].ndcg10:.4f}, HR@10 {metrics['test'].hr10:.4f}")
    return TrainedModel(model=model, config=model.cfg.to_dict(), parameters=count_parameters(model),
                        metrics=metrics, seconds=tried.seconds)


def float_precisions(plan: PlanResult, profile: DeviceProfile, num_items: int) -> dict[str, list[str]]:
    """Per format, which exports of the float student fit the model budget by estimate: "fp32", and
    "int8" (PT2E static / ORT dynamic; it holds the table twice as int8: lookup and scores)."""
    from dataclasses import replace

    c, b = plan.candidate, profile.budget
    width = c.embedding_rank or c.dim
    out = {}
    for fmt in profile.serving.formats:
        fp32 = estimate(replace(c, table_bits=32, linear_bits=32), num_items, profile.serving.max_history,
                        profile.hardware.gflops, (fmt,)).file_bytes[fmt]
        int8 = estimate(replace(c, table_bits=8, linear_bits=8), num_items, profile.serving.max_history,
                        profile.hardware.gflops, (fmt,)).file_bytes[fmt] + num_items * width
        out[fmt] = [p for p, size in (("fp32", fp32), ("int8", int8))
                    if size <= b.model_bytes and (p == "fp32" or profile.hardware.int8)]
    return out


def export_artifacts(model, profile: DeviceProfile, split: Split, out: Path, log,
                     precisions: dict[str, list[str]] | None = None,
                     compressed: tuple | None = None) -> list[Artifact]:
    """Export the float student `model` in every format the profile serves and check each artifact.

    precisions: per format, "fp32" and/or "int8" (PT2E static int8 for ExecuTorch, dynamic int8
        for ONNX Runtime); default both (fp32 only where the profile has no int8).
    compressed: (model, precision label): a model compressed by toolkit.compress (integer weights
        inside) also exported, as `model.compressed.pte/.onnx`.
    reference.npz holds the float student's outputs: every artifact's parity is against it.
    """
    import torch

    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.serving import ServingModel

    max_history, top_k = profile.serving.max_history, profile.serving.top_k
    calibration = torch.from_numpy(pad_histories(split.train[:CALIBRATION_HISTORIES], max_history))
    reference = ServingModel(model, top_k).eval()
    default = ["fp32", "int8"] if profile.hardware.int8 else ["fp32"]
    write_reference(reference, split, max_history, out / REFERENCE_FILE)
    artifacts = []
    for fmt in profile.serving.formats:
        suffix = ".pte" if fmt == "executorch" else ".onnx"
        jobs = [(p, f"model.{p}{suffix}", model, "int8" if p == "int8" else "none")
                for p in (default if precisions is None else precisions[fmt])]
        if compressed is not None:
            jobs.append((compressed[1], f"model.compressed{suffix}", compressed[0], "compressed"))
        for precision, name, module, method in jobs:
            int8 = method == "int8"
            serving = ServingModel(module, top_k, split_table=int8)
            path = out / name
            with quiet_exporters():
                if fmt == "executorch":
                    export_executorch(serving, path, max_history, calibration if int8 else None)
                else:
                    export_onnx(serving, path, max_history, int8=int8)
            artifact = check_artifact(path, fmt, precision, split, profile.hardware.threads)
            artifact.path = name
            artifact.quantization = QUANTIZATION[(fmt, method)]
            log(f"  {name}: {artifact.bytes / 1000:.1f} KB, test NDCG@10 {artifact.metrics['ndcg10']:.4f} "
                f"through {fmt}, top-10 agreement {artifact.parity['top10_agreement']:.3f}")
            artifacts.append(artifact)
    return artifacts


def write_reference(reference, split: Split, max_history: int, path: Path) -> None:
    """Expected outputs of the PyTorch serving graph on real test histories, stored next to the
    artifacts so they can be checked later without the PyTorch model (like a BundledProgram)."""
    import torch

    histories = pad_histories(split.history("test")[:PARITY_HISTORIES], max_history)
    with torch.no_grad():
        rows = [reference(torch.from_numpy(h[None])) for h in histories]
    np.savez(path, history=histories, scores=np.concatenate([r[0].numpy() for r in rows]),
             items=np.concatenate([r[1].numpy() for r in rows]))


@contextlib.contextmanager
def quiet_exporters():
    """The exporters warn about internals a user cannot act on; keep the build log readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def check_artifact(path: Path, fmt: str, precision: str, split: Split, threads: int) -> Artifact:
    """Parity against the stored PyTorch outputs and quality through the artifact's runtime."""
    from export.runtime import Predictor
    from toolkit.evaluate import evaluate_topk
    from toolkit.parity import load_reference, measure_parity

    predictor = Predictor(path, threads=threads)
    parity = measure_parity(predictor.predict, load_reference(path.parent / REFERENCE_FILE))
    metrics, undetermined = evaluate_topk(lambda h: predictor.predict(h)[1], split, "test", predictor.max_history)
    data = path.read_bytes()
    return Artifact(
        format=fmt, precision=precision, path=path.name, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        metrics={**metrics.to_dict(), "phase": "test", "undetermined_users": undetermined},
        parity=parity,
    )


def _manifest(cfg: BuildConfig, profile: DeviceProfile, dataset: Dataset, popularity: dict[str, Metrics],
              teacher: TrainedModel, student: TrainedModel, artifacts: list[Artifact], seconds: float) -> dict:
    from dataclasses import asdict

    def both(m: dict[str, Metrics]) -> dict:
        return {**m["test"].to_dict(), "valid": m["valid"].to_dict()}

    return {
        "toolkit_version": toolkit.__version__,
        "profile": profile.to_dict(),
        "dataset": dataset.summary(),
        "seed": cfg.seed,
        "protocol": "leave-one-out by time; full ranking over all items, history excluded; metrics are test",
        "popularity": {"metrics": both(popularity)},
        "teacher": {"config": teacher.config, "parameters": teacher.parameters,
                    "metrics": both(teacher.metrics), "train_seconds": teacher.seconds, "cached": teacher.cached},
        "student": {"config": student.config, "distill": DistillConfig().to_dict(), "plan_config": cfg.plan.to_dict(),
                    "parameters": student.parameters,
                    "metrics": both(student.metrics), "train_seconds": student.seconds},
        "artifacts": [asdict(a) for a in artifacts],
        "build_seconds": seconds,
    }


def first_users(dataset: Dataset, n: int) -> Dataset:
    """The first n users (quick runs): items keep their indices so the vocabulary is unchanged."""
    from dataclasses import replace

    return replace(dataset, user_ids=dataset.user_ids[:n], sequences=dataset.sequences[:n],
                   num_interactions=sum(len(s) for s in dataset.sequences[:n]))


def _check_output_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ToolkitError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ToolkitError(f"--out {out}: not empty and not a previous build (no manifest.json); choose another")


def _replace_dir(staging: Path, out: Path) -> None:
    """Swap the finished build into place; the previous build is removed only after that."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
