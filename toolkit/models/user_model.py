"""A user's module as a toolkit model (`--student MODULE:FACTORY`, loaded and probed by
toolkit/models/user_module.py): the face the toolkit's loops read from a model, `cfg.max_history`,
`cfg.num_items` and `score_last`. It has no item table (`items`) and no `encode`: the losses
(toolkit/training/loop.py, distill.py) and the serving graph (export/serving.py) take their generic
path through `module(history)` -> [B, L, N] scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModuleShape:
    """What the toolkit's loops read from a model's `cfg`: the window and the catalogue."""

    max_history: int
    num_items: int

    def to_dict(self) -> dict:
        return {"max_history": self.max_history, "num_items": self.num_items}


class UserModel(nn.Module):
    """A user's module as a toolkit model: `forward` / `logits` are its scores [B, L, N], `score_last`
    the last position's. It has no item table (`items`): losses and the serving graph take the generic
    path through `module(history)` (`is_user_model`)."""

    def __init__(self, module: nn.Module, max_history: int, num_items: int):
        super().__init__()
        self.module = module
        self.cfg = ModuleShape(max_history, num_items)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.module(history)

    def score_last(self, history: torch.Tensor) -> torch.Tensor:
        return self.module(history)[:, -1, :]


def is_user_model(model) -> bool:
    """True for a model the toolkit's losses reach only through `model(history)` (no `encode`/`items`)."""
    return isinstance(model, UserModel)
