"""Knowledge distillation: the student learns from the labels and from the teacher's soft outputs.

    L = (1 - α) · CE(student, next item) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

on every position whose target is a real item. T² keeps the soft term's gradients on the same
scale as the hard term's when T changes (Hinton et al., 2015).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from toolkit.data import Split
from toolkit.models import ModelConfig, SASRec
from toolkit.train import TrainConfig, TrainResult, fit


@dataclass
class DistillConfig:
    alpha: float = 0.5  # weight of the teacher term
    temperature: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      cfg: DistillConfig) -> torch.Tensor:
    """student/teacher logits (B, T, N), targets (B, T) with 0 = no target."""
    valid = targets != 0
    s, t = student_logits[valid], teacher_logits[valid]  # (P, N)
    hard = F.cross_entropy(s, targets[valid])
    temp = cfg.temperature
    soft = F.kl_div(F.log_softmax(s / temp, dim=-1), F.log_softmax(t / temp, dim=-1),
                    reduction="batchmean", log_target=True)
    return (1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft


def distill(teacher: torch.nn.Module, student_cfg: ModelConfig, split: Split, train_cfg: TrainConfig,
            distill_cfg: DistillConfig, init: SASRec | None = None, desc: str = "distill") -> TrainResult:
    """Train a student of `student_cfg` (or fine-tune `init`) against the frozen teacher."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = teacher(inputs)
        return distillation_loss(logits, teacher_logits, targets, distill_cfg)

    return fit(student_cfg, split, train_cfg, loss_fn=loss_fn, init=init, desc=desc)
