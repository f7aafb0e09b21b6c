"""The recipe: load → split → teacher → priors → plan (distil + compress the student the profile can
hold) → evaluate → export → check → profile → write, top to bottom.

`prepare(BuildConfig)` checks everything that can be checked without training (the profile, the
data file, the output folder) and takes no more than a second; the CLI runs it before torch is
imported. `build(BuildConfig)` then runs the line. Training, planning and model selection get the
split with its test targets sealed (`Split.sealed`): reading one there raises.

The build is written into a staging folder next to `--out` and swapped in atomically only when
complete (toolkit/recipe/output.py): a failed or interrupted build leaves the previous one as it was.
Every step runs inside `step(name)`, so an unexpected error names the step it happened in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import toolkit
from toolkit.data import (Dataset, DataSummary, Split, check_data_path, check_encoding, check_repeats, first_users,
                          load_dataset, split_leave_one_out, summarize)
from toolkit.training.distill import DistillConfig
from toolkit.core.errors import ToolkitError
from toolkit.training.evaluate import Metrics, candidates_needed, cutoff_for, evaluate_model, evaluate_popularity, pad_histories
from toolkit.core.contract import ITEMS_FILE, MANIFEST_FILE, REFERENCE_FILE
from toolkit.recipe.manifest import ArtifactRecord, Manifest, ModelRecord, ServingRecord
from toolkit.recipe.output import OutputDir, prepare_output
from toolkit.planning.search import PlanConfig, PlanResult, estimate, int8_scores
from toolkit.training.priors import PriorConfig
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT, below_popularity
from toolkit.profiler.records import ArtifactProfile
from toolkit.core.profiles import DeviceProfile, load_profile
from toolkit.teachers.ensemble import TeacherConfig
from toolkit.training.loop import TrainConfig
from toolkit.core.units import format_bytes

CALIBRATION_HISTORIES = 128  # real training histories used to calibrate int8 activations
PARITY_HISTORIES = 200  # test histories each artifact is compared on against the model it came from
# how an artifact's weights were quantized at export, by (format, method); "compressed" artifacts
# carry the weights toolkit.compression left in the model (`compressed_quantization`)
QUANTIZATION = {
    ("executorch", "none"): "none", ("onnx", "none"): "none",
    ("executorch", "int8"): "torchao int8 weight-only lookup + PT2E XNNPACKQuantizer int8 per-channel linears, dynamic activations",
    ("onnx", "int8"): "ONNX Runtime quantize_dynamic int8 (MatMul, Gather)",
}
SUFFIX = {"executorch": ".pte", "onnx": ".onnx"}


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
    encoding: str = "utf-8"  # of a CSV/TSV --data file
    time_format: str | None = None  # strptime format of the time column (None: epoch s/ms or ISO-8601, detected)
    # "drop": an item the user already has is never recommended (the artifact and the apps drop it,
    # the metrics exclude it); "allow": repeat consumption (groceries, music): seen items may be
    # answers, the apps keep them and the metrics count them
    repeats: str = "drop"
    out: Path | None = None  # None = builds/<profile name>
    seed: int = 0
    max_users: int = 0  # > 0: build on the first N users only (quick runs and tests)
    eval_users: int = 10_000  # metrics (and the plan's choices) read at most this many users, a fixed sample
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)  # train_student (fixed architecture)
    plan: PlanConfig = field(default_factory=PlanConfig)  # the build's student: planned for the profile
    priors: PriorConfig = field(default_factory=PriorConfig)  # the plan's quality expectations

    def with_epochs(self, epochs: int) -> BuildConfig:
        """Every training loop capped at `epochs` (teacher, priors, student, plan, compression fine-tunes)."""
        def cap(t: TrainConfig) -> TrainConfig:
            return replace(t, epochs=min(t.epochs, epochs))

        return replace(self, teacher=replace(self.teacher, train=cap(self.teacher.train)),
                       student=replace(self.student, train=cap(self.student.train)),
                       priors=replace(self.priors, train=cap(self.priors.train)),
                       plan=replace(self.plan, epochs=min(self.plan.epochs, epochs)))


@dataclass
class Prepared:
    """What `prepare` checked: the profile and the output folder (locked until the build ends)."""

    profile: DeviceProfile
    output: OutputDir
    data_path: Path | None


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
    cache_key: dict = field(default_factory=dict)  # the teacher's cache key (what it was trained from)
    extra: dict = field(default_factory=dict)  # the teacher's manifest extras (trained_with; its graph, module or file)

    def record(self, **extra) -> ModelRecord:
        return ModelRecord(config=self.config, parameters=self.parameters, metrics=self.metrics,
                           train_seconds=self.seconds, cached=self.cached, epochs=self.epochs,
                           extra={**self.extra, **extra})


@dataclass
class BuildResult:
    out: Path
    manifest: Manifest
    seconds: float

    @property
    def fits(self) -> bool:
        return (not self.manifest.plan.get("unfit_formats")
                and all(a.profile is not None and a.profile.fits for a in self.manifest.artifacts))

    def failures(self) -> str:
        unfit = [f"{fmt}: {why}" for fmt, why in self.manifest.plan.get("unfit_formats", {}).items()]
        return "; ".join(unfit + [f for a in self.manifest.artifacts if a.profile is not None
                                  for f in a.profile.failures()])


@dataclass
class ExportJob:
    """One artifact to write: which model, which format, how its weights are stored."""

    name: str  # file name, e.g. model.int8.pte
    format: str  # executorch | onnx
    precision: str
    method: str  # none | int8 (quantized at export) | compressed (weights already integer in the model)
    source: str  # float | compressed: the model it is exported from
    quantization: str  # how its weights became integers ("none" for float weights)


@contextlib.contextmanager
def step(name: str, seconds: dict[str, float]):
    """Run one step of the recipe: its time is recorded, and an unexpected error is tagged with its name."""
    start = time.perf_counter()
    try:
        yield
    except Exception as e:
        if not hasattr(e, "toolkit_step"):
            e.toolkit_step = name
        raise
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def prepare(cfg: BuildConfig, log=print) -> Prepared:
    """Every check that needs no training, in well under a second (torch is not imported)."""
    from toolkit.core.cache import cache_dir

    profile = load_profile(cfg.profile)
    data_path = check_data_path(cfg.data)
    if data_path is not None and data_path.suffix.lower() != ".parquet":
        check_encoding(cfg.encoding)
    check_repeats(cfg.repeats)
    check_teacher(cfg.teacher, data_path)
    out = Path(cfg.out) if cfg.out is not None else Path("builds") / profile.name
    protected = [cache_dir()] + ([data_path] if data_path else []) + ([Path(profile.path)] if profile.path else [])
    protected += [Path(p) for p in (cfg.teacher.kg_triples, cfg.teacher.kg_links, cfg.teacher.scores) if p]
    return Prepared(profile=profile, output=prepare_output(out, protected, log), data_path=data_path)


def build(cfg: BuildConfig, log=print, prepared: Prepared | None = None) -> BuildResult:
    """Run the whole line for one device profile and write the build directory."""
    start = time.perf_counter()
    prepared = prepared or prepare(cfg, log)
    profile, output = prepared.profile, prepared.output
    seconds: dict[str, float] = {}
    staging = None
    try:
        import torch

        torch.manual_seed(cfg.seed)
        with step("data", seconds):
            dataset, split, data_key = load_split(cfg, profile)
            sealed = split.sealed()  # training, planning and selection never see a test target
            data_summary = log_data_summary(dataset, split, cfg.repeats, log)
        max_history, k = profile.serving.max_history, cutoff_for(profile.serving.top_k)

        with step("teacher", seconds):
            teacher = train_teacher_for(cfg, sealed, data_key, max_history, log, dataset)
        with step("priors", seconds):
            priors = measure_priors_for(cfg, sealed, data_key, max_history, teacher, log)
        with step("plan", seconds):
            from toolkit.planning.search import plan_student

            plan = plan_student(teacher.model, sealed, profile, priors, cfg.seed, log, cfg.plan)
        with step("evaluate", seconds):
            popularity = {p: evaluate_popularity(split, p, k) for p in ("valid", "test")}
            log(f"popularity baseline: test {popularity['test'].text()}")
            teacher_record = evaluated(teacher, split, k, log, "teacher", teacher_phases(cfg.teacher)).record(
                cache_key=_short_hash(teacher.cache_key), kind=cfg.teacher.kind, **teacher.extra)
            warnings = teacher_warnings(teacher_record, popularity, log)
        item_ids = dataset.item_ids
        index = None
        if plan.candidate.two_stage:  # items relabelled so every cluster is a contiguous range
            with step("index", seconds):
                index, split, item_ids = cluster_index_(plan, split, item_ids, log)
                sealed = split.sealed()
        with step("evaluate", seconds):
            student = planned_student(plan, split, k, log)
            serving = serving_record(plan.float_model, sealed, profile, k)
            if serving.repeats == "allow":
                log(f"serving: the artifacts return {serving.candidates} candidates ({serving.how})")
            else:
                log(f"serving: the artifacts return {serving.candidates} candidates so that {serving.top_k} are left "
                    f"after the app drops what the user has seen ({serving.how})")
            if index is not None:
                serving.two_stage = choose_two_stage(plan, index, sealed, serving.candidates, log)

        staging = output.staging(toolkit.__version__, profile.name)
        with step("export", seconds):
            models = {"float": plan.float_model}
            if plan.candidate.compressed:
                models["compressed"] = plan.model
            jobs = export_jobs(plan, profile, split.num_items)
            artifacts = export_artifacts(models, jobs, profile, split, staging, serving.candidates, k,
                                         float_metrics=student.metrics["test"], log=log,
                                         analytic=analytic_latency(plan, profile, split.num_items),
                                         two_stage=(index, serving.two_stage["probe"]) if index is not None else None)
            (staging / ITEMS_FILE).write_text(json.dumps(item_ids, ensure_ascii=False))
        manifest = Manifest(toolkit_version=toolkit.__version__, profile=profile, dataset=dataset.summary(),
                            data=data_summary,
                            seed=cfg.seed, serving=serving, popularity=popularity, teacher=teacher_record,
                            student=student.record(distill=DistillConfig().to_dict(), plan_config=cfg.plan.to_dict()),
                            plan=plan.to_dict(), artifacts=artifacts, build_seconds=0.0, steps_seconds=seconds,
                            warnings=warnings)
        with step("profile", seconds):
            profile_artifacts_(staging, profile, manifest, log)
        manifest.build_seconds = time.perf_counter() - start
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=2))
        log(f"installing the build at {output.path}")
        output.install(staging)
        staging = None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        output.release()
    return BuildResult(out=output.path, manifest=manifest, seconds=time.perf_counter() - start)


def load_split(cfg: BuildConfig, profile: DeviceProfile) -> tuple[Dataset, Split, dict]:
    """The build's data (its first `max_users` users), its leave-one-out split, and the data key
    that the cached teacher and priors are found by (`build` and `train-teacher` alike)."""
    dataset = load_dataset(cfg.data, cfg.user_col, cfg.item_col, cfg.time_col, cfg.encoding, cfg.time_format)
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    check_catalogue(dataset, profile)
    allow = check_repeats(cfg.repeats) == "allow"
    split = split_leave_one_out(dataset, allow_repeats=allow).evaluated_on(cfg.eval_users, cfg.seed)
    # "allow" changes what validation counts as a hit (early stopping, priors): part of the key; "drop"
    # adds nothing, so the caches of builds made before the mode existed stay valid
    return dataset, split, {**dataset.key(), "max_users": cfg.max_users, **({"repeats": "allow"} if allow else {})}


def log_data_summary(dataset: Dataset, split: Split, repeats: str, log) -> DataSummary:
    """The data summary (rows, duplicates, dropped users, items, unreachable test targets) into the log."""
    summary = summarize(dataset, split, repeats)
    log(summary.text())
    for warning in summary.warnings():
        log(warning)
    return summary


def check_catalogue(dataset: Dataset, profile: DeviceProfile) -> None:
    """The serving graph answers top_k items that are not in a full window: the catalogue must hold them."""
    need = profile.serving.top_k + profile.serving.max_history
    if dataset.num_items - 1 < need:
        raise ToolkitError(f"--data {dataset.name}: {dataset.num_items - 1} items, but profile {profile.name} serves "
                           f"top_k {profile.serving.top_k} after a history of up to {profile.serving.max_history} "
                           f"items: the catalogue needs at least {need} items (use a profile with a smaller "
                           "serving.top_k / serving.max_history)")


TEACHER_KINDS = ("ensemble", "kg", "external", "scores")


def check_teacher(t: TeacherConfig, data_path: Path | None) -> None:
    """The teacher's settings, checked before anything is loaded or trained (no torch)."""
    from toolkit.teachers.ensemble import parse_teacher_spec

    if t.kind not in TEACHER_KINDS:
        raise ToolkitError(f"--teacher {t.kind!r}: not valid; valid: kg, ensemble, or MODULE:FACTORY")
    if t.kind == "external":
        module, _ = parse_teacher_spec(t.module or "")
        if module.endswith(".py") and not Path(module).is_file():
            raise ToolkitError(f"--teacher {t.module!r}: no such file {module}")
    if t.kind == "scores" and not (t.scores and Path(t.scores).is_file()):
        raise ToolkitError(f"--teacher-scores {t.scores}: no such file")
    if (t.kg_triples is None) != (t.kg_links is None):
        raise ToolkitError("--kg and --kg-links go together: a triples file and an item -> entity links file")
    if t.kind != "kg" and t.kg_triples is not None:
        raise ToolkitError(f"--kg is for the knowledge-graph teacher, not --teacher {t.module or t.kind}")
    if t.kind == "kg" and t.kg_triples is None and data_path is not None:
        raise ToolkitError(f"--teacher kg on --data {data_path}: give the graph with --kg TRIPLES --kg-links LINKS "
                           "(only the default MovieLens-100K ships one)")
    for flag, p in (("--kg", t.kg_triples), ("--kg-links", t.kg_links)):
        if p is not None and not Path(p).is_file():
            raise ToolkitError(f"{flag} {p}: no such file")


def teacher_phases(t: TeacherConfig) -> tuple[str, ...]:
    """A scores file answers the training prefixes only: its teacher is measured on validation alone."""
    return ("valid",) if t.kind == "scores" else ("valid", "test")


def knowledge_graph_for(t: TeacherConfig, dataset: Dataset, split: Split, log):
    """The graph of a kg teacher, aligned with the data's items (the user's files, or MovieLens-100K's
    own: `toolkit.teachers.graph.movielens_kg`), with how well its links match the interactions (`toolkit.teachers.graph.kg_alignment`)."""
    from toolkit.teachers.graph import ALIGNED_LIFT, kg_alignment, load_kg, movielens_kg

    if t.kg_triples is not None:
        kg = load_kg(t.kg_triples, t.kg_links, dataset.item_ids)
    else:
        kg = movielens_kg(dataset.item_ids, split.train, log)
    lift = kg_alignment(kg, split.train)
    s = kg.summary()
    log(f"knowledge graph: {s['triples']:,} triples, {s['entities']:,} entities, {s['relations']} relations; "
        f"{s['items_linked']:,} of {s['items']:,} items linked ({s['links_ignored']} links to unknown items ignored); "
        f"graph-near items share {lift:.2f}x the users of random pairs")
    if lift < ALIGNED_LIFT:
        log(f"warning: the graph's near items share no more users than random pairs ({lift:.2f}x): its links may "
            "name items of another id space")
    return kg, {**s, "alignment_lift": lift}


def train_teacher_for(cfg: BuildConfig, split: Split, data_key: dict, max_history: int, log,
                      dataset: Dataset | None = None, world=None) -> TrainedModel:
    """The teacher (`cfg.teacher.kind`): the ensemble or the knowledge-graph teacher (trained, cached),
    a user's module or a user's scores file (loaded, checked); `split` is sealed. `dataset` is needed
    for every kind but the ensemble (item and user ids); `world`: the ranks that train it (default one process)."""
    from toolkit.models.sasrec import count_parameters
    from toolkit.teachers.ensemble import train_teacher

    t = cfg.teacher
    if t.kind in ("external", "scores"):
        return _user_teacher(cfg, split, data_key, max_history, log, dataset)
    kg, extra = knowledge_graph_for(t, dataset, split, log) if t.kind == "kg" else (None, {})
    teacher = train_teacher(t, split, data_key, max_history, cfg.seed, log, world=world, kg=kg)
    ranks = teacher.trained_with["world_size"]
    how = ("loaded from cache" if teacher.cached else f"trained in {teacher.seconds:.0f} s") + (
        f", trained on {ranks} ranks ({teacher.trained_with['backend']})" if ranks > 1 else "")
    what = "knowledge-graph teacher" if kg is not None else "teacher"
    steps = "" if teacher.cached else "; steps " + ", ".join(
        f"{n:,}" + (" (capped)" if c else "") for n, c in zip(teacher.member_steps, teacher.member_capped))
    log(f"{what} ({teacher.members} × dim {t.dim}, {t.layers} block(s); {how}{steps})")
    budgets = {} if teacher.cached else {"member_steps": teacher.member_steps, "member_capped": teacher.member_capped}
    return TrainedModel(model=teacher.model, config=t.to_dict(), parameters=count_parameters(teacher.model),
                        metrics={}, seconds=teacher.seconds, cached=teacher.cached, cache_key=teacher.key,
                        extra={"trained_with": teacher.trained_with, "members": teacher.members, **budgets,
                               **({"knowledge_graph": extra} if kg is not None else {})})


def _user_teacher(cfg: BuildConfig, split: Split, data_key: dict, max_history: int, log, dataset: Dataset
                  ) -> TrainedModel:
    """A user's module (`--teacher MODULE:FACTORY`) or scores file (`--teacher-scores`), checked against the data."""
    from toolkit.teachers.external import load_module_teacher, read_teacher_scores
    from toolkit.models.sasrec import count_parameters

    t = cfg.teacher
    start = time.perf_counter()
    if t.kind == "external":
        teacher = load_module_teacher(t.module, dataset, split, max_history)
        cached = teacher.prepare_scores(split, data_key, cfg.student.distill.top_k, log)
        extra = {"module": t.module, "file_sha256": teacher.file_sha256, "weights_sha256": teacher.weights_sha256,
                 "relational": "none (an external module has no item vectors: logit distillation only)"}
        log(f"teacher: {t.module} (external module; its top-{cfg.student.distill.top_k} per training position "
            f"{'loaded from cache' if cached else 'computed'})")
    else:
        teacher = read_teacher_scores(t.scores, dataset, split, max_history)
        cached = False
        rows = len(teacher.scores.users)
        total = sum(len(x) for x in split.train)
        extra = {"scores_file": t.scores, "sha256": teacher.sha256, "rows": rows, "positions_covered": rows / max(total, 1),
                 "relational": "none (precomputed scores have no item vectors: logit distillation only)"}
        log(f"teacher: precomputed scores {t.scores} ({rows:,} rows, {rows / max(total, 1):.0%} of the training "
            "positions; the others keep the hard label only)")
    return TrainedModel(model=teacher, config=t.to_dict(), parameters=count_parameters(teacher), metrics={},
                        seconds=time.perf_counter() - start, cached=cached, cache_key=teacher.key(), extra=extra)


def train_teacher_only(cfg: BuildConfig, world=None, log=print) -> TrainedModel:
    """`build`'s teacher step alone (`python -m toolkit train-teacher`, on the ranks of `world`): it
    leaves in the cache the teacher that `build` with the same settings then loads."""
    from toolkit.training.distributed import SINGLE

    world = world or SINGLE
    profile = load_profile(cfg.profile)
    data_path = check_data_path(cfg.data)
    if data_path is not None and data_path.suffix.lower() != ".parquet":
        check_encoding(cfg.encoding)
    check_teacher(cfg.teacher, data_path)
    if cfg.teacher.kind not in ("ensemble", "kg"):
        raise ToolkitError("train-teacher trains the toolkit's own teachers (the ensemble, --teacher kg); a --teacher "
                           "MODULE:FACTORY or --teacher-scores teacher is already trained: give it to `build`")
    with world.main_first():  # a first download of the default data: one rank
        dataset, split, data_key = load_split(cfg, profile)
    log_data_summary(dataset, split, cfg.repeats, log)
    sealed = split.sealed()
    teacher = train_teacher_for(cfg, sealed, data_key, profile.serving.max_history, log, dataset, world)
    if world.is_main:  # validation only: test figures belong to the build, after every choice
        teacher.metrics = {"valid": evaluate_model(teacher.model, sealed, "valid")}
    return teacher


def measure_priors_for(cfg: BuildConfig, split: Split, data_key: dict, max_history: int, teacher: TrainedModel, log):
    """The plan's quality expectations, from proxy students on this data (the teacher's members reused
    where they are the same recipe)."""
    from toolkit.training.priors import measure_priors

    t = cfg.teacher
    same_recipe = (t.kind == "ensemble" and t.layers == 1 and t.heads == 1 and t.dropout == cfg.priors.dropout
                   and replace(t.train, seed=0, threads=0) == replace(cfg.priors.train, seed=0, threads=0))
    reuse = {t.dim: teacher.model.members[0]} if same_recipe and t.dim in cfg.priors.dims else {}
    priors = measure_priors(split, max_history, replace(cfg.priors, dims=proxy_dims(cfg.priors.dims, cfg.plan.dims)),
                            cfg.seed, data_key, reuse, log, plan=cfg.plan)
    how = "loaded from cache" if priors.cached else f"measured in {priors.seconds:.0f} s on {priors.users} users"
    log("priors (valid NDCG@10 by width, from-scratch proxies; " + how + "): "
        + ", ".join(f"dim {d} {v:.4f}" for d, v in sorted(priors.by_dim.items()))
        + f"; kept by an int8 table {priors.table_keep[8]:.3f}, int4 {priors.table_keep[4]:.3f}, "
          f"int8 linears {priors.linear_keep:.3f}, half-rank table {priors.rank_keep:.3f}")
    return priors


def proxy_dims(available: tuple[int, ...], planned: tuple[int, ...]) -> tuple[int, ...]:
    """The proxy widths that bracket the plan's widths (a plan of one width needs one proxy)."""
    lo, hi = min(planned), max(planned)
    below = [d for d in available if d <= lo] or [min(available)]
    above = [d for d in available if d >= hi] or [max(available)]
    return tuple(sorted({max(below), min(above)} | {d for d in available if lo <= d <= hi}))


def teacher_warnings(teacher: ModelRecord, popularity: dict[str, Metrics], log=print) -> list[str]:
    """A teacher that is not above the popularity baseline (by more than the noise of the users
    evaluated: `toolkit.profiler.judge.popularity_noise`) is a warning, logged and kept for the report;
    on test, or on validation for a teacher that answers training prefixes only."""
    phase = "test" if "test" in teacher.metrics else "valid"
    warning = below_popularity(f"the teacher's {phase}", teacher.metrics[phase], popularity[phase])
    if warning is None:
        return []
    log(f"warning: {warning}")
    return [warning]


def evaluated(trained: TrainedModel, split: Split, k: int, log, what: str,
              phases: tuple[str, ...] = ("valid", "test")) -> TrainedModel:
    """`trained` with its valid and test metrics at the build's cutoff (the split unsealed: after every choice)."""
    trained.metrics = {p: evaluate_model(trained.model, split, p, k) for p in phases}
    if "test" in trained.metrics:
        log(f"{what}: test {trained.metrics['test'].text()} (valid NDCG@{k} {trained.metrics['valid'].ndcg:.4f})")
    else:
        log(f"{what}: valid {trained.metrics['valid'].text()} (no test figure: it answers training prefixes only)")
    return trained


def train_student(s: StudentConfig, teacher, split: Split, max_history: int, seed: int, log=print) -> TrainedModel:
    """Distil a student from `teacher`, or (teacher=None) train the same architecture from scratch.

    `split` may be sealed; the returned metrics are valid only (test is measured by the caller)."""
    from toolkit.training.distill import distill
    from toolkit.models.sasrec import ModelConfig, count_parameters
    from toolkit.training.loop import fit

    model_cfg = ModelConfig(num_items=split.num_items, dim=s.dim, layers=s.layers, heads=s.heads,
                            max_history=max_history, dropout=s.dropout)
    train_cfg = TrainConfig(**{**s.train.to_dict(), "seed": seed})
    if teacher is None:
        result = fit(model_cfg, split, train_cfg, desc="student (scratch)")
    else:
        result = distill(teacher, model_cfg, split, train_cfg, s.distill)
    how = "distilled" if teacher is not None else "trained from scratch"
    log(f"student (dim {s.dim}, {s.layers} block(s); {how} in {result.seconds:.0f} s, {result.epochs} epochs): "
        f"valid NDCG@10 {result.valid.ndcg:.4f}")
    return TrainedModel(model=result.model, config=model_cfg.to_dict(), parameters=count_parameters(result.model),
                        metrics={"valid": result.valid}, seconds=result.seconds, epochs=result.epochs)


def planned_student(plan: PlanResult, split: Split, k: int, log=print) -> TrainedModel:
    """The plan's float student (before compression), with its measured quality."""
    from toolkit.models.sasrec import count_parameters

    model = plan.float_model
    tried = next(r for r in plan.candidates if r.tried and r.candidate == plan.candidate.to_dict())
    trained = TrainedModel(model=model, config=model.cfg.to_dict(), parameters=count_parameters(model), metrics={},
                           seconds=tried.seconds)
    return evaluated(trained, split, k, log, f"student ({plan.candidate.name()}), float")


def serving_record(model, split: Split, profile: DeviceProfile, k: int) -> ServingRecord:
    """How many candidates the artifacts return (sized on validation histories with the float student)."""
    import torch

    max_history, top_k = profile.serving.max_history, profile.serving.top_k
    model.eval()

    def scores(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.score_last(torch.from_numpy(batch)).numpy()

    if split.allow_repeats:  # the app keeps every answer: nothing to make room for
        return ServingRecord(max_history=max_history, top_k=top_k, candidates=top_k, k=k, repeats="allow",
                             how="repeats allowed: the artifacts may answer items the user already has and the "
                                 "app keeps them, so top_k candidates are enough")
    candidates, figures = candidates_needed(scores, split, max_history, top_k)
    how = (f"on {figures['users']} validation histories at most {figures['max_older_items_above']} items older "
           f"than the {max_history}-item window rank above the {top_k}th new one (99th percentile "
           f"{figures['p99_older_items_above']:.0f})")
    return ServingRecord(max_history=max_history, top_k=top_k, candidates=candidates, k=k, how=how)


def cluster_index_(plan: PlanResult, split: Split, item_ids: list[str], log) -> tuple:
    """Cluster the compressed student's item vectors (faiss), relabel the items so each cluster is a
    contiguous index range, in both students (in place), the split and items.json's order.
    Returns (ClusterIndex, relabelled split, relabelled item ids)."""
    from export.two_stage import build_index, permute_items_

    index = build_index(plan.model.items.weight().detach())
    for model in {id(plan.model): plan.model, id(plan.float_model): plan.float_model}.values():
        permute_items_(model, index.order)
    new_of_old = index.inverse()
    log(f"two-stage index: {index.clusters} clusters of at most {index.capacity} items, the items relabelled so "
        "each cluster is a contiguous range")
    return index, split.relabelled(new_of_old), [item_ids[i] for i in index.order.tolist()]


def choose_two_stage(plan: PlanResult, index, split: Split, candidates: int, log, histories: int = 1000) -> dict:
    """The smallest probe reaching recall@10 `export.two_stage.RECALL_TARGET` against exhaustive scoring
    of the same model, on validation histories."""
    from export.two_stage import RECALL_TARGET, choose_probe

    sample = split.evaluated_on(histories)
    padded = pad_histories(sample.history("valid"), plan.model.cfg.max_history)
    choice = choose_probe(plan.model, index, padded, candidates=candidates, target=RECALL_TARGET)
    log(f"two-stage: probe {choice.probe} of {index.clusters} clusters, {choice.scored_fraction:.1%} of the items "
        f"scored, recall@10 {choice.recall:.3f} against exhaustive scoring on {len(padded)} validation histories")
    return {**index.summary(), **choice.to_dict(), "validation_histories": len(padded)}


def float_precisions(plan: PlanResult, profile: DeviceProfile, num_items: int) -> dict[str, list[str]]:
    """Per format, which exports of the float student (full item table) fit the model budget by
    estimate: "fp32", and "int8" (PT2E static / ORT dynamic; it holds the table twice as int8:
    lookup and scores)."""
    c, b = replace(plan.candidate, embedding_rank=0), profile.budget
    width = c.dim
    out = {}
    for fmt in plan.formats:
        fp32 = estimate(replace(c, table_bits=32, linear_bits=32), num_items, profile.serving.max_history,
                        profile.hardware.gflops, (fmt,)).file_bytes[fmt]
        as_int8 = replace(c, table_bits=8, linear_bits=8)
        int8 = estimate(as_int8, num_items, profile.serving.max_history, profile.hardware.gflops, (fmt,)).file_bytes[fmt]
        if not int8_scores(as_int8, num_items):  # the estimate counts the second copy itself when it has one
            int8 += num_items * width
        out[fmt] = [p for p, size in (("fp32", fp32), ("int8", int8))
                    if size <= b.model_bytes and (p == "fp32" or profile.hardware.int8)]
    return out


def export_jobs(plan: PlanResult, profile: DeviceProfile, num_items: int) -> list[ExportJob]:
    """The float student's fp32/int8 exports that fit by estimate, and the plan's compressed student."""
    precisions = float_precisions(plan, profile, num_items)
    jobs = []
    c = plan.candidate
    rank = f"item table factorized at rank {c.embedding_rank} (SVD, fine-tuned)" if c.embedding_rank else ""
    table = (f"product-quantized item table: {c.pq_subspaces} uint8 codes an item + faiss codebooks, stored once"
             if c.pq_subspaces else f"toolkit.compression weight-only: int{c.table_bits} table stored once"
             if c.table_bits < 32 else "")
    weights = table + (", int8 linears" if c.linear_bits < 32 else "")
    serving = "two-stage serving (cluster centroids, then the probed clusters' members)" if c.two_stage else ""
    compressed = "; ".join(x for x in (rank, weights.lstrip(", "), serving) if x) or "none"
    jobs = []
    for fmt in plan.formats:
        for p in precisions[fmt]:
            method = "int8" if p == "int8" else "none"
            jobs.append(ExportJob(f"model.{p}{SUFFIX[fmt]}", fmt, p, method, "float", QUANTIZATION[(fmt, method)]))
        if c.compressed:
            jobs.append(ExportJob(f"model.compressed{SUFFIX[fmt]}", fmt, c.precision, "compressed", "compressed",
                                  compressed))
    return jobs


def analytic_latency(plan: PlanResult, profile: DeviceProfile, num_items: int) -> dict[str, float]:
    """The plan's analytic device latency (FLOPs / GFLOP/s + per-request overhead) per (format, source)."""
    c = plan.candidate
    out = {}
    for fmt in plan.formats:
        for source, cand in (("float", replace(c, table_bits=32, linear_bits=32, embedding_rank=0)), ("compressed", c)):
            est = estimate(cand, num_items, profile.serving.max_history, profile.hardware.gflops, (fmt,))
            out[f"{fmt}/{source}"] = est.latency_ms[fmt]
    return out


def export_artifacts(models: dict[str, object], jobs: list[ExportJob], profile: DeviceProfile, split: Split, out: Path,
                     candidates: int, k: int, float_metrics: Metrics, log=print,
                     analytic: dict[str, float] | None = None, two_stage: tuple | None = None) -> list[ArtifactRecord]:
    """Export every job's model into `out` and check each artifact in its runtime.

    models: source name ("float", "compressed") -> torch model. reference.npz gets each source's
    PyTorch outputs on real test histories: every artifact's parity is against its own source.
    two_stage: (ClusterIndex, probe): the compressed model is served two-stage (export.two_stage).
    """
    import torch

    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.serving import ServingModel
    from toolkit.profiler.parity import write_reference

    def serving_graph(source: str, split_table: bool = False):
        if source == "compressed" and two_stage is not None:
            from export.two_stage import TwoStageServing

            return TwoStageServing(models[source], candidates, *two_stage, allow_repeats=split.allow_repeats)
        return ServingModel(models[source], candidates, split_table=split_table, allow_repeats=split.allow_repeats)

    max_history = profile.serving.max_history
    calibration = torch.from_numpy(pad_histories(split.train[:CALIBRATION_HISTORIES], max_history))
    history = pad_histories(split.history("test")[:PARITY_HISTORIES], max_history)
    write_reference(out / REFERENCE_FILE, history,
                    {source: reference_outputs(serving_graph(source).eval(), history) for source in models})
    artifacts = []
    for job in jobs:
        int8 = job.method == "int8"
        serving = serving_graph(job.source, split_table=int8)
        path = out / job.name
        with quiet_exporters():
            if job.format == "executorch":
                export_executorch(serving, path, max_history, calibration if int8 else None)
            else:
                export_onnx(serving, path, max_history, int8=int8)
        # an int8 table's scores get activations quantized at run time too (ServingModel.int8_scores)
        quantized_at_export = int8 or getattr(serving, "int8_scores", False)
        parity_min = PARITY_MIN_AGREEMENT["quantized at export" if quantized_at_export else "same weights"]
        artifact = check_artifact(path, job, split, profile.hardware.threads, k, float_metrics, parity_min)
        artifact.analytic_ms = (analytic or {}).get(f"{job.format}/{job.source}")
        log(f"  {job.name}: {format_bytes(artifact.bytes)}, test {artifact.metrics.text()} through {job.format}, "
            f"top-10 agreement {artifact.parity['top10_agreement']:.3f} with the {job.source} model")
        artifacts.append(artifact)
    return artifacts


def reference_outputs(serving, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch serving graph's (scores, items) for each padded history (R, L)."""
    import torch

    with torch.no_grad():
        rows = [serving(torch.from_numpy(h[None])) for h in history]
    return np.concatenate([r[0].numpy() for r in rows]), np.concatenate([r[1].numpy() for r in rows])


def check_artifact(path: Path, job: ExportJob, split: Split, threads: int, k: int, float_metrics: Metrics,
                   parity_min: float) -> ArtifactRecord:
    """Parity against the stored outputs of its source model and quality through the artifact's runtime."""
    from export.runtime import Predictor
    from toolkit.training.evaluate import evaluate_topk
    from toolkit.profiler.parity import load_reference, measure_parity

    predictor = Predictor(path, threads=threads)
    parity = measure_parity(predictor.predict, load_reference(path.parent / REFERENCE_FILE, job.source))
    metrics = evaluate_topk(predictor.predict, split, "test", predictor.max_history, k)
    data = path.read_bytes()
    return ArtifactRecord(format=job.format, precision=job.precision, path=path.name, bytes=len(data),
                          sha256=hashlib.sha256(data).hexdigest(), quantization=job.quantization,
                          source=job.source, metrics=metrics, float_metrics=float_metrics, parity=parity,
                          parity_min=parity_min)


def profile_artifacts_(build_dir: Path, profile: DeviceProfile, manifest: Manifest, log=print) -> list[ArtifactProfile]:
    """Profile every artifact of a build in its runtime (a fresh process each), attach the result to
    its manifest record, write report.json / report.md / plots and log the verdict table."""
    from toolkit.profiler.calibrate import CalibrationCache
    from toolkit.profiler.recommend import recommend
    from toolkit.profiler.records import ProfileRequest, Quality
    from toolkit.profiler.run import profile_artifact
    from toolkit.report.markdown import verdict_table
    from toolkit.report.write import write_report

    calibrations = CalibrationCache()
    natives = native_clients({Path(a.path).suffix.lower() for a in manifest.artifacts}, log, profile)
    results = []
    pop = manifest.popularity["test"]
    for a in manifest.artifacts:
        log(f"  profiling {a.path} against {profile.name} in a fresh process ...")
        quality = Quality(k=a.metrics.k, ndcg=a.metrics.ndcg, hr=a.metrics.hr, users=a.metrics.users,
                          undetermined=a.metrics.undetermined, float_ndcg=a.float_metrics.ndcg,
                          popularity_ndcg=pop.ndcg)
        known = ProfileRequest(precision=a.precision, source=a.source, parity_min=a.parity_min, quality=quality,
                               analytic_ms=a.analytic_ms, reference=Path(build_dir) / REFERENCE_FILE)
        a.profile = profile_artifact(Path(build_dir) / a.path, profile, calibrations, known=known,
                                     native=natives.get(Path(a.path).suffix.lower()))
        results.append(a.profile)
    manifest.recommended = recommend(results, profile.serving.formats, manifest.plan["quality_tolerance"],
                                     manifest.plan.get("unfit_formats"))
    write_report(Path(build_dir), profile, results, plan=manifest.plan, serving=manifest.serving.to_dict(),
                 recommended=manifest.recommended, warnings=manifest.warnings,
                 data=manifest.data.to_dict() if manifest.data is not None else None)
    log("\n" + verdict_table(profile, results))
    return results


def _native_client(log):
    """The native C++ client of the .pte (runtime_demo/cpp), built once; None where it cannot be built."""
    try:
        from toolkit.profiler.native import native_client
    except ImportError:
        return None
    return native_client(log=log)


def native_clients(suffixes: set[str], log, profile: DeviceProfile | None = None) -> dict[str, object]:
    """Where each artifact suffix asked for runs, built once: ".pte" the ExecuTorch C++ client, ".onnx" the
    ONNX Runtime C API client, or for a browser profile headless Chromium with onnxruntime-web (else the
    native one); a suffix whose client cannot be had is left out (said through log)."""
    from toolkit.profiler.browser import browser_client
    from toolkit.profiler.onnx_client import onnx_client

    browser = browser_client(log) if ".onnx" in suffixes and profile is not None and profile.serving.web_runtime else None
    clients = {".pte": _native_client(log) if ".pte" in suffixes else None,
               ".onnx": browser or (onnx_client(log) if ".onnx" in suffixes else None)}
    return {k: v for k, v in clients.items() if v is not None}


def _short_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
