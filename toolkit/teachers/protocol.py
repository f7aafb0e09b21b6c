"""What the build needs from a teacher kind (`TeacherConfig.kind`), and what it gives one.

A kind is checked before anything is loaded (`check`: no torch, under a second, with the files it
reads named by `inputs` so the output folder may not overwrite them), then obtained (`obtain`:
trained or loaded from the cache, or a user's module or scores file loaded and checked against the
data) as a `toolkit.training.trained.TrainedModel` whose `extra` holds its manifest extras. It is
measured on `phases`. The registry of kinds is `toolkit.teachers.registry.KINDS`.

This module imports nothing heavy: the CLI reads the registry to write its help.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from toolkit.core.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.data import Dataset, Split
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel


@dataclass
class TeacherInputs:
    """What a teacher is obtained from: the split (sealed: no test target), the data key its cache is
    found by, the serving window and seed, the dataset (item and user ids: every kind but the
    ensemble needs it), the ranks that train it (None: one process) and how many soft labels a
    position keeps (the student's `DistillConfig.top_k`: a module teacher's labels are taken once)."""

    split: Split
    data_key: dict
    max_history: int
    seed: int
    dataset: Dataset | None = None
    world: object | None = None  # toolkit.training.distributed.World
    top_k: int = 0


@runtime_checkable
class Teacher(Protocol):
    """One teacher kind. Its name (the `KINDS` key) is the `TeacherConfig.kind` value."""

    flag: str  # the CLI flag that picks it: --teacher or --teacher-scores
    value: str  # what that flag takes: the kind's own name, MODULE:FACTORY, FILE.parquet
    summary: str  # a few words for --help
    trainable: bool  # the toolkit trains (and caches) it: `python -m toolkit train-teacher` can
    plain_members: bool  # its members are SASRec trained from scratch by TeacherConfig (the priors may reuse one)
    phases: tuple[str, ...]  # what it is measured on: ("valid", "test"), or ("valid",) for training prefixes only

    def check(self, cfg: TeacherConfig, data_path: Path | None) -> None:
        """Its settings and files, before anything is loaded (no torch): ToolkitError naming the flag."""
        ...

    def inputs(self, cfg: TeacherConfig) -> list[Path]:
        """The files it reads (the build's output folder may not be one of them)."""
        ...

    def obtain(self, cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
        """The teacher, trained or cached or loaded and checked; `extra` holds its manifest extras."""
        ...


def check_graph_flags(cfg: TeacherConfig, reads_graph: bool) -> None:
    """--kg and --kg-links come together, and only for a kind that reads a graph."""
    if (cfg.kg_triples is None) != (cfg.kg_links is None):
        raise ToolkitError("--kg and --kg-links go together: a triples file and an item -> entity links file")
    if not reads_graph and cfg.kg_triples is not None:
        raise ToolkitError(f"--kg is for the knowledge-graph teacher, not --teacher {cfg.module or cfg.kind}")
