"""The toolkit as a library: each stage of a build as one function with a typed result.

    import toolkit

    data = toolkit.load_dataset()                              # MovieLens-100K (or a path)
    profile = toolkit.load_profile("mobile-arm")
    teacher = toolkit.train_teacher(data)
    plan = toolkit.plan(profile, data, toolkit.measure_priors(data))   # pure: ranked trials, nothing trained
    candidate = plan.trials[0].candidate
    student = toolkit.distill(teacher, candidate, data)
    small = toolkit.compress(student.model, teacher, data, candidate)
    files = toolkit.export(small.model, profile, "out/", data=data)
    verdict = toolkit.profile_artifact(files[0].path, profile, data=data)

or the whole line, as `python -m toolkit build` runs it: `toolkit.build(toolkit.BuildConfig(profile=...))`.
The command line and bench/ use these functions; `toolkit.__all__` is the contract. Heavy libraries
(torch, executorch, onnxruntime) are imported inside the functions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from toolkit.core.profiles import DeviceProfile
from toolkit.planning.candidates import Candidate, PlanConfig
from toolkit.recipe.config import BuildConfig, StudentConfig
from toolkit.recipe.records import Build, Data
from toolkit.training.trained import TrainedModel
from toolkit.teachers.ensemble import TeacherConfig
from toolkit.training.priors import PriorConfig


def prepare(config: BuildConfig | None = None, log=print):
    """Every check of a build that needs no training, in well under a second and without torch: the
    profile, the data file, the teacher's settings, the output folder (locked until the build ends).
    Raises ToolkitError (one line) on bad input. Pass the result to `build` (`prepared=`)."""
    from toolkit.recipe.build import prepare as check

    return check(config or BuildConfig(), log)


def build(config: BuildConfig | None = None, log=print, prepared=None) -> Build:
    """The whole line for one device profile (`python -m toolkit build`): the build folder written
    atomically at `config.out` (default builds/<profile>), its manifest, its verdicts (`Build.fits`)."""
    from toolkit.recipe.build import build as run

    return run(config or BuildConfig(), log=log, prepared=prepared)


def list_profiles() -> list[DeviceProfile]:
    """Every device profile shipped in device_profiles/, loaded and validated."""
    from toolkit.core.profiles import list_profiles as names, load_profile as load

    return [load(name) for name in names()]


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A device profile by name (device_profiles/NAME.toml) or path to a .toml file."""
    from toolkit.core.profiles import load_profile as load

    return load(str(name_or_path))


def load_dataset(path: str | Path | None = None, *, user_col: str | None = None, item_col: str | None = None,
                 time_col: str | None = None, encoding: str = "utf-8", time_format: str | None = None,
                 repeats: str = "drop", max_users: int = 0, eval_users: int = 10_000, seed: int = 0,
                 log=None) -> Data:
    """Interactions (MovieLens-100K when `path` is None; else CSV/TSV/Parquet/.inter, columns recognised
    as `--data` does) with their leave-one-out split, as a build reads them."""
    from toolkit.recipe.build import load_data

    cfg = BuildConfig(data=None if path is None else str(path), user_col=user_col, item_col=item_col,
                      time_col=time_col, encoding=encoding, time_format=time_format, repeats=repeats,
                      max_users=max_users, eval_users=eval_users, seed=seed)
    return load_data(cfg, None, log or (lambda *_: None))


def train_teacher(data: Data, config: TeacherConfig | None = None, *, max_history: int = 50, seed: int = 0,
                  log=None) -> TrainedModel:
    """The build's teacher on `data` (trained, or loaded from the cache the build shares), any kind
    `config.kind` names; its validation NDCG@10 in `metrics["valid"]` (test belongs to the build)."""
    from toolkit import teachers
    from toolkit.training.evaluate import evaluate_model

    config = config or TeacherConfig()
    teachers.check(config, Path(data.dataset.path) if data.dataset.path else None)
    inputs = teachers.TeacherInputs(data.sealed, data.key, max_history, seed, data.dataset,
                                    top_k=StudentConfig().distill.top_k)
    teacher = teachers.obtain(config, inputs, log or (lambda *_: None))
    teacher.metrics = {"valid": evaluate_model(teacher.model, data.sealed, "valid")}
    return teacher


def measure_priors(data: Data, config: PriorConfig | None = None, *, plan: PlanConfig | None = None,
                   teacher: TrainedModel | None = None, teacher_config: TeacherConfig | None = None,
                   max_history: int = 50, seed: int = 0, log=None):
    """The plan's quality expectations on `data` (toolkit.training.priors.QualityPriors): from-scratch
    proxy students of the widths the plan may choose, cached like the teacher. Given the `teacher` and
    the `teacher_config` it was trained with, its members are reused where they are the proxies' own
    recipe, as a build does (the same priors as the build's)."""
    from toolkit.recipe.build import measure_priors_for

    reuse = teacher is not None and teacher_config is not None
    cfg = BuildConfig(priors=config or PriorConfig(), plan=plan or PlanConfig(), seed=seed,
                      teacher=teacher_config if reuse else TeacherConfig(kind="scores"))  # "scores": nothing to reuse
    return measure_priors_for(cfg, data.sealed, data.key, max_history, teacher if reuse else None,
                              log or (lambda *_: None))


def plan(profile: DeviceProfile, data: Data, priors, config: PlanConfig | None = None, log=None):
    """The students that fit `profile`, ranked (toolkit.planning.search.Plan): pure, nothing trained.
    Raises DoesNotFitError when no candidate fits by estimate."""
    from toolkit.planning.search import plan as rank

    return rank(profile, data.split.num_items, priors, config, log)


def distill(teacher: TrainedModel | None, student, data: Data, config: StudentConfig | None = None, *,
            max_history: int = 50, seed: int = 0):
    """A student distilled from `teacher` (None: labels only), as the build trains it
    (toolkit.training.loop.TrainResult: `model`, `valid`, steps, seconds). `student`: a `Candidate`
    (a float SASRec of its architecture, as the plan's trials), or your own causal `nn.Module`
    (`[B, L] -> [B, L, N]` scores, as `build --student`; probed on real histories first)."""
    from dataclasses import replace as with_seed

    from toolkit.recipe.student import distill_candidate

    config = config or StudentConfig()
    teacher_model = None if teacher is None else teacher.model
    if isinstance(student, Candidate):
        return distill_candidate(student, teacher_model, data.sealed, max_history, config, seed)
    from toolkit.models.user_model import UserModel
    from toolkit.models.user_module import check_module, probe_histories
    from toolkit.training.distill import distill as run
    from toolkit.training.loop import fit

    sealed = data.sealed
    student.eval()  # probed as served: no dropout
    check_module(student, probe_histories(sealed.train), sealed.num_items, max_history, "toolkit.distill student")
    model = UserModel(student, max_history, sealed.num_items)
    train = with_seed(config.train, seed=seed)
    if teacher_model is None:
        return fit(model.cfg, sealed, train, init=model, desc="student (own)")
    return run(teacher_model, model.cfg, sealed, train, config.distill, init=model, desc="student (own)")


def compress(model, teacher: TrainedModel | None, data: Data, config, *, student: StudentConfig | None = None,
             seed: int = 0, log=None):
    """`model` compressed (a copy) as `config` says: a `Candidate` (the plan's compression of it) or a
    `toolkit.compression.CompressConfig`. Returns toolkit.compression.CompressResult (`model`, `steps`)."""
    from toolkit.compression import CompressConfig, CompressResult
    from toolkit.compression import compress as run
    from toolkit.recipe.student import compress_candidate

    student = student or StudentConfig()
    teacher_model = None if teacher is None else teacher.model
    if isinstance(config, CompressConfig):
        return run(model, teacher_model, data.sealed, config, seed=seed, distill_cfg=student.distill, log=log)
    compressed, steps = compress_candidate(config, model, teacher_model, data.sealed, student, seed, log)
    return CompressResult(model=compressed, steps=steps)


def export(model, profile: DeviceProfile, out: str | Path, *, data: Data | None = None, int8: bool = False,
           name: str = "model"):
    """`model` behind the serving graph (export/serving.py: the artifact contract), written in each
    format `profile` serves into folder `out` (OUT/NAME.pte, OUT/NAME.onnx); `int8`: quantized at
    export (the .pte calibrated on `data`'s training histories). With `data`, items.json is written
    beside them. Returns toolkit.recipe.artifacts.ExportedFile per file."""
    from toolkit.recipe.artifacts import export_model

    return export_model(model, profile, Path(out), data=data, int8=int8, name=name)


def profile_artifact(path: str | Path, profile: DeviceProfile | str, *, data=None,
                     reference: str | Path | None = None, native: bool = True):
    """Measure an artifact (any .pte/.onnx with the artifact contract, built here or not) in its runtime,
    in a fresh process, and judge it against `profile` (toolkit.profiler.records.ArtifactProfile: `fits`,
    `checks`, `failures()`). `data`: interactions to measure its quality on (a `Data`, a file path, or a
    toolkit.profiler.records.QualityData naming its columns); `reference`: a reference.npz for parity;
    `native`: measure where the app runs it (the C++ or ONNX Runtime C client, headless Chromium for a
    browser profile) when that client can be built (said on stderr when it cannot)."""
    import sys

    from toolkit.profiler.records import QualityData
    from toolkit.profiler.run import profile_artifact as measure
    from toolkit.recipe.profiling import native_clients

    profile = load_profile(profile) if not isinstance(profile, DeviceProfile) else profile
    path = Path(path)
    natives = native_clients({path.suffix.lower()}, lambda msg: print(msg, file=sys.stderr), profile) if native else {}
    if isinstance(data, Data):  # the file it was read from, with the columns read (MovieLens-100K: None)
        d = data.dataset
        data = QualityData(path=d.path or None, user_col=d.columns.get("user"), item_col=d.columns.get("item"),
                           time_col=d.columns.get("time"), encoding=d.encoding)
    elif data is not None and not isinstance(data, QualityData):
        data = QualityData(path=str(data))
    return measure(path, profile, _calibrations(), native=natives.get(path.suffix.lower()),
                   reference=Path(reference) if reference is not None else None, data=data)


_CALIBRATIONS = []


def _calibrations():
    """This host's GFLOP/s per thread count, measured once a process (toolkit.profiler.calibrate)."""
    from toolkit.profiler.calibrate import CalibrationCache

    if not _CALIBRATIONS:
        _CALIBRATIONS.append(CalibrationCache())
    return _CALIBRATIONS[0]


def train_plan(plan, teacher: TrainedModel | None, data: Data, folder: str | Path,
               config: StudentConfig | None = None, *, seed: int = 0, log=None):
    """The plan's trials distilled from `teacher` (None: labels only), compressed and exported into
    `folder`, until the plan has its choice, as a build trains them (`plan` is updated: `record`,
    `choose`). Returns toolkit.recipe.student.PlannedStudent (`chosen`: the TrialResult kept in its
    folder under `folder`). Raises DoesNotFitError when no tried student fits by measured file size."""
    from toolkit.recipe.student import planned_student
    from toolkit.training.evaluate import cutoff_for

    k = cutoff_for(plan.profile.serving.top_k)
    return planned_student(plan, None if teacher is None else teacher.model, data, plan.profile,
                           config or StudentConfig(), seed, k, Path(folder), log or (lambda *_: None))


def train_trial(plan, trial, teacher: TrainedModel | None, data: Data, folder: str | Path,
                config: StudentConfig | None = None, *, seed: int = 0, log=None):
    """One trial of `plan` (e.g. `plan.trials[0]`, or the chosen `train_plan(...).chosen.trial` again
    with another seed or no teacher) distilled, compressed, its serving sized and its files exported
    into `folder`, without recording it in the plan. Returns toolkit.recipe.student.TrialResult."""
    from toolkit.recipe.student import run_trial
    from toolkit.training.evaluate import cutoff_for

    k = cutoff_for(plan.profile.serving.top_k)
    return run_trial(trial, plan.formats, None if teacher is None else teacher.model, data, plan.profile,
                     config or StudentConfig(), seed, k, Path(folder), log or (lambda *_: None))


def ship(trial, profile: DeviceProfile, folder: str | Path, log=None) -> list:
    """Every file a build ships for a trained trial (`train_plan(...).chosen` or `train_trial(...)`),
    written into `folder` with items.json and reference.npz and checked in its runtime (parity, test
    quality through the artifact). Returns toolkit.core.manifest.ArtifactRecord per file."""
    from toolkit.recipe.shipping import ship_trial

    return ship_trial(trial, profile, Path(folder), log)
