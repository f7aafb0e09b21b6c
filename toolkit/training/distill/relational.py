"""Relational term (β > 0, off by default: measured, it does not help, see `DistillConfig.relational`;
when the teacher has item vectors, `item_embeddings`, and graph neighbours: the knowledge-graph
teacher): the student's item table learns the teacher's item-item similarities, what a
knowledge-graph teacher knows about items that the interactions barely show (tail items):

    L_rel = β · mean over anchors a of KL(softmax(cos_T(a, C_a) / τ) ‖ softmax(cos_S(a, C_a) / τ))

anchors drawn uniformly from the catalogue each step, candidates C_a = some of the anchor's graph
neighbours (`teacher.item_neighbours`, over-sampled: they are where the knowledge is) + random items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.data import Split

if TYPE_CHECKING:
    from toolkit.training.distill.config import DistillConfig


def relational_inputs(teacher, split: Split, cfg: DistillConfig):
    """The teacher's unit item vectors and graph neighbours for the relational term, or (None, None):
    β = 0, or a teacher without item vectors or graph neighbours (measured, the term does not help
    the ID-only ensemble's students; see DistillConfig)."""
    neighbours = getattr(teacher, "item_neighbours", None)
    if not cfg.relational or neighbours is None:
        return None, None
    vectors = item_embeddings(teacher)
    if vectors is None or vectors.shape[0] != split.num_items:
        return None, None
    return vectors, neighbours


def item_embeddings(teacher):
    """The teacher's item vectors for relational distillation: (N, D) unit rows, or None when the
    teacher has none (a module that is not a toolkit model, a scores file). An ensemble's members
    are concatenated (each unit-normalised, scaled by 1/sqrt(members)), so a cosine similarity of
    its rows is the mean of the members'."""
    members = getattr(teacher, "members", None)
    if members is None:
        members = [teacher] if hasattr(getattr(teacher, "items", None), "weight") else []
    if not members:
        return None
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        parts = [F.normalize(m.items.weight().float(), dim=-1) for m in members]
        return torch.cat(parts, dim=-1) / len(parts) ** 0.5


class RelationalTerm:
    """β · KL between the teacher's and the student's item-item similarity distributions (module docstring)."""

    def __init__(self, teacher_vectors, neighbours, cfg: DistillConfig, seed: int):
        import torch

        self.teacher = teacher_vectors  # (N, D') unit rows
        self.neighbours = neighbours  # (N, C) item indices, 0-padded, or None
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model):
        """The term's mean over anchors (a scalar tensor)."""
        import torch
        import torch.nn.functional as F

        cfg, g = self.cfg, self.generator
        n = self.teacher.shape[0]
        anchors = torch.randint(1, n, (cfg.relational_anchors,), generator=g)  # (A,)
        candidates = [torch.randint(1, n, (len(anchors), cfg.relational_random), generator=g)]
        if self.neighbours is not None and cfg.relational_neighbours:
            near = self.neighbours[anchors]  # (A, C)
            pick = torch.randint(0, near.shape[1], (len(anchors), cfg.relational_neighbours), generator=g)
            near = torch.gather(near, 1, pick)
            # an anchor without (enough) neighbours gets random items in their place
            near = torch.where(near > 0, near, torch.randint(1, n, near.shape, generator=g))
            candidates.append(near)
        cand = torch.cat(candidates, dim=1)  # (A, C')
        t = (self.teacher[anchors][:, None, :] * self.teacher[cand]).sum(-1)  # (A, C') cosines
        table = F.normalize(model.items.weight(), dim=-1)
        s = (table[anchors][:, None, :] * table[cand]).sum(-1)
        tau = cfg.relational_temperature
        log_t, log_s = F.log_softmax(t / tau, dim=-1), F.log_softmax(s / tau, dim=-1)
        return (log_t.exp() * (log_t - log_s)).sum(-1).mean()
