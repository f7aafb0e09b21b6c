"""The recipe: load → split → teacher → distill → export → check → write, top to bottom.

`build(BuildConfig)` is what `python -m toolkit build` runs. Every output is written into a
temporary directory next to the target and moved into place only when complete, so a failed or
interrupted build never leaves a half-written build directory (and never loses the previous one
before the new one is whole).
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
from toolkit.profiles import DeviceProfile, load_profile
from toolkit.teacher import TeacherConfig
from toolkit.train import TrainConfig

CALIBRATION_HISTORIES = 128  # real training histories used to calibrate int8 activations
PARITY_HISTORIES = 200  # test histories each artifact is compared on against PyTorch
REFERENCE_FILE = "reference.npz"  # those histories and the PyTorch outputs (history, scores, items)


@dataclass
class StudentConfig:
    dim: int = 32
    layers: int = 1
    heads: int = 1
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(patience=8))
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
    student: StudentConfig = field(default_factory=StudentConfig)


@dataclass
class Artifact:
    format: str  # "executorch" | "onnx"
    precision: str  # "fp32" | "int8"
    path: str  # relative to the build directory
    bytes: int
    sha256: str
    metrics: dict  # HR@10 / NDCG@10 on test, measured through the runtime
    parity: dict  # top-10 agreement and max score error against PyTorch


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
    student = train_student(cfg.student, teacher.model, split, max_history, cfg.seed, log)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        artifacts = export_artifacts(student.model, profile, split, staging, log)
        (staging / "items.json").write_text(json.dumps(dataset.item_ids, ensure_ascii=False))
        manifest = _manifest(cfg, profile, dataset, popularity, teacher, student, artifacts, time.perf_counter() - start)
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


def export_artifacts(model, profile: DeviceProfile, split: Split, out: Path, log) -> list[Artifact]:
    """Export the student in every format the profile serves, fp32 and (if int8) int8, and check each."""
    import torch

    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.serving import ServingModel

    max_history, top_k = profile.serving.max_history, profile.serving.top_k
    calibration = torch.from_numpy(pad_histories(split.train[:CALIBRATION_HISTORIES], max_history))
    reference = ServingModel(model, top_k).eval()
    precisions = ["fp32", "int8"] if profile.hardware.int8 else ["fp32"]
    write_reference(reference, split, max_history, out / REFERENCE_FILE)
    artifacts = []
    for fmt in profile.serving.formats:
        for precision in precisions:
            int8 = precision == "int8"
            serving = ServingModel(model, top_k, split_table=int8)
            name = f"model.{precision}{'.pte' if fmt == 'executorch' else '.onnx'}"
            path = out / name
            with quiet_exporters():
                if fmt == "executorch":
                    export_executorch(serving, path, max_history, calibration if int8 else None)
                else:
                    export_onnx(serving, path, max_history, int8=int8)
            artifact = check_artifact(path, fmt, precision, split, profile.hardware.threads)
            artifact.path = name
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
        "student": {"config": student.config, "distill": cfg.student.distill.to_dict(),
                    "train": cfg.student.train.to_dict(), "parameters": student.parameters,
                    "metrics": both(student.metrics), "train_seconds": student.seconds, "epochs": student.epochs},
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
