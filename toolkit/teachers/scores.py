"""Bring your own teacher, as a file of precomputed scores (`--teacher-scores FILE.parquet`), checked
with clear errors and distilled like the toolkit's own; and the top-K table both user teachers give
(`TeacherScores`: a module teacher's, toolkit/teachers/module.py, is the same table computed by running it).

Scores file (Parquet), one row per (user, position):
    user      string   the user's id in the data
    position  int      the teacher has seen the user's time-sorted training items 0..position
    items     list<string>  the teacher's top-K item ids for the next item, best first
    scores    list<float>   their scores (logits or log-probabilities), same length
The training items are the split's: each user's interactions sorted by time (stable), all but the
last two (validation, test). Position p's label is for training item p + 1 (the last position,
for the validation item, is used for the teacher's validation figure only). The student's
training windows (`toolkit.training.loop.training_windows`) map onto (user, position); positions the
file does not cover fall back to the hard label (α = 0 there). The scores are renormalised over
the K items given (softmax at the distillation temperature).

`python -m toolkit teacher-scores` (`teacher_scores_command`) writes such a file from a module teacher.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from toolkit.data import Dataset, Split
from toolkit.core.errors import ToolkitError
from toolkit.models.user_module import one_line as _one_line

SCORES_COLUMNS = ("user", "position", "items", "scores")

@dataclass
class TeacherScores:
    """A teacher's top-K per (user row, position of the training prefix): rows sorted by (user, position).

    ids (R, K) item indices (int32), values (R, K) float32 scores (-inf pads a shorter list)."""

    users: np.ndarray  # (R,) int64 user rows of the split
    positions: np.ndarray  # (R,) int64
    ids: np.ndarray
    values: np.ndarray

    def row_index(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(offsets (U,), table (sum of training lengths,)): row of (u, p) = table[offsets[u] + p], -1 if absent."""
        lengths = np.array([len(t) for t in split.train], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        table = np.full(int(lengths.sum()), -1, dtype=np.int64)
        table[offsets[self.users] + self.positions] = np.arange(len(self.users))
        return offsets, table

    def soft_labels(self, split: Split, windows, max_history: int, stride: int, temperature: float, top_k: int,
                    full: bool):
        """The labels of the student's training windows: top-K form with the positions covered."""
        import torch

        from toolkit.training.distill import SoftLabels

        users, ends = window_origins(split, max_history, stride)
        assert len(users) == len(windows), "window_origins must enumerate training_windows' windows"
        t = max_history
        offsets, table = self.row_index(split)
        starts = np.maximum(0, ends - t - 1)
        pad = t + 1 - (ends - starts)  # (W,) left padding of each window
        column = np.arange(t)[None, :]  # input column c holds prefix item starts + c - pad
        position = starts[:, None] + column - pad[:, None]  # (W, T); < 0 on padding
        real = position >= 0
        row = np.full(position.shape, -1, dtype=np.int64)
        row[real] = table[offsets[np.broadcast_to(users[:, None], position.shape)[real]] + position[real]]
        covered = row >= 0
        k = min(top_k, self.ids.shape[1])
        ids = np.zeros(position.shape + (k,), dtype=np.int32)
        values = np.full(position.shape + (k,), -np.inf, dtype=np.float32)
        ids[covered] = self.ids[row[covered], :k]
        values[covered] = self.values[row[covered], :k] / temperature
        return SoftLabels(log_probs=torch.from_numpy(values).to(torch.float16), ids=torch.from_numpy(ids),
                          covered=torch.from_numpy(covered))


def window_origins(split: Split, max_history: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(user row, end) of every window `toolkit.training.loop.training_windows` makes, in its order: the
    window is the user's training items [max(0, end - max_history - 1), end)."""
    users, ends = [], []
    for u, seq in enumerate(split.train):
        if len(seq) < 2:
            continue
        end = len(seq)
        while True:
            users.append(u)
            ends.append(end)
            if end - max_history - 1 <= 0:
                break
            end -= stride
    return np.array(users, dtype=np.int64), np.array(ends, dtype=np.int64)


# --- the Parquet scores file -------------------------------------------------------------------


def read_teacher_scores(path: str | Path, dataset: Dataset, split: Split, max_history: int,
                        flag: str = "--teacher-scores") -> ScoresTeacher:
    """Read and check a scores file against the data; one clear error for the first problem found.

    Raises:
        ToolkitError: not Parquet, a missing or mistyped column, an unknown user or item id, a
            position outside the user's training prefix, ragged or empty lists, a non-finite
            score, a (user, position) given twice.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ToolkitError(f"{flag} {path}: no such file")
    raw = path.read_bytes()
    try:
        table = pq.read_table(pa.py_buffer(raw))
    except Exception as e:
        raise ToolkitError(f"{flag} {path}: not a readable Parquet file ({_one_line(e)})") from None
    missing = [c for c in SCORES_COLUMNS if c not in table.column_names]
    if missing:
        raise ToolkitError(f"{flag} {path}: missing column(s) {', '.join(missing)}; the file has "
                           f"{', '.join(table.column_names)}; needed: user (string), position (int), items (list of "
                           "string), scores (list of float)")
    if table.num_rows == 0:
        raise ToolkitError(f"{flag} {path}: no rows")
    user, position, items, scores = (table.column(c).combine_chunks() for c in SCORES_COLUMNS)
    if not (pa.types.is_string(user.type) or pa.types.is_large_string(user.type) or pa.types.is_integer(user.type)):
        raise ToolkitError(f"{flag} {path}: column 'user' is {user.type}; expected string user ids")
    if not pa.types.is_integer(position.type):
        raise ToolkitError(f"{flag} {path}: column 'position' is {position.type}; expected integers")
    for name, column, ok in (("items", items, lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
                              or pa.types.is_integer(t)), ("scores", scores, pa.types.is_floating)):
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)) or not ok(column.type.value_type):
            want = "list of string item ids" if name == "items" else "list of float"
            raise ToolkitError(f"{flag} {path}: column {name!r} is {column.type}; expected a {want}")
    for name, column in (("user", user), ("position", position), ("items", items), ("scores", scores)):
        if column.null_count:
            row = int(pc.index(pc.is_null(column), True).as_py())
            raise ToolkitError(f"{flag} {path}: row {row} has no {name!r}")
    n_items = pc.list_value_length(items).to_numpy(zero_copy_only=False)
    n_scores = pc.list_value_length(scores).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(n_items != n_scores)
    if len(bad):
        r = int(bad[0])
        raise ToolkitError(f"{flag} {path}: row {r} has {n_items[r]} items but {n_scores[r]} scores (ragged lists; "
                           f"{len(bad)} row(s) like it)")
    empty = np.flatnonzero(n_items == 0)
    if len(empty):
        raise ToolkitError(f"{flag} {path}: row {int(empty[0])} has no items")
    user_ids = [str(u) for u in user.to_pylist()]
    user_row = {u: i for i, u in enumerate(dataset.user_ids)}
    rows = np.fromiter((user_row.get(u, -1) for u in user_ids), dtype=np.int64, count=len(user_ids))
    if (rows < 0).any():
        r = int(np.flatnonzero(rows < 0)[0])
        raise ToolkitError(f"{flag} {path}: row {r}: user {user_ids[r]!r} is not a user of the data "
                           f"({int((rows < 0).sum())} row(s) with unknown users; the data's look like "
                           f"{dataset.user_ids[0]!r})")
    pos = position.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.array([len(t) for t in split.train], dtype=np.int64)
    out = np.flatnonzero((pos < 0) | (pos >= lengths[rows]))
    if len(out):
        r = int(out[0])
        raise ToolkitError(f"{flag} {path}: row {r}: position {pos[r]} is outside user {user_ids[r]!r}'s training "
                           f"items 0..{lengths[rows[r]] - 1} ({len(out)} row(s) out of range; the last two "
                           "interactions of a user are validation and test)")
    pair = rows * (int(lengths.max()) + 1) + pos
    uniq, first, counts = np.unique(pair, return_index=True, return_counts=True)
    if (counts > 1).any():
        r = int(np.sort(first[counts > 1])[0])
        raise ToolkitError(f"{flag} {path}: user {user_ids[r]!r} position {pos[r]} is given twice")
    flat_items = pc.list_flatten(items)
    flat_items = [str(x) for x in flat_items.to_pylist()]
    item_index = {i: k for k, i in enumerate(dataset.item_ids) if k}
    idx = np.fromiter((item_index.get(x, -1) for x in flat_items), dtype=np.int64, count=len(flat_items))
    if (idx < 0).any():
        f = int(np.flatnonzero(idx < 0)[0])
        r = int(np.searchsorted(np.cumsum(n_items), f, side="right"))
        raise ToolkitError(f"{flag} {path}: row {r}: item {flat_items[f]!r} is not an item of the data "
                           f"({int((idx < 0).sum())} unknown item id(s); the data's look like {dataset.item_ids[1]!r})")
    flat_scores = pc.list_flatten(scores).to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(flat_scores).all():
        f = int(np.flatnonzero(~np.isfinite(flat_scores))[0])
        r = int(np.searchsorted(np.cumsum(n_items), f, side="right"))
        raise ToolkitError(f"{flag} {path}: row {r} has a NaN or infinite score")
    k = int(n_items.max())
    ids = np.zeros((len(rows), k), dtype=np.int32)
    values = np.full((len(rows), k), -np.inf, dtype=np.float32)
    column = np.arange(len(flat_items)) - np.repeat(np.cumsum(n_items) - n_items, n_items)
    row_of = np.repeat(np.arange(len(rows)), n_items)
    ids[row_of, column] = idx
    values[row_of, column] = flat_scores
    order = np.lexsort((pos, rows))
    scores_table = TeacherScores(users=rows[order], positions=pos[order], ids=ids[order], values=values[order])
    return ScoresTeacher(scores_table, split, max_history, dataset.num_items, hashlib.sha256(raw).hexdigest(),
                         str(path))


def write_teacher_scores(scores: TeacherScores, dataset: Dataset, path: str | Path) -> int:
    """Write a top-K table as the Parquet scores file (atomically); returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from toolkit.core.cache import temporary_sibling

    path = Path(path)
    item_ids = np.array(dataset.item_ids, dtype=object)
    users = np.array(dataset.user_ids, dtype=object)[scores.users]
    finite = np.isfinite(scores.values)
    items = [item_ids[ids[keep]].tolist() for ids, keep in zip(scores.ids, finite)]
    values = [v[keep].tolist() for v, keep in zip(scores.values, finite)]
    table = pa.table({"user": pa.array(users.tolist(), pa.string()),
                      "position": pa.array(scores.positions, pa.int64()),
                      "items": pa.array(items, pa.list_(pa.string())),
                      "scores": pa.array(values, pa.list_(pa.float32()))})
    tmp = temporary_sibling(path)
    pq.write_table(table, tmp)
    tmp.replace(path)
    return table.num_rows


@dataclass
class TeacherShape:
    max_history: int  # what evaluate_model reads from a model's cfg



class ScoresTeacher(nn.Module):
    """Precomputed scores as a teacher. It answers only the histories it was given: `score_last` of a
    user's whole training prefix (validation) is its last position; any other history scores every
    item equally (the evaluation then counts a miss)."""

    def __init__(self, scores, split, max_history: int, num_items: int, sha256: str,
                 path: str):
        super().__init__()
        from toolkit.training.evaluate import pad_histories

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
        from toolkit.core.errors import ToolkitError

        raise ToolkitError("a --teacher-scores teacher has no model to run; it answers its (user, position) rows only")

    def soft_labels(self, split, windows, max_history: int, stride: int, temperature: float, top_k: int,
                    full: bool):
        return self.scores.soft_labels(split, windows, max_history, stride, temperature, top_k, full)
