"""The teacher: an ensemble of SASRec models, trained once and cached.

Distilling an ensemble into one small student is an established win: the ensemble's averaged
distribution is smoother and more accurate than any single member's. The teacher's size is its
number of members, not its width: on MovieLens-100K a dim-64 member overfits and scores below a
dim-32 one (valid NDCG@10 0.116 vs 0.125, mean of 3 seeds), and 3 dim-32 members together reach
0.131 (test 0.114). The trained teacher is
cached under the user's cache dir, keyed by the data's sha256, the configs and the seed, so a
second build reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from toolkit.data import Split, cache_dir
from toolkit.models import Ensemble, ModelConfig, SASRec
from toolkit.train import TrainConfig, fit

CACHE_FORMAT = 1  # bump when the cached file layout changes


@dataclass
class TeacherConfig:
    members: int = 3
    dim: int = 32  # measured on ML-100K (valid NDCG@10, 3 seeds): dim 64 members 0.116, dim 32 members 0.125
    layers: int = 1
    heads: int = 1
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def member_config(self, num_items: int, max_history: int) -> ModelConfig:
        return ModelConfig(num_items=num_items, dim=self.dim, layers=self.layers, heads=self.heads,
                           max_history=max_history, dropout=self.dropout)


@dataclass
class Teacher:
    model: Ensemble
    seconds: float  # training time (0 when loaded from the cache)
    cached: bool
    cache_path: Path


def teacher_cache_path(cfg: TeacherConfig, data_key: str, num_items: int, max_history: int, seed: int) -> Path:
    teacher = cfg.to_dict()
    teacher["train"].pop("threads")  # how many threads trained it does not change what it is
    key = json.dumps({"format": CACHE_FORMAT, "data": data_key, "teacher": teacher, "num_items": num_items,
                      "max_history": max_history, "seed": seed}, sort_keys=True)
    return cache_dir() / "teachers" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def train_teacher(cfg: TeacherConfig, split: Split, data_key: str, max_history: int, seed: int) -> Teacher:
    """Train the ensemble (member i uses seed + i), or load it from the cache."""
    member_cfg = cfg.member_config(split.num_items, max_history)
    path = teacher_cache_path(cfg, data_key, split.num_items, max_history, seed)
    if path.is_file():
        states = torch.load(path, map_location="cpu", weights_only=True)
        members = []
        for state in states:
            member = SASRec(member_cfg)
            member.load_state_dict(state)
            members.append(member.eval())
        return Teacher(model=Ensemble(members).eval(), seconds=0.0, cached=True, cache_path=path)
    start = time.perf_counter()
    members = []
    for i in range(cfg.members):
        result = fit(member_cfg, split, replace(cfg.train, seed=seed + i), desc=f"teacher {i + 1}/{cfg.members}")
        members.append(result.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save([m.state_dict() for m in members], tmp)
    tmp.replace(path)  # atomic: an interrupted build never leaves a half-written teacher
    return Teacher(model=Ensemble(members).eval(), seconds=time.perf_counter() - start, cached=False, cache_path=path)
