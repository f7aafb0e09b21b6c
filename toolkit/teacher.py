"""The teacher: an ensemble of SASRec models, trained once and cached.

Distilling an ensemble into one small student is an established win: the ensemble's averaged
distribution is smoother and more accurate than any single member's. The teacher's size is its
number of members, not its width: on MovieLens-100K a dim-64 member overfits and scores below a
dim-32 one (valid NDCG@10 0.116 vs 0.125, mean of 3 seeds), and 3 dim-32 members together reach
0.131.

The trained teacher is cached under the user's cache dir. Its key covers everything that shapes
it: the data (sha256, columns read, minimum interactions, split rule, users kept), every config
field, the vocabulary and window, the seed and the code that trains it (a hash of the modules). The
key is stored inside the file and checked on load; a file that does not load, or whose key does
not match, is logged and the teacher is trained again. Loading uses `torch.load(weights_only=True)`.
How many processes trained it (`python -m toolkit train-teacher` under torchrun) is not part of
the key, a 2-rank teacher is the same config; it is stored with it (`trained_with`) and reported.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from toolkit.cache import cache_path, code_version, temporary_sibling
from toolkit.data import Split
from toolkit.train import TrainConfig

CACHE_FORMAT = 3  # bump when the cached file layout changes (3: trained_with)
# the modules whose code shapes a trained teacher: a change to any of them retrains it
_CODE = ("models.py", "train.py", "teacher.py", "evaluate.py", "data.py", "distributed.py")


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

    def member_config(self, num_items: int, max_history: int):
        from toolkit.models import ModelConfig

        return ModelConfig(num_items=num_items, dim=self.dim, layers=self.layers, heads=self.heads,
                           max_history=max_history, dropout=self.dropout)


@dataclass
class Teacher:
    model: object  # toolkit.models.Ensemble
    seconds: float  # training time (0 when loaded from the cache)
    cached: bool
    cache_path: Path
    key: dict
    member_valid_ndcg10: list[float] = field(default_factory=list)  # each member's (selection) figure
    trained_with: dict = field(default_factory=dict)  # {"world_size", "backend"} of the run that trained it


def teacher_key(cfg: TeacherConfig, data_key: dict, num_items: int, max_history: int, seed: int) -> dict:
    teacher = cfg.to_dict()
    teacher["train"].pop("threads")  # how many threads trained it does not change what it is
    return {"format": CACHE_FORMAT, "code": code_version(*_CODE), "data": data_key, "teacher": teacher,
            "num_items": num_items, "max_history": max_history, "seed": seed}


def teacher_path(key: dict) -> Path:
    """Where the teacher of `key` is cached."""
    return cache_path("teachers", key, ".pt")


def train_teacher(cfg: TeacherConfig, split: Split, data_key: dict, max_history: int, seed: int,
                  log=print, world=None) -> Teacher:
    """Train the ensemble (member i uses seed + i), or load it from the cache.

    On the ranks of `world` (toolkit.distributed) all ranks train each member together; rank 0's
    cache decides for all (its members are broadcast on a hit) and rank 0 alone writes the file.
    """
    import torch

    from toolkit.distributed import SINGLE
    from toolkit.models import Ensemble, SASRec
    from toolkit.train import fit

    world = world or SINGLE
    member_cfg = cfg.member_config(split.num_items, max_history)
    key = teacher_key(cfg, data_key, split.num_items, max_history, seed)
    world.check_same(key, "teacher key (data, settings, code)")
    path = teacher_path(key)
    cached = world.broadcast(_load(path, key, member_cfg, log) if world.is_main and path.is_file() else None)
    if cached is not None:
        members, trained_with = cached
        return Teacher(model=Ensemble(members).eval(), seconds=0.0, cached=True, cache_path=path, key=key,
                       trained_with=trained_with)
    start = time.perf_counter()
    members, scores = [], []
    for i in range(cfg.members):
        result = fit(member_cfg, split, replace(cfg.train, seed=seed + i), desc=f"teacher {i + 1}/{cfg.members}",
                     world=world)
        members.append(result.model)
        scores.append(result.valid.ndcg)
    trained_with = world.trained_with()
    if world.is_main:  # every rank holds the same members: one writes
        tmp = temporary_sibling(path)
        torch.save({"key": key, "states": [m.state_dict() for m in members], "member_valid_ndcg10": scores,
                    "trained_with": trained_with}, tmp)
        tmp.replace(path)  # atomic: an interrupted build never leaves a half-written teacher
    return Teacher(model=Ensemble(members).eval(), seconds=time.perf_counter() - start, cached=False,
                   cache_path=path, key=key, member_valid_ndcg10=scores, trained_with=trained_with)


def _load(path: Path, key: dict, member_cfg, log) -> tuple[list, dict] | None:
    """The cached members and how they were trained, or None (logged) when the file is unreadable or
    was made for something else."""
    import torch

    from toolkit.models import SASRec

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("key") != key:
            log(f"teacher cache {path} was made from other data, settings or code; training the teacher again")
            return None
        members = []
        for state in saved["states"]:
            member = SASRec(member_cfg)
            member.load_state_dict(state)
            members.append(member.eval())
        return members, dict(saved["trained_with"])
    except Exception as e:  # a truncated or corrupt file raises many types (pickle, zip, size mismatch)
        log(f"teacher cache {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            "training the teacher again")
        return None
