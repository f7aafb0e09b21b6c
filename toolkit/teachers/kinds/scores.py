"""`--teacher-scores FILE.parquet`: precomputed soft labels from any framework, read and checked
against the data (`toolkit.teachers.scores.read_teacher_scores`). It answers the training
prefixes only, so it is measured on validation alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.teachers.protocol import TeacherInputs, check_graph_flags

if TYPE_CHECKING:
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel


class ScoresFileTeacher:
    flag = "--teacher-scores"
    value = "FILE.parquet"
    summary = "precomputed soft labels: columns user, position, items, scores"
    trainable = False
    plain_members = False
    phases = ("valid",)

    def check(self, cfg: TeacherConfig, data_path: Path | None) -> None:
        if not (cfg.scores and Path(cfg.scores).is_file()):
            raise ToolkitError(f"--teacher-scores {cfg.scores}: no such file")
        check_graph_flags(cfg, reads_graph=False)

    def inputs(self, cfg: TeacherConfig) -> list[Path]:
        return [Path(cfg.scores)] if cfg.scores else []

    def obtain(self, cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
        from toolkit.models.sasrec import count_parameters
        from toolkit.teachers.scores import read_teacher_scores
        from toolkit.training.trained import TrainedModel

        start = time.perf_counter()
        teacher = read_teacher_scores(cfg.scores, data.dataset, data.split, data.max_history)
        rows = len(teacher.scores.users)
        total = sum(len(x) for x in data.split.train)
        extra = {"scores_file": cfg.scores, "sha256": teacher.sha256, "rows": rows,
                 "positions_covered": rows / max(total, 1),
                 "relational": "none (precomputed scores have no item vectors: logit distillation only)"}
        log(f"teacher: precomputed scores {cfg.scores} ({rows:,} rows, {rows / max(total, 1):.0%} of the training "
            "positions; the others keep the hard label only)")
        return TrainedModel(model=teacher, config=cfg.to_dict(), parameters=count_parameters(teacher), metrics={},
                            seconds=time.perf_counter() - start, cached=False, cache_key=teacher.key(), extra=extra)
