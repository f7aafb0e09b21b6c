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


def evaluated(trained: TrainedModel, split: Split, k: int, log, what: str,
              phases: tuple[str, ...] = ("valid", "test")) -> TrainedModel:
    """`trained` with its valid and test metrics at the build's cutoff (the split unsealed: after every choice)."""
    from toolkit.training.evaluate import evaluate_model

    trained.metrics = {p: evaluate_model(trained.model, split, p, k) for p in phases}
    if "test" in trained.metrics:
        log(f"{what}: test {trained.metrics['test'].text()} (valid NDCG@{k} {trained.metrics['valid'].ndcg:.4f})")
    else:
        log(f"{what}: valid {trained.metrics['valid'].text()} (no test figure: it answers training prefixes only)")
    return trained
