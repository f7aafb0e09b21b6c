"""MovieLens-100K's own knowledge: its item features as triples, plus the Freebase graph it ships
(`ml-100k.kg`: 91,631 Freebase triples over 24 relations, and `ml-100k.link`: 1,598 of 1,682 items
linked), read from the same wheel as the interactions, when its links match the interactions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from toolkit.teachers.graph.files import feature_triples, load_kg
from toolkit.teachers.graph.model import KnowledgeGraph, graph_from_triples
from toolkit.teachers.graph.neighbours import ALIGNED_LIFT, kg_alignment


def movielens_kg_files() -> tuple[Path, Path]:
    """MovieLens-100K's own graph: (ml-100k.kg, ml-100k.link), from the cached wheel files."""
    from toolkit.data import movielens_100k_files

    folder = movielens_100k_files()
    return folder / "ml-100k.kg", folder / "ml-100k.link"


def movielens_kg(item_ids: list[str], train: list[np.ndarray], log=print) -> KnowledgeGraph:
    """MovieLens-100K's knowledge: its item features (genres, release year and decade, from
    ml-100k.item) as triples, plus the Freebase graph (ml-100k.kg + ml-100k.link) when its links
    match the interactions (`kg_alignment` >= ALIGNED_LIFT on the training data). They do not: the
    wheel's links use MovieLens-1M/20M movie ids (Star Wars is 260 there, Event Horizon here), so
    graph-near items share no more users than random pairs (1.02x) and the graph is left out, said
    in the log."""
    from toolkit.data import movielens_100k_files

    triples, links = movielens_kg_files()
    freebase = load_kg(triples, links, item_ids)
    lift = kg_alignment(freebase, train)
    heads, rels, tails = feature_triples(movielens_100k_files() / "ml-100k.item", item_ids)
    item_links = {item: f"item:{item}" for item in item_ids[1:]}
    sha = {"features": hashlib.sha256((movielens_100k_files() / "ml-100k.item").read_bytes()).hexdigest()}
    paths = {"features": str(movielens_100k_files() / "ml-100k.item")}
    if lift >= ALIGNED_LIFT:
        entity_of = {item_ids[i]: freebase.entities[e] for i, e in enumerate(freebase.item_entity) if e}
        heads = [entity_of.get(h[len("item:"):], h) for h in heads]
        heads += [freebase.entities[i] for i in freebase.heads]
        rels += [freebase.relations[i] for i in freebase.rels]
        tails += [freebase.entities[i] for i in freebase.tails]
        item_links.update(entity_of)
        sha.update(freebase.sha256)
        paths.update(freebase.paths)
    else:
        log(f"MovieLens-100K's Freebase graph left out: its graph-near items share {lift:.2f}x the users of random "
            f"pairs (below {ALIGNED_LIFT}; its links use MovieLens-1M ids); the item features are used")
    kg = graph_from_triples(heads, rels, tails, item_links, item_ids, sha, paths)
    kg.freebase_lift = lift
    return kg
