"""Bring your own teacher, as a torch module (`--teacher MODULE:FACTORY`): loaded and probed by
toolkit/models/user_module.py (the contract is there), then distilled like the toolkit's own.

Its soft labels are taken once: for every user and every position of the user's training prefix,
the module's top-K items and scores given the (up to) `max_history` items before (a
`toolkit.teachers.scores.TeacherScores` table), cached under the toolkit's cache keyed on the module
file's sha256, its weights' sha256, the data and K. `python -m toolkit teacher-scores`
(toolkit/teachers/scores.py) writes the same table as Parquet, so the two paths give the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from torch import nn

from toolkit.core.errors import ToolkitError
from toolkit.data import Dataset, Split
from toolkit.models.user_module import load_user_module, one_line, parse_module_spec, probe_histories
from toolkit.teachers.scores import TeacherScores, TeacherShape, write_teacher_scores

CACHE_FORMAT = 1
SCORE_BATCH = 64


def load_module_teacher(spec: str, dataset: Dataset, split: Split, max_history: int, flag: str = "--teacher"):
    """Call the factory, check what it returns on real histories, and wrap it (`ExternalTeacher`)."""
    loaded = load_user_module(spec, dataset.item_ids, probe_histories(split.train), max_history, flag,
                              others="kg, ensemble")
    return ExternalTeacher(loaded.module, spec, max_history, loaded.file_sha256, loaded.weights_sha256)


def module_scores(module, split: Split, max_history: int, top_k: int) -> TeacherScores:
    """Run a module teacher on every position of every user's training prefix: its top-K there."""
    import torch

    from toolkit.training.evaluate import pad_histories

    histories, users, positions = [], [], []  # one window per max_history positions of a prefix
    for u, seq in enumerate(split.train):
        for end in range(len(seq), 0, -max_history):
            start = max(0, end - max_history)
            histories.append(seq[start:end])
            users.append(np.full(end - start, u))
            positions.append(np.arange(start, end))
    padded = pad_histories(histories, max_history)
    k = min(top_k, split.num_items - 1)
    ids, values = [], []
    with torch.no_grad():
        for i in range(0, len(padded), SCORE_BATCH):
            batch = torch.from_numpy(padded[i:i + SCORE_BATCH])
            scores = module(batch).float()  # (B, T, N)
            scores[..., 0] = float("-inf")  # padding is never an answer
            v, x = torch.topk(scores, k, dim=-1)
            real = batch != 0
            ids.append(x[real].to(torch.int32).numpy())
            values.append(v[real].numpy())
    users, positions = np.concatenate(users), np.concatenate(positions)
    # windows were taken from each prefix's end backwards: put rows in (user, position) order
    order = np.lexsort((positions, users))
    return TeacherScores(users=users[order], positions=positions[order], ids=np.concatenate(ids)[order],
                         values=np.concatenate(values)[order].astype(np.float32))


def cached_module_scores(teacher, split: Split, data_key: dict, top_k: int, log=print) -> tuple[TeacherScores, bool]:
    """A module teacher's top-K table, from the cache (keyed on its file's and weights' sha256, the
    data, the window and K) or computed and stored; (table, whether it came from the cache)."""
    from toolkit.core.cache import cache_path, temporary_sibling

    key = {"format": CACHE_FORMAT, "teacher": teacher.key(), "data": data_key, "max_history": teacher.cfg.max_history,
           "top_k": top_k}
    path = cache_path("external", key, ".npz")
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == _key_text(key):
                    return TeacherScores(z["users"], z["positions"], z["ids"], z["values"]), True
            log(f"teacher scores cache {path} was made for another teacher or data; scoring again")
        except Exception as e:  # a truncated or corrupt file raises many types
            log(f"teacher scores cache {path} is unreadable ({one_line(e)}); scoring again")
    scores = module_scores(teacher.module, split, teacher.cfg.max_history, top_k)
    tmp = temporary_sibling(path)
    with open(tmp, "wb") as f:
        np.savez(f, key=np.array(_key_text(key)), users=scores.users, positions=scores.positions, ids=scores.ids,
                 values=scores.values)
    tmp.replace(path)
    return scores, False


def _key_text(key: dict) -> str:
    import json

    return json.dumps(key, sort_keys=True)


class ExternalTeacher(nn.Module):
    """A user's module as a teacher: evaluated through it (log-probabilities), distilled from its
    cached top-K table (`soft_labels`). No item vectors: logit distillation only."""

    def __init__(self, module, spec: str, max_history: int, file_sha: str, weights_sha: str):
        super().__init__()
        self.module = module
        self.spec = spec
        self.cfg = TeacherShape(max_history)
        self.file_sha256, self.weights_sha256 = file_sha, weights_sha
        self.scores = None  # toolkit.teachers.scores.TeacherScores, set by `prepare_scores`

    def forward(self, history):
        return F.log_softmax(self.module(history).float(), dim=-1)

    def score_last(self, history):
        return self.forward(history)[:, -1, :]

    def key(self) -> dict:
        return {"kind": "external", "spec": self.spec, "file_sha256": self.file_sha256,
                "weights_sha256": self.weights_sha256}

    def prepare_scores(self, split, data_key: dict, top_k: int, log=print) -> bool:
        """Compute (or load from the cache) the top-K table; True when it came from the cache."""
        self.scores, cached = cached_module_scores(self, split, data_key, top_k, log)
        return cached

    def soft_labels(self, split, windows, max_history: int, stride: int, temperature: float, top_k: int,
                    full: bool):
        if self.scores is None:  # not prepared through the pipeline (a direct distill() call)
            self.scores = module_scores(self.module, split, self.cfg.max_history, top_k)
        return self.scores.soft_labels(split, windows, max_history, stride, temperature, top_k, full)


@dataclass
class TeacherScoresConfig:
    """`python -m toolkit teacher-scores`: which module, which data, where to write."""

    teacher: str  # MODULE:FACTORY
    out: str  # the Parquet file to write
    data: str | None = None  # None = MovieLens-100K
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    encoding: str = "utf-8"
    time_format: str | None = None  # strptime format of the time column (None: detected)
    profile: str = "mobile-arm"  # max_history comes from the profile the student will serve
    top_k: int = 64  # items per position (the distillation's top_k)
    max_users: int = 0  # > 0: the first N users only (as `build --max-users`)


def teacher_scores_command(cfg: TeacherScoresConfig, log=print) -> int:
    """Load the data and the module (checked), score every training position, write the file."""
    from toolkit.data import check_data_path, first_users, load_dataset, split_leave_one_out
    from toolkit.core.profiles import load_profile

    max_history = load_profile(cfg.profile).serving.max_history
    parse_module_spec(cfg.teacher, "--teacher")
    out = Path(cfg.out)
    if out.suffix.lower() != ".parquet":
        raise ToolkitError(f"--out {out}: the scores file must end in .parquet")
    if not out.parent.is_dir():
        raise ToolkitError(f"--out {out}: folder {out.parent} does not exist")
    check_data_path(cfg.data)
    dataset = load_dataset(cfg.data, cfg.user_col, cfg.item_col, cfg.time_col, cfg.encoding, cfg.time_format)
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    split = split_leave_one_out(dataset).sealed()
    teacher = load_module_teacher(cfg.teacher, dataset, split, max_history)
    log(f"scoring {sum(len(t) for t in split.train):,} training positions of {len(split.train):,} users with "
        f"{cfg.teacher} (top {cfg.top_k}, max_history {max_history})")
    return write_teacher_scores(module_scores(teacher.module, split, max_history, cfg.top_k), dataset, out)
