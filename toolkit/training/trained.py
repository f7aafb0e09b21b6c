"""A trained model with its measured quality: what a teacher kind (`toolkit.teachers`) returns and the
recipe evaluates and writes into the manifest (`record`). It lives here, below both, so a teacher
never imports the recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolkit.training.evaluate import Metrics


@dataclass
class ModelRecord:
    """A trained teacher or student and its quality in PyTorch (valid and test)."""

    config: dict
    parameters: int
    metrics: dict[str, Metrics]  # "valid", "test"
    train_seconds: float
    cached: bool = False
    epochs: int = 0
    # e.g. the teacher's cache key and `trained_with` ({"world_size": int, "backend": "gloo" | "nccl" |
    # null}: the run that trained it, which may be an earlier `train-teacher` when `cached`), the
    # student's distillation config
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"config": self.config, "parameters": self.parameters, "metrics": {p: m.to_dict() for p, m in self.metrics.items()},
                "train_seconds": self.train_seconds, "cached": self.cached, "epochs": self.epochs, **self.extra}


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
