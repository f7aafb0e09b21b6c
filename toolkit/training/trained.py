"""A trained model with its measured quality: what a teacher kind (`toolkit.teachers`) returns and the
recipe evaluates and writes into the manifest (`record`). It lives here, below both, so a teacher
never imports the recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.core.manifest import ModelRecord
from toolkit.training.evaluate import Metrics


@dataclass
class TrainedModel:
    """A trained teacher or student with its measured quality."""

    model: object  # torch.nn.Module (SASRec, Ensemble, KGTeacher, a user's module or scores)
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
