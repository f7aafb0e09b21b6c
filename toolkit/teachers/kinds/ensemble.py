"""`--teacher ensemble` (the default): an ensemble of SASRec members, trained once and cached
(`toolkit.teachers.ensemble.train_teacher`). `trained_ensemble` is shared with the knowledge-graph
kind, whose members carry a graph (`toolkit.teachers.kinds.kg`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.teachers.protocol import TeacherInputs, check_graph_flags

if TYPE_CHECKING:
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel


class EnsembleTeacher:
    flag = "--teacher"
    value = "ensemble"
    summary = "the default"
    trainable = True
    plain_members = True
    phases = ("valid", "test")

    def check(self, cfg: TeacherConfig, data_path: Path | None) -> None:
        check_graph_flags(cfg, reads_graph=False)

    def inputs(self, cfg: TeacherConfig) -> list[Path]:
        return []

    def obtain(self, cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
        return trained_ensemble(cfg, data, log)


def trained_ensemble(cfg: TeacherConfig, data: TeacherInputs, log, kg=None, graph: dict | None = None) -> TrainedModel:
    """The ensemble (with `kg`, a `toolkit.teachers.graph.KnowledgeGraph`: the knowledge-graph teacher,
    `graph` its summary for the manifest), trained or loaded from the cache, with its manifest extras
    (how many ranks trained it, its members and their step budgets)."""
    from toolkit.models.sasrec import count_parameters
    from toolkit.teachers.ensemble import train_teacher
    from toolkit.training.trained import TrainedModel

    teacher = train_teacher(cfg, data.split, data.data_key, data.max_history, data.seed, log, world=data.world, kg=kg)
    ranks = teacher.trained_with["world_size"]
    how = ("loaded from cache" if teacher.cached else f"trained in {teacher.seconds:.0f} s") + (
        f", trained on {ranks} ranks ({teacher.trained_with['backend']})" if ranks > 1 else "")
    what = "knowledge-graph teacher" if kg is not None else "teacher"
    steps = "" if teacher.cached else "; steps " + ", ".join(
        f"{n:,}" + (" (capped)" if c else "") for n, c in zip(teacher.member_steps, teacher.member_capped))
    log(f"{what} ({teacher.members} × dim {cfg.dim}, {cfg.layers} block(s); {how}{steps})")
    budgets = {} if teacher.cached else {"member_steps": teacher.member_steps, "member_capped": teacher.member_capped}
    return TrainedModel(model=teacher.model, config=cfg.to_dict(), parameters=count_parameters(teacher.model),
                        metrics={}, seconds=teacher.seconds, cached=teacher.cached, cache_key=teacher.key,
                        extra={"trained_with": teacher.trained_with, "members": teacher.members, **budgets,
                               **({"knowledge_graph": graph} if kg is not None else {})})
