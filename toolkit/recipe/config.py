"""What a build is told: `BuildConfig` and the configs it holds. The CLI only overrides these fields;
every field reaches the code it configures (the student's training and distillation settings are what
every trial, fine-tune and soft label of the build uses, and what the manifest records)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from toolkit.planning.candidates import PlanConfig
from toolkit.teachers.ensemble import TeacherConfig
from toolkit.training.distill import DistillConfig
from toolkit.training.loop import TrainConfig
from toolkit.training.priors import PriorConfig


@dataclass
class StudentConfig:
    """How the build's student learns: the plan chooses its architecture and compression (toolkit/planning),
    these settings train every candidate it tries. `module` ("MODULE:FACTORY"): a user's own student
    instead of the planned SASRec (toolkit/recipe/own_student.py)."""

    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    module: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


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
    student: StudentConfig = field(default_factory=StudentConfig)  # how the planned student trains
    plan: PlanConfig = field(default_factory=PlanConfig)  # which students the plan may choose for the profile
    priors: PriorConfig = field(default_factory=PriorConfig)  # the plan's quality expectations

    def with_epochs(self, epochs: int) -> BuildConfig:
        """Every training loop capped at `epochs` (teacher, priors, student, compression fine-tunes)."""
        def cap(t: TrainConfig) -> TrainConfig:
            return replace(t, epochs=min(t.epochs, epochs))

        return replace(self, teacher=replace(self.teacher, train=cap(self.teacher.train)),
                       student=replace(self.student, train=cap(self.student.train)),
                       priors=replace(self.priors, train=cap(self.priors.train)))
