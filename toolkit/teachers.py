"""The knowledge-graph teacher: SASRec whose item vectors also carry what a graph knows about items.

An item's vector is its ID embedding plus its knowledge vector, the mean over its graph neighbours
(entity, relation) of `entity + relation` embeddings, learned jointly with the recommender and
optionally started from TransE embeddings pretrained on the triples (`toolkit.kg`); an item
without neighbours gets one learned vector. Items that share an actor, a director or a genre
share parameters, so an item seen five times borrows from the items it is like.

    item_vector(i) = id(i) + mean_{(e, r) in nbrs(i)} (entity(e) + relation(r))     (D,)

The table is tied (input lookup and output scores) like `toolkit.models.ItemTable`, with the same
`lookup` / `weight` / `scores`, so the teacher is a `SASRec` with this table swapped in, trained
by the one loop (`toolkit.train.fit`) and ensembled by `toolkit.models.Ensemble`. The student
never sees it: it stays ID-only and learns the knowledge through distillation (`toolkit.distill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.kg import KGConfig, KnowledgeGraph

# torch at the top, as in toolkit/models.py: this module is imported only where a model is built


def kg_item_table(num_items: int, dim: int, kg: KnowledgeGraph, cfg: KGConfig, pretrained=None):
    """A `KGItemTable` for `kg`'s items; `pretrained` (entities (E, d), relations (R, d)) from
    `toolkit.kg.pretrain_transe` starts the knowledge embeddings (d must be `dim`)."""
    from toolkit.kg import item_neighbourhoods

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
        self.rank = 0  # a full table (what toolkit.compress reads)
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
    from toolkit.models import SASRec

    model = SASRec(member_cfg)
    model.items = kg_item_table(member_cfg.num_items, member_cfg.dim, kg, cfg, pretrained)
    return model


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
    with torch.no_grad():
        parts = [F.normalize(m.items.weight().float(), dim=-1) for m in members]
        return torch.cat(parts, dim=-1) / len(parts) ** 0.5


# --- teachers brought by the user (toolkit/external.py reads and checks them) ----------------------


@dataclass
class TeacherShape:
    max_history: int  # what evaluate_model reads from a model's cfg


class ExternalTeacher(nn.Module):
    """A user's module as a teacher: evaluated through it (log-probabilities), distilled from its
    cached top-K table (`soft_labels`). No item vectors: logit distillation only."""

    def __init__(self, module, spec: str, max_history: int, file_sha: str, weights_sha: str):
        super().__init__()
        self.module = module
        self.spec = spec
        self.cfg = TeacherShape(max_history)
        self.file_sha256, self.weights_sha256 = file_sha, weights_sha
        self.scores = None  # toolkit.external.TeacherScores, set by `prepare_scores`

    def forward(self, history):
        return F.log_softmax(self.module(history).float(), dim=-1)

    def score_last(self, history):
        return self.forward(history)[:, -1, :]

    def key(self) -> dict:
        return {"kind": "external", "spec": self.spec, "file_sha256": self.file_sha256,
                "weights_sha256": self.weights_sha256}

    def prepare_scores(self, split, data_key: dict, top_k: int, log=print) -> bool:
        """Compute (or load from the cache) the top-K table; True when it came from the cache."""
        from toolkit.external import cached_module_scores

        self.scores, cached = cached_module_scores(self, split, data_key, top_k, log)
        return cached

    def soft_labels(self, split, windows, max_history: int, stride: int, temperature: float, top_k: int,
                    full: bool):
        if self.scores is None:  # not prepared through the pipeline (a direct distill() call)
            from toolkit.external import module_scores

            self.scores = module_scores(self.module, split, self.cfg.max_history, top_k)
        return self.scores.soft_labels(split, windows, max_history, stride, temperature, top_k, full)


class ScoresTeacher(nn.Module):
    """Precomputed scores as a teacher. It answers only the histories it was given: `score_last` of a
    user's whole training prefix (validation) is its last position; any other history scores every
    item equally (the evaluation then counts a miss)."""

    def __init__(self, scores, split, max_history: int, num_items: int, sha256: str,
                 path: str):
        super().__init__()
        from toolkit.evaluate import pad_histories

        self.scores = scores
        self.cfg = TeacherShape(max_history)
        self.num_items = num_items
        self.sha256, self.path = sha256, path
        offsets, table = scores.row_index(split)
        last = [table[offsets[u] + len(t) - 1] if len(t) else -1 for u, t in enumerate(split.train)]
        padded = pad_histories(split.train, max_history)
        self._last = {padded[u].tobytes(): r for u, r in enumerate(last) if r >= 0}

    def key(self) -> dict:
        return {"kind": "scores", "path": self.path, "sha256": self.sha256}

    def score_last(self, history):
        out = torch.zeros(history.shape[0], self.num_items)
        for b, row in enumerate(history.numpy()):
            r = self._last.get(row.astype(np.int64).tobytes())
            if r is not None:
                out[b] = float("-inf")
                finite = np.isfinite(self.scores.values[r])
                out[b, torch.from_numpy(self.scores.ids[r][finite].astype(np.int64))] = torch.from_numpy(
                    self.scores.values[r][finite])
        return out

    def forward(self, history):
        from toolkit.errors import ToolkitError

        raise ToolkitError("a --teacher-scores teacher has no model to run; it answers its (user, position) rows only")

    def soft_labels(self, split, windows, max_history: int, stride: int, temperature: float, top_k: int,
                    full: bool):
        return self.scores.soft_labels(split, windows, max_history, stride, temperature, top_k, full)


# --- the knowledge-graph teacher ---------------------------------------------------------------


class KGTeacher(nn.Module):
    """An ensemble of knowledge-graph members (`kg_member`) with the graph's item neighbours
    (`toolkit.kg.kg_item_neighbours`, (N, C)), which the relational distillation term over-samples."""

    def __init__(self, members: list, item_neighbours: np.ndarray):
        from toolkit.models import Ensemble

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
