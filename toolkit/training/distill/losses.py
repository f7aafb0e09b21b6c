"""The distillation losses, summed over positions: the full form (KL over every item, or over a top-K
teacher's items against the student's full softmax, some positions possibly unanswered) and the
top-K form (the teacher's K items plus the batch's sampled negatives), each with the relational
term added when it is on. `FullDistillation` / `TopKDistillation` are the `loss_fn`s of
`toolkit.training.loop.fit`."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from toolkit.data import Split
from toolkit.training.loop import TrainConfig

if TYPE_CHECKING:
    from toolkit.training.distill.config import DistillConfig
    from toolkit.training.distill.labels import SoftLabels


def distillation_loss(student_logits, teacher_log_probs, targets, cfg: DistillConfig):
    """Full form, summed over positions: student logits (P, N), the teacher's log-probabilities at
    `cfg.temperature` (P, N), targets (P,)."""
    import torch.nn.functional as F

    t = teacher_log_probs.float()
    temp = cfg.temperature
    log_p = F.log_softmax(student_logits, dim=-1)
    hard = F.nll_loss(log_p, targets, reduction="sum")
    log_q = log_p if temp == 1.0 else F.log_softmax(student_logits / temp, dim=-1)  # T = 1: one softmax serves both
    soft = F.kl_div(log_q, t, reduction="sum", log_target=True)
    return (1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft


def topk_distillation_loss(student_top, student_negatives, teacher_top, targets_logits, cfg: DistillConfig):
    """Top-K form, summed over positions.

    student_top (P, K): the student's logits of the teacher's K items; student_negatives (P, M): its
    corrected logits of the sampled negatives (-inf where masked); teacher_top (P, K): the teacher's
    log-probabilities of its K items at `cfg.temperature`; targets_logits (P, 1 + M): the sampled
    softmax logits with the target first (the hard term)."""
    import torch
    import torch.nn.functional as F

    temp = cfg.temperature
    hard = F.cross_entropy(targets_logits, torch.zeros(len(targets_logits), dtype=torch.long), reduction="sum")
    student = F.log_softmax(torch.cat([student_top, student_negatives], dim=1) / temp, dim=1)[:, : student_top.shape[1]]
    teacher = F.log_softmax(teacher_top.float(), dim=1)  # its K items, renormalised
    soft = (teacher.exp() * (teacher - student)).sum()
    return (1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft


def _with_relational(loss, positions: int, relational, model, cfg: DistillConfig):
    """The step divides the loss by `positions`: the relational mean is scaled to survive that."""
    if relational is None or positions == 0:
        return loss
    return loss + cfg.relational * relational(model) * positions


class FullDistillation:
    """Full form: KL over every item against the cached teacher labels: (W, T, N) log-probabilities,
    or a top-K teacher's K items against the student's full softmax."""

    def __init__(self, labels: SoftLabels, cfg: DistillConfig, relational=None):
        self.labels = labels
        self.cfg = cfg
        self.relational = relational

    def __call__(self, model, inputs, targets, rows):
        from toolkit.training.losses import position_logits

        valid = targets != 0
        logits, target = position_logits(model, inputs, targets)  # (P, N)
        lab = self.labels
        if lab.ids is None and lab.covered is None:
            loss = distillation_loss(logits, lab.log_probs[rows][valid], target, self.cfg)
        else:
            covered = None if lab.covered is None else lab.covered[rows][valid]
            ids = None if lab.ids is None else lab.ids[rows][valid].long()
            loss = partial_distillation_loss(logits, lab.log_probs[rows][valid], ids, covered, target, self.cfg)
        return _with_relational(loss, len(target), self.relational, model, self.cfg), len(target)


def partial_distillation_loss(student_logits, teacher_values, teacher_ids, covered, targets, cfg: DistillConfig):
    """Full student softmax against a teacher that may give only its top-K (`teacher_ids` (P, K),
    `teacher_values` (P, K) log-probabilities or scores, -inf pads) and only some positions
    (`covered` (P,) bool; None = all): summed over positions; an uncovered position has the hard
    term only, at full weight."""
    import torch
    import torch.nn.functional as F

    temp = cfg.temperature
    log_p = F.log_softmax(student_logits, dim=-1)
    hard = F.nll_loss(log_p, targets, reduction="none")  # (P,)
    log_q = log_p if temp == 1.0 else F.log_softmax(student_logits / temp, dim=-1)
    values = teacher_values.float()
    if covered is not None:  # an unanswered row may be all -inf: made finite so no NaN reaches the gradient
        values = torch.where(covered[:, None], values, torch.zeros_like(values))
    teacher = F.log_softmax(values, dim=-1)  # renormalised over what it gave
    if teacher_ids is not None:
        log_q = torch.gather(log_q, 1, teacher_ids)
    p = teacher.exp()
    soft = (p * (teacher.masked_fill(p == 0, 0.0) - log_q)).sum(-1)  # (P,) KL; 0 · (-inf) terms dropped
    if covered is None:
        return ((1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft).sum()
    alpha = cfg.alpha * covered.to(hard.dtype)
    return ((1.0 - alpha) * hard + alpha * temp * temp * torch.where(covered, soft, torch.zeros_like(soft))).sum()


class TopKDistillation:
    """Top-K form: the teacher's K items (cached) plus the batch's sampled negatives."""

    def __init__(self, labels: SoftLabels, split: Split, train_cfg: TrainConfig, cfg: DistillConfig, relational=None):
        from toolkit.training.losses import SampledSoftmax

        assert labels.ids is not None, "the top-K form needs a top-K teacher"
        self.ids, self.log_probs, self.covered = labels.ids, labels.log_probs, labels.covered
        self.sampled = SampledSoftmax(split, train_cfg)
        self.cfg = cfg
        self.relational = relational

    def __call__(self, model, inputs, targets, rows):
        import torch

        from toolkit.training.losses import target_positions

        valid = targets != 0
        hidden, target = target_positions(model, inputs, targets)
        top_ids = self.ids[rows][valid].long()  # (P, K)
        top_lp = self.log_probs[rows][valid]  # (P, K)
        negatives = torch.unique(self.sampled.negatives.draw())  # (M',) sorted
        hard = self.sampled.logits(model, hidden, target, negatives)  # (P, 1 + M'), the target first
        student_top = (hidden[:, None, :] * model.items.lookup(top_ids)).sum(-1)  # (P, K)
        # a negative that is among the position's K items is already counted there: masked
        where = torch.searchsorted(negatives, top_ids).clamp_(max=len(negatives) - 1)  # (P, K)
        hit = negatives[where] == top_ids
        mask = torch.zeros(hard.shape[0], len(negatives), dtype=torch.bool)
        mask[torch.nonzero(hit, as_tuple=True)[0], where[hit]] = True
        student_negatives = hard[:, 1:].masked_fill(mask, float("-inf"))
        if self.covered is None:
            loss = topk_distillation_loss(student_top, student_negatives, top_lp, hard, self.cfg)
        else:  # positions the teacher did not answer: the hard term alone, at full weight
            covered = self.covered[rows][valid]
            soft = topk_distillation_loss(student_top[covered], student_negatives[covered], top_lp[covered],
                                          hard[covered], self.cfg)
            plain = replace(self.cfg, alpha=0.0)
            loss = soft + topk_distillation_loss(student_top[~covered], student_negatives[~covered], top_lp[~covered],
                                                 hard[~covered], plain)
        return _with_relational(loss, len(target), self.relational, model, self.cfg), len(target)
