"""The items' graph neighbourhoods (the entities a knowledge-graph member's item vector averages), the
graph-near items (for the relational distillation term), and whether a graph's links name the
data's items at all (`kg_alignment`: the co-interaction lift of graph-near items)."""

from __future__ import annotations

import numpy as np

from toolkit.teachers.graph.model import KnowledgeGraph

ALIGNED_LIFT = 1.1  # a graph whose near items share fewer users than this x random pairs: links look wrong


def item_neighbourhoods(kg: KnowledgeGraph, max_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's graph neighbours: (entities (N, K), relations (N, K)), 0-padded, K <= max_neighbours.

    A triple (item, r, e) gives item the neighbour e through relation r; (e, r, item) gives e through
    the inverse relation (index r + R, R = number of relations). Only entities shared by at least
    two linked items are kept (an entity of one item says nothing its ID does not); an item with more
    than K keeps the K its fewest other items share (the most specific: a director before a genre).
    """
    n, r_count = len(kg.item_entity), kg.num_relations
    item_of = np.zeros(kg.num_entities, dtype=np.int64)
    item_of[kg.item_entity[kg.item_entity > 0]] = np.flatnonzero(kg.item_entity > 0)
    pairs = []  # (item, neighbour entity, relation) per triple touching an item
    for items, others, rel in ((item_of[kg.heads], kg.tails, kg.rels), (item_of[kg.tails], kg.heads, kg.rels + r_count)):
        keep = items > 0
        pairs.append(np.stack([items[keep], others[keep], rel[keep]], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)
    # how many distinct items each entity neighbours
    item_entity_pairs = np.unique(pairs[:, :2], axis=0)
    share = np.bincount(item_entity_pairs[:, 1], minlength=kg.num_entities)
    pairs = pairs[share[pairs[:, 1]] >= 2]
    order = np.lexsort((pairs[:, 1], share[pairs[:, 1]], pairs[:, 0]))  # by item, then most specific first
    pairs = pairs[order]
    entities = np.zeros((n, max_neighbours), dtype=np.int64)
    relations = np.zeros((n, max_neighbours), dtype=np.int64)
    if len(pairs):
        starts = np.searchsorted(pairs[:, 0], np.arange(n))
        rank = np.arange(len(pairs)) - starts[pairs[:, 0]]
        keep = rank < max_neighbours
        entities[pairs[keep, 0], rank[keep]] = pairs[keep, 1]
        relations[pairs[keep, 0], rank[keep]] = pairs[keep, 2]
    return entities, relations


def kg_item_neighbours(kg: KnowledgeGraph, count: int, max_share: float = 0.05) -> np.ndarray:
    """Each item's `count` nearest items through the graph: (N, count) item indices, 0-padded.

    Items are near when they share entities (an actor, a director, a sequel), each shared entity
    weighted by its inverse frequency (idf); entities shared by more than `max_share` of the linked
    items (a genre, a language) are left out: they join hundreds of items and say little.
    """
    entities, _ = item_neighbourhoods(kg, max_neighbours=256)
    n = len(entities)
    rows, cols = np.nonzero(entities)
    pairs = np.unique(np.stack([rows, entities[rows, cols]], axis=1), axis=0)  # (item, entity)
    linked = max(int(kg.linked().sum()), 2)
    share = np.bincount(pairs[:, 1], minlength=kg.num_entities)
    pairs = pairs[share[pairs[:, 1]] <= max(2, int(max_share * linked))]
    out = np.zeros((n, count), dtype=np.int64)
    if not len(pairs):
        return out
    pairs = pairs[np.argsort(pairs[:, 1], kind="stable")]
    bounds = np.flatnonzero(np.diff(pairs[:, 1])) + 1
    src, dst, val = [], [], []
    for group, entity in zip(np.split(pairs[:, 0], bounds), pairs[np.r_[0, bounds], 1]):
        a, b = np.meshgrid(group, group, indexing="ij")
        off = a != b  # every ordered pair of items sharing the entity gains its idf
        src.append(a[off])
        dst.append(b[off])
        val.append(np.full(int(off.sum()), np.log(linked / share[entity])))
    src, dst, val = np.concatenate(src), np.concatenate(dst), np.concatenate(val)
    pair = np.unique(src * n + dst, return_inverse=True)
    total = np.bincount(pair[1], weights=val)
    s, d = pair[0] // n, pair[0] % n
    order = np.lexsort((d, -total, s))  # by item, strongest first (ties: lower index)
    s, d = s[order], d[order]
    rank = np.arange(len(s)) - np.searchsorted(s, s)
    keep = rank < count
    out[s[keep], rank[keep]] = d[keep]
    return out


def kg_alignment(kg: KnowledgeGraph, train: list[np.ndarray], count: int = 10, seed: int = 0) -> float:
    """Do the graph's links name the right items? The lift of co-interaction: how many training users
    two graph-near items (`kg_item_neighbours`) share, over the same items paired at random. About
    1.0 means the graph's items look unrelated to the interactions (links to another id space)."""
    n = len(kg.item_entity)
    neighbours = kg_item_neighbours(kg, count)
    src = np.repeat(np.arange(n), count)
    dst = neighbours.reshape(-1)
    keep = dst > 0
    src, dst = src[keep], dst[keep]
    if not len(src):
        return 0.0
    users_of = [set() for _ in range(n)]
    for u, seq in enumerate(train):
        for i in set(seq.tolist()):
            users_of[i].add(u)
    shuffled = np.random.default_rng(seed).permutation(dst)
    near = sum(len(users_of[a] & users_of[b]) for a, b in zip(src.tolist(), dst.tolist()))
    rand = sum(len(users_of[a] & users_of[b]) for a, b in zip(src.tolist(), shuffled.tolist()))
    return near / max(rand, 1)
