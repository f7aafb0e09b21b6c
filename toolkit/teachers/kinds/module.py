"""`--teacher MODULE:FACTORY`: the user's own torch module, loaded and probed on real histories
(`toolkit.teachers.module.load_module_teacher`); its top-K soft labels per training position are
computed once and cached."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.teachers.protocol import TeacherInputs, check_graph_flags

if TYPE_CHECKING:
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.trained import TrainedModel


class ModuleTeacher:
    flag = "--teacher"
    value = "MODULE:FACTORY"
    summary = "your own torch module, MODULE a dotted module name or a path to a .py file"
    trainable = False
    plain_members = False
    phases = ("valid", "test")

    def check(self, cfg: TeacherConfig, data_path: Path | None) -> None:
        from toolkit.models.user_module import parse_module_spec

        module, _ = parse_module_spec(cfg.module or "", self.flag)
        if module.endswith(".py") and not Path(module).is_file():
            raise ToolkitError(f"--teacher {cfg.module!r}: no such file {module}")
        check_graph_flags(cfg, reads_graph=False)

    def inputs(self, cfg: TeacherConfig) -> list[Path]:
        return []

    def obtain(self, cfg: TeacherConfig, data: TeacherInputs, log) -> TrainedModel:
        from toolkit.models.sasrec import count_parameters
        from toolkit.teachers.module import load_module_teacher
        from toolkit.training.trained import TrainedModel

        start = time.perf_counter()
        teacher = load_module_teacher(cfg.module, data.dataset, data.split, data.max_history)
        cached = teacher.prepare_scores(data.split, data.data_key, data.top_k, log)
        extra = {"module": cfg.module, "file_sha256": teacher.file_sha256, "weights_sha256": teacher.weights_sha256,
                 "relational": "none (an external module has no item vectors: logit distillation only)"}
        log(f"teacher: {cfg.module} (external module; its top-{data.top_k} per training position "
            f"{'loaded from cache' if cached else 'computed'})")
        return TrainedModel(model=teacher, config=cfg.to_dict(), parameters=count_parameters(teacher), metrics={},
                            seconds=time.perf_counter() - start, cached=cached, cache_key=teacher.key(), extra=extra)
