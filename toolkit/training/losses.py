"""The next-item losses of the training loop (toolkit/training/loop.py `fit`): the full softmax over
the catalogue while it is cheap, a sampled softmax above `FULL_SOFTMAX_MAX_ITEMS` items (negatives
drawn from training counts^0.75, shared by a batch, corrected by their log proposal), and the logits
of a model at its target positions, for the toolkit's SASRec and a user's own module alike.

A loss function returns (sum over target positions, number of positions): the step divides, so
the mean is over the global batch on any number of ranks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from toolkit.core.errors import ToolkitError
from toolkit.data import Split

LossFn = Callable[[object, "torch.Tensor", "torch.Tensor", "torch.Tensor"], tuple["torch.Tensor", int]]
FULL_SOFTMAX_MAX_ITEMS = 8192  # above, (positions x items) logits cost more than the model: sample negatives
POPULARITY_POWER = 0.75  # the negatives' proposal: training counts^0.75 (flatter than popularity)


def use_sampled(num_items: int, train_cfg: TrainConfig) -> bool:
    if train_cfg.loss not in ("auto", "full", "sampled"):
        raise ToolkitError(f"TrainConfig.loss: {train_cfg.loss!r} not valid; valid: auto, full, sampled")
    return train_cfg.loss == "sampled" or (train_cfg.loss == "auto" and num_items > FULL_SOFTMAX_MAX_ITEMS)


def target_positions(model, inputs, targets):
    """Hidden states (P, D) and targets (P,) of the positions whose target is a real item."""
    valid = targets != 0
    return model.encode(inputs)[valid], targets[valid]


def position_logits(model, inputs, targets):
    """Scores over every item (P, N) and targets (P,) of the positions whose target is a real item:
    a toolkit model's hidden states through its item table, a user's module (`--student
    MODULE:FACTORY`, toolkit.models.user_model) through `model(inputs)`."""
    from toolkit.models.user_model import is_user_model

    if is_user_model(model):
        valid = targets != 0
        return model(inputs)[valid], targets[valid]
    hidden, target = target_positions(model, inputs, targets)
    return model.items.scores(hidden), target


def full_softmax(model, inputs, targets, rows=None):
    """Exact next-item CE over every item: (sum, positions)."""
    import torch.nn.functional as F

    logits, target = position_logits(model, inputs, targets)
    return F.cross_entropy(logits, target, reduction="sum"), len(target)


class Negatives:
    """Negatives shared by a batch, drawn from the training popularity^POPULARITY_POWER, with the
    log of each item's expected count among them (the logQ correction)."""

    def __init__(self, split: Split, count: int, seed: int):
        import torch

        from toolkit.training.evaluate import popularity_scores

        weights = torch.from_numpy(popularity_scores(split) + 1.0) ** POPULARITY_POWER
        weights[0] = 0.0  # padding is never a negative
        q = weights / weights.sum()
        self.count = count
        self.cdf = torch.cumsum(q.double(), 0)
        self.log_expected = torch.log(q * count).float().clamp_min(-1e4)  # log(M q_i), (N,)
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self):
        """(M,) item indices (with repetition, as the correction assumes)."""
        import torch

        u = torch.rand(self.count, generator=self.generator, dtype=torch.float64) * self.cdf[-1]
        return torch.searchsorted(self.cdf, u).clamp_(1, len(self.cdf) - 1)


class SampledSoftmax:
    """Sampled next-item CE with logQ correction: (sum, positions), O(positions x negatives)."""

    def __init__(self, split: Split, train_cfg: TrainConfig):
        self.negatives = Negatives(split, train_cfg.negatives, train_cfg.seed)

    def logits(self, model, hidden, target, negatives):
        """(P, 1 + M) corrected logits: the target first, then the shared negatives (hits masked)."""
        import torch

        table, log_e = model.items, self.negatives.log_expected
        log_e = log_e.to(hidden.device)  # the shared draw lives on the CPU (same on every rank); the model may not
        negatives = negatives.to(hidden.device)
        positive = (hidden * table.lookup(target)).sum(-1) - log_e[target]  # (P,)
        negative = hidden @ table.lookup(negatives).T - log_e[negatives]  # (P, M)
        negative = negative.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
        return torch.cat([positive[:, None], negative], dim=1)

    def __call__(self, model, inputs, targets, rows=None):
        import torch
        import torch.nn.functional as F

        hidden, target = target_positions(model, inputs, targets)
        logits = self.logits(model, hidden, target, self.negatives.draw())
        zeros = torch.zeros(len(target), dtype=torch.long, device=logits.device)  # the target is column 0
        return F.cross_entropy(logits, zeros, reduction="sum"), len(target)


def next_item_loss(split: Split, train_cfg: TrainConfig) -> LossFn:
    """Full softmax while it is cheap, sampled above `FULL_SOFTMAX_MAX_ITEMS` (see the module docstring)."""
    return SampledSoftmax(split, train_cfg) if use_sampled(split.num_items, train_cfg) else full_softmax
