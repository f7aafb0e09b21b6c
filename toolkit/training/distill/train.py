"""The distill entry: train (or fine-tune) a student against a frozen teacher or its soft labels."""

from __future__ import annotations

from toolkit.data import Split
from toolkit.training.distill.config import DistillConfig
from toolkit.training.distill.labels import soft_labels
from toolkit.training.distill.losses import FullDistillation, TopKDistillation
from toolkit.training.distill.relational import RelationalTerm
from toolkit.training.loop import TrainConfig, TrainResult, fit, training_windows, window_stride


def distill(teacher, student_cfg, split: Split, train_cfg: TrainConfig, distill_cfg: DistillConfig, init=None,
            desc: str = "distill", world=None) -> TrainResult:
    """Train a student of `student_cfg` (a ModelConfig; or fine-tune `init`) against the frozen
    teacher, or against `SoftLabels` already computed from it (`soft_labels`); on the ranks of
    `world` when given (the teacher's cached outputs stay outside DDP, see `fit`)."""
    import torch

    labels = soft_labels(teacher, split, student_cfg.max_history, train_cfg, distill_cfg)
    windows = torch.from_numpy(training_windows(split, student_cfg.max_history, window_stride(student_cfg, train_cfg)))
    assert torch.equal(labels.windows, windows) and labels.temperature == distill_cfg.temperature, \
        "soft labels computed for other windows or another temperature"
    from toolkit.models.user_model import is_user_model

    # a user's module (`--student MODULE:FACTORY`) has no item table: no relational term, and its
    # scores over every item are there anyway, so a top-K teacher is distilled against its full softmax
    user = is_user_model(init)
    relational = None
    if labels.item_vectors is not None and distill_cfg.relational and not user:
        relational = RelationalTerm(labels.item_vectors, labels.item_neighbours, distill_cfg, train_cfg.seed)
    loss_fn = (FullDistillation(labels, distill_cfg, relational) if labels.full or user
               else TopKDistillation(labels, split, train_cfg, distill_cfg, relational))
    return fit(student_cfg, split, train_cfg, loss_fn=loss_fn, init=init, desc=desc, world=world)
