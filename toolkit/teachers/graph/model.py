"""The knowledge graph a teacher reads: triples over entity indices aligned with a dataset's item
indices (`KnowledgeGraph`, built by `graph_from_triples` from string triples already read and
checked), and how the graph enters the teacher's item vectors (`KGConfig`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from toolkit.teachers.graph.transe import TransEConfig


@dataclass
class KnowledgeGraph:
    """Triples over entity indices, aligned with a dataset's item indices.

    Entity and relation indices start at 1 (0 is padding in the tensors built from them).
    `item_entity[i]` is item i's entity index, 0 when item i is unlinked (and for padding item 0).
    """

    entities: list[str]  # index -> entity id; index 0 is padding ("")
    relations: list[str]  # index -> relation id; index 0 is padding ("")
    heads: np.ndarray  # (M,) int64
    rels: np.ndarray  # (M,)
    tails: np.ndarray  # (M,)
    item_entity: np.ndarray  # (N,) int64, 0 = unlinked
    sha256: dict[str, str] = field(default_factory=dict)  # "triples", "links" -> sha256 of the file
    paths: dict[str, str] = field(default_factory=dict)
    ignored_links: int = 0  # links to items the data does not have
    freebase_lift: float | None = None  # MovieLens-100K: the alignment of the Freebase graph left out or in

    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        return len(self.relations)

    def linked(self) -> np.ndarray:
        """(N,) bool: items with an entity."""
        return self.item_entity > 0

    def key(self) -> dict:
        """What about the graph shapes a model trained with it (part of the teacher's cache key)."""
        return {"sha256": dict(self.sha256), "triples": int(len(self.heads)), "linked": int(self.linked().sum())}

    def summary(self) -> dict:
        return {"paths": dict(self.paths), "sha256": dict(self.sha256), "triples": int(len(self.heads)),
                "entities": self.num_entities - 1, "relations": self.num_relations - 1,
                "items_linked": int(self.linked().sum()), "items": int(len(self.item_entity) - 1),
                "links_ignored": self.ignored_links,
                **({"freebase_alignment_lift": self.freebase_lift} if self.freebase_lift is not None else {})}


@dataclass
class KGConfig:
    """How the graph enters the teacher's item vectors."""

    max_neighbours: int = 32  # per item, the most specific first (toolkit.teachers.graph.item_neighbourhoods)
    transe: bool = True  # start entity/relation embeddings from TransE pretrained on the triples
    transe_config: TransEConfig = field(default_factory=TransEConfig)
    init_std: float = 0.02  # scale of the knowledge embeddings at the start (the ID table's std)
    item_neighbours: int = 20  # graph-near items kept per item for the relational distillation term

    def to_dict(self) -> dict:
        return asdict(self)


def graph_from_triples(heads: list[str], rels: list[str], tails: list[str], links: dict[str, str],
                       item_ids: list[str], sha256: dict[str, str], paths: dict[str, str]) -> KnowledgeGraph:
    """A KnowledgeGraph from string triples and item id -> entity id links (already read and checked)."""
    entity_index: dict[str, int] = {}
    relation_index: dict[str, int] = {}

    def index(values: list[str], table: dict[str, int]) -> np.ndarray:
        return np.fromiter((table.setdefault(v, len(table) + 1) for v in values), dtype=np.int64, count=len(values))

    h, t, r = index(heads, entity_index), index(tails, entity_index), index(rels, relation_index)
    item_entity = np.zeros(len(item_ids), dtype=np.int64)
    for i, item in enumerate(item_ids):
        if i and item in links:
            item_entity[i] = entity_index.setdefault(links[item], len(entity_index) + 1)
    return KnowledgeGraph(entities=[""] + list(entity_index), relations=[""] + list(relation_index), heads=h, rels=r,
                          tails=t, item_entity=item_entity, sha256=sha256, paths=paths)
