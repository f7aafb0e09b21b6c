"""Reading and checking a graph's files: a triples file and an item -> entity links file (`load_kg`),
and a RecBole `.item` file's categorical features as triples (`feature_triples`).

Two files, both text with a header row (tab-separated; `.csv` files comma-separated), the header
names may carry RecBole's `:type` suffix (`head_id:token`):

- triples: columns `head_id`, `relation_id`, `tail_id` (or `head`, `relation`, `tail`): one
  fact per row, e.g. `m.0bln8  film.film.directed_by  m.04ctbw8`. Ids are strings.
- links: columns `item_id` (or `item`) and `entity_id` (or `entity`): the entity that is each item
  (at most one per item). Items of the data without a link are *unlinked* (the teacher gives them
  a learned vector); links to items the data does not have are ignored and counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError
from toolkit.teachers.graph.model import KnowledgeGraph

TRIPLE_COLUMNS = {"head": ("head_id", "head"), "relation": ("relation_id", "relation"), "tail": ("tail_id", "tail")}
LINK_COLUMNS = {"item": ("item_id", "item"), "entity": ("entity_id", "entity")}


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
