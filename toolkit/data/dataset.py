"""A dataset: users' interaction sequences in time order as item indices, and the item vocabulary
(index -> original id, 0 is padding) they index. Built from the columns a reader found: exact
duplicates (same user, item and instant) dropped and counted, repeat consumption (the same item
again at another time) kept, users with too few interactions dropped, ids sorted numerically when
every id is an integer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError

MIN_INTERACTIONS_PER_USER = 3  # train + validation + test
# how toolkit/data/split.py splits (named in every cache key)
SPLIT_RULE = "leave-one-out by time (stable): last = test, second to last = validation, rest = training"
_ASCII_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class Dataset:
    """Users' interaction sequences in time order, as item indices (1..num_items-1)."""

    name: str
    sha256: str
    item_ids: list[str]  # index -> original item id; index 0 is padding ("")
    user_ids: list[str]  # row -> original user id
    sequences: list[np.ndarray]  # per user, item indices oldest first
    titles: dict[str, str] = field(default_factory=dict)  # original item id -> title
    num_interactions: int = 0
    dropped_users: int = 0  # users with fewer than MIN_INTERACTIONS_PER_USER interactions
    columns: dict[str, str] = field(default_factory=dict)  # role (user/item/time) -> column read
    encoding: str = "utf-8"
    path: str = ""  # the file read ("" for the default dataset's cache)
    rows_read: int = 0  # data rows in the file
    duplicates_dropped: int = 0  # exact duplicates (same user, item, instant) after the first
    time_format: str | None = None  # the strptime format the time column was read with (None: detected)
    time_read_as: str = ""  # how the time column was read, e.g. "epoch seconds"

    @property
    def num_items(self) -> int:
        """Vocabulary size including the padding index 0."""
        return len(self.item_ids)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "users": len(self.user_ids),
            "items": self.num_items - 1,
            "interactions": self.num_interactions,
            "dropped_users": self.dropped_users,
            "columns": dict(self.columns),
            "encoding": self.encoding,
            "time_format": self.time_format,
            "time_read_as": self.time_read_as,
            "rows_read": self.rows_read,
            "duplicates_dropped": self.duplicates_dropped,
            "has_titles": bool(self.titles),
            "path": str(Path(self.path).resolve()) if self.path else "",  # "" for the default dataset
        }

    def key(self) -> dict:
        """Everything about the data that shapes a model trained on it (part of every cache key)."""
        return {"sha256": self.sha256, "columns": dict(self.columns), "encoding": self.encoding,
                "min_interactions": MIN_INTERACTIONS_PER_USER, "split": SPLIT_RULE,
                "users": len(self.user_ids), "items": self.num_items - 1, "interactions": self.num_interactions,
                # only when given: the keys of every cache made before the flag existed stay valid
                **({"time_format": self.time_format} if self.time_format is not None else {})}


def _sorted_codes(codes: np.ndarray, values: list[str], used: np.ndarray | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Renumber dictionary codes so ids sort numerically when every id is an ASCII integer, else as
    strings; ids with the same value ("7", "07") stay distinct. `used` (bool per value) keeps only
    those values. Returns (new codes, sorted ids)."""
    keep = np.arange(len(values)) if used is None else np.flatnonzero(used)
    kept = [values[k] for k in keep.tolist()]
    if all(_ASCII_INTEGER.fullmatch(x) for x in kept):
        order = sorted(range(len(kept)), key=lambda j: (int(kept[j]), kept[j]))
    else:
        order = sorted(range(len(kept)), key=lambda j: kept[j])
    rank = np.full(len(values), -1, dtype=np.int64)
    rank[keep[np.asarray(order, dtype=np.int64)]] = np.arange(len(kept))
    return rank[codes], [kept[j] for j in order]


def build_dataset(path: Path, sha256: str, users: tuple[np.ndarray, list[str]], items: tuple[np.ndarray, list[str]],
                   stamps: np.ndarray) -> Dataset:
    rows_read = len(stamps)
    first = first_occurrences(users[0], items[0], stamps)
    users, items, stamps = (users[0][first], users[1]), (items[0][first], items[1]), stamps[first]
    user_codes, user_values = users
    counts = np.bincount(user_codes, minlength=len(user_values))
    kept_users = counts >= MIN_INTERACTIONS_PER_USER
    if not kept_users.any():
        raise ToolkitError(f"--data {path}: no user has {MIN_INTERACTIONS_PER_USER} or more interactions "
                           "(one for training, one for validation, one for test)")
    rows = kept_users[user_codes]
    user_index, user_ids = _sorted_codes(user_codes[rows], user_values, kept_users)
    item_codes = items[0][rows]
    item_index, item_ids = _sorted_codes(item_codes, items[1], np.bincount(item_codes, minlength=len(items[1])) > 0)
    item_index = item_index + 1  # 0 is padding
    stamps = stamps[rows]
    order = np.lexsort((np.arange(len(stamps)), stamps, user_index))  # by user, then time; ties keep file order
    item_index, user_index = item_index[order], user_index[order]
    bounds = np.flatnonzero(np.diff(user_index)) + 1
    return Dataset(
        name=path.stem,
        sha256=sha256,
        item_ids=[""] + item_ids,
        user_ids=user_ids,
        sequences=np.split(item_index, bounds),
        num_interactions=int(len(item_index)),
        dropped_users=int((~kept_users).sum()),
        path=str(path),
        rows_read=rows_read,
        duplicates_dropped=rows_read - len(first),
    )


def first_occurrences(user_codes: np.ndarray, item_codes: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row indices (file order) of the first of each set of exact duplicates: the same user, item and
    instant (times compare after conversion, so 07:16+02:00 and 05:16Z are one event)."""
    order = np.lexsort((np.arange(len(stamps)), stamps, item_codes, user_codes))
    u, i, t = user_codes[order], item_codes[order], stamps[order]
    again = np.zeros(len(order), dtype=bool)
    again[1:] = (u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1])
    return np.sort(order[~again])


def first_users(dataset: Dataset, n: int) -> Dataset:
    """The first n users (quick runs): items keep their indices so the vocabulary is unchanged."""
    return replace(dataset, user_ids=dataset.user_ids[:n], sequences=dataset.sequences[:n],
                   num_interactions=sum(len(s) for s in dataset.sequences[:n]))
