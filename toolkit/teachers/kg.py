"""The knowledge-graph teacher: SASRec whose item vectors also carry what a graph knows about items.

An item's vector is its ID embedding plus its knowledge vector, the mean over its graph neighbours
(entity, relation) of `entity + relation` embeddings, learned jointly with the recommender and
optionally started from TransE embeddings pretrained on the triples (`toolkit.teachers.graph`); an item
without neighbours gets one learned vector. Items that share an actor, a director or a genre
share parameters, so an item seen five times borrows from the items it is like.

    item_vector(i) = id(i) + mean_{(e, r) in nbrs(i)} (entity(e) + relation(r))     (D,)

The table is tied (input lookup and output scores) like `toolkit.models.sasrec.ItemTable`, with the same
`lookup` / `weight` / `scores`, so the teacher is a `SASRec` with this table swapped in, trained
by the one loop (`toolkit.training.loop.fit`) and ensembled by `toolkit.models.sasrec.Ensemble`. The student
never sees it: it stays ID-only and learns the knowledge through distillation (`toolkit.training.distill`).
"""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.teachers.graph import KGConfig, KnowledgeGraph

# torch at the top, as in toolkit/models/sasrec.py: this module is imported only where a model is built


def kg_item_table(num_items: int, dim: int, kg: KnowledgeGraph, cfg: KGConfig, pretrained=None):
    """A `KGItemTable` for `kg`'s items; `pretrained` (entities (E, d), relations (R, d)) from
    `toolkit.teachers.graph.pretrain_transe` starts the knowledge embeddings (d must be `dim`)."""
    from toolkit.teachers.graph import item_neighbourhoods

    entities, relations = item_neighbourhoods(kg, cfg.max_neighbours)
    used = np.unique(entities[entities > 0])  # compact: only entities some item neighbours
    compact = np.zeros(kg.num_entities, dtype=np.int64)
    compact[used] = np.arange(1, len(used) + 1)
    table = KGItemTable(num_items, dim, compact[entities], relations, len(used) + 1, 2 * kg.num_relations,
                        cfg.init_std)
    if pretrained is not None:
        ent, rel = pretrained
        r_count = kg.num_relations
        with torch.no_grad():
            scale = cfg.init_std * (dim ** 0.5)  # unit-norm TransE rows to the ID table's scale
            table.entities.weight[1:] = ent[torch.from_numpy(used)] * scale
            # inverse relation: t - r ≈ h, so the item (tail side) sees its neighbour through -r
            table.relations.weight[:r_count] = rel * scale
            table.relations.weight[r_count:2 * r_count] = -rel * scale
            table.relations.weight[0] = 0.0
    return table


class KGItemTable(nn.Module):
    """Item vectors = ID embedding + knowledge vector (see the module docstring).

    neighbour_entities / neighbour_relations: (N, K) compact indices, 0 = none.
    """

    def __init__(self, num_items: int, dim: int, neighbour_entities: np.ndarray, neighbour_relations: np.ndarray,
                 num_entities: int, num_relations: int, init_std: float = 0.02):
        super().__init__()
        self.rank = 0  # a full table (what toolkit.compression reads)
        self.project = None
        self.embedding = nn.Embedding(num_items, dim, padding_idx=0)  # the ID part (name as ItemTable's)
        self.entities = nn.Embedding(num_entities, dim, padding_idx=0)
        self.relations = nn.Embedding(num_relations + 1, dim)
        self.unlinked = nn.Parameter(torch.zeros(dim))
        for e in (self.embedding, self.entities, self.relations):
            nn.init.normal_(e.weight, std=init_std)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
            self.entities.weight[0].zero_()
        self.register_buffer("neighbour_entities", torch.from_numpy(np.ascontiguousarray(neighbour_entities)))
        self.register_buffer("neighbour_relations", torch.from_numpy(np.ascontiguousarray(neighbour_relations)))

    def knowledge(self, ids=None):
        """The knowledge vectors of `ids` (any shape; all items when None): (..., D)."""
        ent, rel = self.neighbour_entities, self.neighbour_relations
        if ids is not None:
            ent, rel = ent[ids], rel[ids]
        present = (ent > 0).to(self.entities.weight.dtype)  # (..., K)
        vectors = (self.entities(ent) + self.relations(rel)) * present.unsqueeze(-1)  # (..., K, D)
        count = present.sum(-1, keepdim=True)
        mean = vectors.sum(-2) / count.clamp_min(1.0)
        return torch.where(count > 0, mean, self.unlinked)

    def lookup(self, ids):
        vectors = self.embedding(ids) + self.knowledge(ids)
        return vectors * (ids != 0).unsqueeze(-1).to(vectors.dtype)

    def weight(self):
        w = self.embedding.weight + self.knowledge()
        pad = torch.ones(w.shape[0], 1, dtype=w.dtype)
        pad[0] = 0.0
        return w * pad

    def scores(self, hidden):
        return F.linear(hidden, self.weight())


def kg_member(member_cfg, kg: KnowledgeGraph, cfg: KGConfig, pretrained=None):
    """A SASRec of `member_cfg` with the knowledge table swapped in (a tiny module swap)."""
    from toolkit.models.sasrec import SASRec

    model = SASRec(member_cfg)
    model.items = kg_item_table(member_cfg.num_items, member_cfg.dim, kg, cfg, pretrained)
    return model


# --- the knowledge-graph teacher ---------------------------------------------------------------


class KGTeacher(nn.Module):
    """An ensemble of knowledge-graph members (`kg_member`) with the graph's item neighbours
    (`toolkit.teachers.graph.kg_item_neighbours`, (N, C)), which the relational distillation term over-samples."""

    def __init__(self, members: list, item_neighbours: np.ndarray):
        from toolkit.models.sasrec import Ensemble

        super().__init__()
        self.ensemble = Ensemble(members)
        self.cfg = members[0].cfg
        self.register_buffer("item_neighbours", torch.from_numpy(np.ascontiguousarray(item_neighbours)))

    @property
    def members(self):
        return self.ensemble.members

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.ensemble(history)

    def score_last(self, history: torch.Tensor) -> torch.Tensor:
        return self.ensemble.score_last(history)

    def topk_log_probs(self, history: torch.Tensor, k: int, temperature: float = 1.0):
        return self.ensemble.topk_log_probs(history, k, temperature)
