"""The teacher kinds, listed once (`KINDS`: `TeacherConfig.kind` -> its `Teacher`), and what the recipe
and the CLI call: `check` before anything loads, `inputs`, `obtain`, `phases`, and `train_only` for
`python -m toolkit train-teacher`. The CLI's help and choices are read from here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.teachers.kinds.ensemble import EnsembleTeacher
from toolkit.teachers.kinds.kg import KnowledgeGraphTeacher
from toolkit.teachers.kinds.module import ModuleTeacher
from toolkit.teachers.kinds.scores import ScoresFileTeacher
from toolkit.teachers.protocol import Teacher, TeacherInputs

if TYPE_CHECKING:
    from toolkit.data import Dataset, Split
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel

KINDS: dict[str, Teacher] = {
    "ensemble": EnsembleTeacher(),
    "kg": KnowledgeGraphTeacher(),
    "external": ModuleTeacher(),
    "scores": ScoresFileTeacher(),
}


def kind(cfg: TeacherConfig) -> Teacher:
    """The kind `cfg.kind` names; a name not in `KINDS` is a one-line error listing them."""
    teacher = KINDS.get(cfg.kind)
    if teacher is None:
        valid = ", ".join(f"{name} ({t.flag} {t.value})" for name, t in KINDS.items())
        raise ToolkitError(f"TeacherConfig.kind {cfg.kind!r}: not valid; valid: {valid}")
    return teacher


def named() -> list[str]:
    """The kinds `--teacher KIND` picks by name (ensemble, kg); the others by what they read."""
    return [name for name, t in KINDS.items() if t.flag == "--teacher" and t.value == name]


def picked_by(flag: str) -> str:
    """The kind `flag` picks with a value that is no kind's name: --teacher MODULE:FACTORY the user's
    module, --teacher-scores FILE the scores file."""
    return next(name for name, t in KINDS.items() if t.flag == flag and t.value != name)


def trainable() -> list[str]:
    """The kinds the toolkit trains and caches (what `train-teacher` trains)."""
    return [name for name, t in KINDS.items() if t.trainable]


def usage(names: list[str] | None = None, last: str = ", or ") -> str:
    """'ensemble (the default), kg (knowledge-graph teacher), or MODULE:FACTORY (...)': how `--teacher`
    picks each of `names` (default: every kind `--teacher` picks), for --help."""
    names = names if names is not None else [n for n, t in KINDS.items() if t.flag == "--teacher"]
    parts = [f"{KINDS[n].value} ({KINDS[n].summary})" for n in names]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + last + parts[-1]


def check(cfg: TeacherConfig, data_path: Path | None) -> None:
    """The teacher's settings and files, checked before anything is loaded or trained (no torch); a
    `--teacher` value that is neither a kind's name nor MODULE:FACTORY names the kinds."""
    from toolkit.models.user_module import parse_module_spec

    teacher = kind(cfg)
    if teacher.flag == "--teacher" and teacher.value != cfg.kind:  # MODULE:FACTORY
        parse_module_spec(cfg.module or "", teacher.flag, others=", ".join(named()))
    teacher.check(cfg, data_path)


def inputs(cfg: TeacherConfig) -> list[Path]:
    """The files the teacher reads (the build's output folder may not be one of them)."""
    return kind(cfg).inputs(cfg)


def phases(cfg: TeacherConfig) -> tuple[str, ...]:
    """What the teacher is measured on (a scores file answers the training prefixes only: validation)."""
    return kind(cfg).phases


def obtain(cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
    """The teacher `cfg.kind` names: the ensemble or the knowledge-graph teacher (trained, cached), a
    user's module or a user's scores file (loaded, checked); `data.split` is sealed."""
    return kind(cfg).obtain(cfg, data, log)


def train_only(cfg: TeacherConfig, data_path: Path | None, load: Callable[[], tuple[Dataset, Split, dict]],
               max_history: int, seed: int, world=None, log=print) -> TrainedModel:
    """`build`'s teacher step alone (`python -m toolkit train-teacher`, on the ranks of `world`): it
    leaves in the cache the teacher that `build` with the same settings then loads. `load()` gives
    the build's (dataset, split, data key) (`toolkit.recipe.build.load_split`); one rank loads first
    (a first download of the default data). Its figure is validation only: test belongs to the build."""
    from toolkit.training.distributed import SINGLE
    from toolkit.training.evaluate import evaluate_model

    world = world or SINGLE
    check(cfg, data_path)
    if not kind(cfg).trainable:
        t = KINDS[cfg.kind]
        raise ToolkitError(f"train-teacher trains the toolkit's own teachers ({', '.join(trainable())}); a "
                           f"{t.flag} {t.value} teacher is already trained: give it to `build`")
    with world.main_first():
        dataset, split, data_key = load()
    sealed = split.sealed()
    teacher = obtain(cfg, TeacherInputs(sealed, data_key, max_history, seed, dataset, world), log)
    if world.is_main:
        teacher.metrics = {"valid": evaluate_model(teacher.model, sealed, "valid")}
    return teacher
