"""The recipe: data → teacher → priors → plan → student (each trial distilled, compressed and exported
on the graph that ships) → evaluate → artifacts (the rest exported, every file checked in its runtime)
→ profile → install, top to bottom in `build`.

`prepare(BuildConfig)` checks everything that can be checked without training (the profile, the
data file, the output folder) and takes no more than a second; the CLI runs it before torch is
imported. `build(BuildConfig)` then runs the line. Training, planning and model selection get the
split with its test targets sealed (`Split.sealed`): reading one there raises.

The build is written into a staging folder next to `--out` and swapped in atomically only when
complete (toolkit/recipe/output.py): a failed or interrupted build leaves the previous one as it was.
Every stage runs inside `step(name)`, so an unexpected error names the stage it happened in, and its
time is in the manifest's `steps_seconds`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import toolkit
from toolkit.core.contract import ITEMS_FILE, MANIFEST_FILE
from toolkit.core.errors import ToolkitError
from toolkit.recipe.manifest import Manifest, ModelRecord
from toolkit.core.profiles import DeviceProfile, load_profile
from toolkit import teachers
from toolkit.data import (Dataset, DataSummary, Split, check_data_path, check_encoding, check_repeats, first_users,
                          load_dataset, split_leave_one_out, summarize)
from toolkit.profiler.judge import below_popularity
from toolkit.recipe.config import BuildConfig, StudentConfig
from toolkit.recipe.output import OutputDir, prepare_output
from toolkit.recipe.records import Build, Data
from toolkit.training.trained import TrainedModel, evaluated
from toolkit.teachers.ensemble import TeacherConfig
from toolkit.training.evaluate import Metrics, cutoff_for, evaluate_model, evaluate_popularity


@dataclass
class Prepared:
    """What `prepare` checked: the profile and the output folder (locked until the build ends)."""

    profile: DeviceProfile
    output: OutputDir
    data_path: Path | None


@contextlib.contextmanager
def step(name: str, seconds: dict[str, float]):
    """Run one stage of the recipe: its time is recorded, and an unexpected error is tagged with its name."""
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
    teachers.check(cfg.teacher, data_path)
    check_student(cfg.student)
    out = Path(cfg.out) if cfg.out is not None else Path("builds") / profile.name
    protected = [cache_dir()] + ([data_path] if data_path else []) + ([Path(profile.path)] if profile.path else [])
    protected += teachers.inputs(cfg.teacher)
    return Prepared(profile=profile, output=prepare_output(out, protected, log), data_path=data_path)


def build(cfg: BuildConfig, log=print, prepared: Prepared | None = None) -> Build:
    """Run the whole line for one device profile and write the build directory."""
    from toolkit.planning.search import plan
    from toolkit.recipe.own_student import load_own_student, own_student
    from toolkit.recipe.profiling import profile_artifacts_
    from toolkit.recipe.student import ship_planned

    start = time.perf_counter()
    prepared = prepared or prepare(cfg, log)
    profile, output = prepared.profile, prepared.output
    seconds: dict[str, float] = {}
    staging = None
    try:
        import torch

        torch.manual_seed(cfg.seed)
        with step("data", seconds):
            data = load_data(cfg, profile, log)
        max_history, k = profile.serving.max_history, cutoff_for(profile.serving.top_k)
        own = cfg.student.module is not None  # --student MODULE:FACTORY: toolkit/recipe/own_student.py, no plan
        if own:  # probed on real histories before the teacher trains: a bad module fails at once
            with step("student", seconds):
                loaded = load_own_student(cfg, data.sealed, profile, data.item_ids)
        with step("teacher", seconds):
            teacher = teachers.obtain(cfg.teacher, teachers.TeacherInputs(
                data.sealed, data.key, max_history, cfg.seed, data.dataset, top_k=cfg.student.distill.top_k), log)
        if not own:
            with step("priors", seconds):
                priors = measure_priors_for(cfg, data.sealed, data.key, max_history, teacher, log)
            with step("plan", seconds):
                the_plan = plan(profile, data.split.num_items, priors, cfg.plan, log)
        with step("evaluate", seconds):
            popularity = {p: evaluate_popularity(data.split, p, k) for p in ("valid", "test")}
            log(f"popularity baseline: test {popularity['test'].text()}")
            teacher_record = evaluated(teacher, data.split, k, log, "teacher", teachers.phases(cfg.teacher)).record(
                cache_key=_short_hash(teacher.cache_key), kind=cfg.teacher.kind, **teacher.extra)
            warnings = teacher_warnings(teacher_record, popularity, log)
        staging = output.staging(toolkit.__version__, profile.name)
        if own:
            with step("student", seconds):
                shipped = own_student(cfg, data.sealed, data.split, teacher, profile, staging, log, loaded,
                                      data.item_ids)
            (staging / ITEMS_FILE).write_text(json.dumps(shipped.item_ids, ensure_ascii=False))
        else:  # student (each trial distilled, compressed, exported as it ships), export, check; items.json
            shipped = ship_planned(the_plan, teacher, data, profile, cfg, k, staging, log, lambda name: step(name, seconds))
        extra = {"module": cfg.student.module} if own else {"plan_config": cfg.plan.to_dict()}
        manifest = Manifest(toolkit_version=toolkit.__version__, profile=profile, dataset=data.dataset.summary(),
                            data=data.summary, seed=cfg.seed, serving=shipped.serving, popularity=popularity,
                            teacher=teacher_record,
                            student=shipped.student.record(distill=cfg.student.distill.to_dict(),
                                                           train=replace(cfg.student.train, seed=cfg.seed).to_dict(),
                                                           dropout=cfg.student.dropout, **extra),
                            plan=shipped.plan, artifacts=shipped.artifacts, build_seconds=0.0, steps_seconds=seconds,
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
    return Build(out=output.path, manifest=manifest, seconds=time.perf_counter() - start)


def check_student(s: StudentConfig) -> None:
    """--student MODULE:FACTORY, checked before anything is loaded (no torch): the spec, the file."""
    if s.module is None:
        return
    from toolkit.models.user_module import parse_module_spec

    module, _ = parse_module_spec(s.module, "--student")
    if (module.endswith(".py") or "/" in module) and not Path(module).is_file():
        raise ToolkitError(f"--student {s.module!r}: no such file {module}")


def load_data(cfg: BuildConfig, profile: DeviceProfile | None, log) -> Data:
    """The build's data with its split and summary (logged); with `profile`, the catalogue checked
    against what it serves."""
    dataset, split, key = load_split(cfg, profile)
    summary = log_data_summary(dataset, split, cfg.repeats, log)
    return Data(dataset=dataset, split=split, key=key, item_ids=list(dataset.item_ids), summary=summary)


def load_split(cfg: BuildConfig, profile: DeviceProfile | None) -> tuple[Dataset, Split, dict]:
    """The build's data (its first `max_users` users), its leave-one-out split, and the data key
    that the cached teacher and priors are found by (`build` and `train-teacher` alike)."""
    dataset = load_dataset(cfg.data, cfg.user_col, cfg.item_col, cfg.time_col, cfg.encoding, cfg.time_format)
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    if profile is not None:
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


def measure_priors_for(cfg: BuildConfig, split: Split, data_key: dict, max_history: int, teacher: TrainedModel, log):
    """The plan's quality expectations, from proxy students on this data (the teacher's members reused
    where they are the same recipe)."""
    from toolkit.training.priors import measure_priors

    t = cfg.teacher
    same_recipe = (teachers.kind(t).plain_members and t.layers == 1 and t.heads == 1
                   and t.dropout == cfg.priors.dropout
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


def _short_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
