"""Knowledge graphs: reading and checking a triples file and an item -> entity links file, aligning
them to a dataset's items, the items' graph neighbourhoods, and TransE pretraining.

Two files, both text with a header row (tab-separated; `.csv` files comma-separated), the header
names may carry RecBole's `:type` suffix (`head_id:token`):

- triples: columns `head_id`, `relation_id`, `tail_id` (or `head`, `relation`, `tail`): one
  fact per row, e.g. `m.0bln8  film.film.directed_by  m.04ctbw8`. Ids are strings.
- links: columns `item_id` (or `item`) and `entity_id` (or `entity`): the entity that is each item
  (at most one per item). Items of the data without a link are *unlinked* (the teacher gives them
  a learned vector); links to items the data does not have are ignored and counted.

MovieLens-100K ships its own (`ml-100k.kg`: 91,631 Freebase triples over 24 relations, and
`ml-100k.link`: 1,598 of 1,682 items linked), read from the same wheel as the interactions.

TransE (Bordes et al., 2013) is written here (about forty lines of torch) rather than taken from
PyKEEN: PyKEEN would add 18 packages (optuna, SQLAlchemy, alembic, ...) for one model whose entity
numbering we would still have to bridge, and its training loop would sit outside the toolkit's
seeds and cache. Embeddings: h + r ≈ t for true triples, margin ranking against corrupted heads
or tails, entities kept on the unit sphere.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError

TRIPLE_COLUMNS = {"head": ("head_id", "head"), "relation": ("relation_id", "relation"), "tail": ("tail_id", "tail")}
LINK_COLUMNS = {"item": ("item_id", "item"), "entity": ("entity_id", "entity")}


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


ALIGNED_LIFT = 1.1  # a graph whose near items share fewer users than this x random pairs: links look wrong


def load_kg(triples: str | Path, links: str | Path, item_ids: list[str], flags: tuple[str, str] = ("--kg", "--kg-links")
            ) -> KnowledgeGraph:
    """Read and check both files and align them with `item_ids` (index -> original item id, 0 padding).

    Raises:
        ToolkitError: a missing or unreadable file, a missing column, an empty id, a row with the
            wrong number of fields, an item linked twice, or no item of the data linked at all;
            the message names the flag, the file and the line.
    """
    triples, links = Path(triples), Path(links)
    t_raw, l_raw = _read_bytes(triples, flags[0]), _read_bytes(links, flags[1])
    heads, rels, tails = _read_columns(triples, t_raw, flags[0], TRIPLE_COLUMNS)
    link_items, link_entities = _read_columns(links, l_raw, flags[1], LINK_COLUMNS)
    if not heads:
        raise ToolkitError(f"{flags[0]} {triples}: no triples (need a header row and data rows)")
    seen: dict[str, int] = {}
    for row, item in enumerate(link_items):
        if item in seen:
            raise ToolkitError(f"{flags[1]} {links}: item {item!r} is linked twice (lines {seen[item] + 2} and "
                               f"{row + 2}); each item is one entity")
        seen[item] = row
    entity_index: dict[str, int] = {}

    def index(values: list[str], table: dict[str, int]) -> np.ndarray:
        return np.fromiter((table.setdefault(v, len(table) + 1) for v in values), dtype=np.int64, count=len(values))

    h, t = index(heads, entity_index), index(tails, entity_index)
    relation_index: dict[str, int] = {}
    r = index(rels, relation_index)
    position = {item: i for i, item in enumerate(item_ids) if i}
    item_entity = np.zeros(len(item_ids), dtype=np.int64)
    ignored = 0
    for item, entity in zip(link_items, link_entities):
        i = position.get(item)
        if i is None:
            ignored += 1
            continue
        item_entity[i] = entity_index.setdefault(entity, len(entity_index) + 1)  # an entity in no triple: itself only
    if not item_entity.any():
        example = ", ".join(repr(x) for x in link_items[:3])
        raise ToolkitError(f"{flags[1]} {links}: none of its {len(link_items)} items is an item of the data "
                           f"(e.g. {example}; the data's ids look like {item_ids[1]!r}): the item ids must match "
                           "the interactions file's")
    return KnowledgeGraph(entities=[""] + list(entity_index), relations=[""] + list(relation_index), heads=h, rels=r,
                          tails=t, item_entity=item_entity,
                          sha256={"triples": hashlib.sha256(t_raw).hexdigest(), "links": hashlib.sha256(l_raw).hexdigest()},
                          paths={"triples": str(triples), "links": str(links)}, ignored_links=ignored)


def _read_bytes(path: Path, flag: str) -> bytes:
    if not path.is_file():
        raise ToolkitError(f"{flag} {path}: no such file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ToolkitError(f"{flag} {path}: not readable ({e.strerror})") from None


def _read_columns(path: Path, raw: bytes, flag: str, wanted: dict[str, tuple[str, ...]]) -> tuple[list[str], ...]:
    """The wanted columns of a delimited text file with a header, as lists of strings, every row checked."""
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ToolkitError(f"{flag} {path}: line {line} is not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.split(":", 1)[0].strip() for h in next(rows, [])]
    where = []
    for role, names in wanted.items():
        found = [header.index(n) for n in names if n in header]
        if not found:
            raise ToolkitError(f"{flag} {path}: no {role} column (name it {' or '.join(names)}); the header has "
                               f"{', '.join(header) or 'nothing'} ({'comma' if delimiter == ',' else 'tab'}-separated)")
        where.append(found[0])
    out: tuple[list[str], ...] = tuple([] for _ in wanted)
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        if len(row) != len(header):
            raise ToolkitError(f"{flag} {path}: line {rows.line_num} has {len(row)} fields, the header has {len(header)}")
        for column, i in zip(out, where):
            value = row[i].strip()
            if not value:
                raise ToolkitError(f"{flag} {path}: line {rows.line_num} has an empty {header[i]!r}")
            column.append(value)
    return out


# --- the items' neighbourhoods -------------------------------------------------------------------


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


# --- TransE ------------------------------------------------------------------------------------


@dataclass
class TransEConfig:
    dim: int = 32
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 0.01
    margin: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


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


def pretrain_transe(kg: KnowledgeGraph, cfg: TransEConfig, log=None):
    """TransE embeddings of every entity and relation: (entities (E, dim), relations (R, dim)) tensors,
    row 0 (padding) zero. Margin ranking loss, L2 distance, one corrupted head or tail per triple."""
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    e_count, r_count = kg.num_entities, kg.num_relations
    ent = torch.nn.Parameter(torch.empty(e_count, cfg.dim).uniform_(-1, 1, generator=g))
    rel = torch.nn.Parameter(torch.empty(r_count, cfg.dim).uniform_(-1, 1, generator=g))
    with torch.no_grad():
        rel /= rel.norm(dim=1, keepdim=True).clamp_min(1e-12)
    opt = torch.optim.Adam([ent, rel], lr=cfg.lr)
    h, r, t = (torch.from_numpy(x) for x in (kg.heads, kg.rels, kg.tails))
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(h), generator=g)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            rows = order[i:i + cfg.batch_size]
            bh, br, bt = h[rows], r[rows], t[rows]
            corrupt = torch.randint(1, e_count, (len(rows),), generator=g)
            head_side = torch.rand(len(rows), generator=g) < 0.5
            nh, nt = torch.where(head_side, corrupt, bh), torch.where(head_side, bt, corrupt)
            unit = ent / ent.norm(dim=1, keepdim=True).clamp_min(1e-12)
            pos = (unit[bh] + rel[br] - unit[bt]).norm(dim=1)
            neg = (unit[nh] + rel[br] - unit[nt]).norm(dim=1)
            loss = torch.relu(cfg.margin + pos - neg).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        if log:
            log(f"  TransE epoch {epoch + 1}/{cfg.epochs}: loss {total / len(h):.4f}")
    with torch.no_grad():
        out_e = ent / ent.norm(dim=1, keepdim=True).clamp_min(1e-12)
        out_e[0] = 0.0
        out_r = rel.detach().clone()
        out_r[0] = 0.0
    return out_e.detach(), out_r


# --- item features as triples ------------------------------------------------------------------

FEATURE_RELATIONS = {"class": "item.genre", "release_year": "item.release_year"}
DECADE_RELATION = "item.release_decade"


def feature_triples(item_file: str | Path, item_ids: list[str]) -> tuple[list[str], list[str], list[str]]:
    """A RecBole `.item` file's categorical features as (item, relation, value) triples: each genre
    of `class`, the `release_year` and its decade. The item side is `item:<id>`."""
    path = Path(item_file)
    raw = _read_bytes(path, "item features")
    header = [h.split(":", 1)[0].strip() for h in raw.decode("utf-8").splitlines()[0].split("\t")]
    wanted = {"item": ("item_id",), **{k: (k,) for k in FEATURE_RELATIONS if k in header}}
    columns = _read_columns(path, raw, "item features", wanted)
    known = set(item_ids[1:])
    heads, rels, tails = [], [], []
    for row, item in enumerate(columns[0]):
        if item not in known:
            continue
        for (name, relation), values in zip(list(FEATURE_RELATIONS.items()), columns[1:]):
            for value in values[row].split():
                heads.append(f"item:{item}"), rels.append(relation), tails.append(f"{name}:{value}")
                if name == "release_year" and value.isdigit():
                    heads.append(f"item:{item}"), rels.append(DECADE_RELATION), tails.append(f"decade:{value[:3]}0")
    return heads, rels, tails


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
