"""The teacher: an ensemble of SASRec models, trained once and cached.

Distilling an ensemble into one small student is an established win: the ensemble's averaged
distribution is smoother and more accurate than any single member's. The teacher's size is its
number of members, not its width: on MovieLens-100K a dim-64 member overfits and scores below a
dim-32 one (valid NDCG@10 0.116 vs 0.125, mean of 3 seeds), and 3 dim-32 members together reach
0.131.

With a knowledge graph (`kg`, `toolkit.teachers.graph.KnowledgeGraph`) the members are knowledge-graph
members (`toolkit.teachers.kg`: SASRec whose item vectors also carry the graph, TransE-initialised)
and the teacher is a `toolkit.teachers.kg.KGTeacher`; the key then also holds the graph files'
sha256, the graph settings and the code of toolkit/teachers/graph/ and toolkit/teachers/kg.py.

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

from toolkit.core.cache import cache_path, code_version, temporary_sibling
from toolkit.data import Split
from toolkit.core.errors import ToolkitError
from toolkit.teachers.graph import KGConfig
from toolkit.training.loop import MOVIELENS_MEMBER_STEP, TrainConfig

CACHE_FORMAT = 3  # bump when the cached file layout changes (3: trained_with)
# the modules whose code shapes a trained teacher: a change to any of them retrains it
_CODE = ("models", "training/loop.py", "training/losses.py", "teachers/ensemble.py", "training/evaluate.py", "data", "training/distributed.py")
# the whole ensemble's compute (toolkit/training/loop.py's budgets): 2,800 MovieLens member steps, so MovieLens-100K
# keeps its 3 members while they stop early within ~930 steps each (seed 0: 456, 456, 494; ~900 the most
# seen), and a log whose members reach `train.budget` (1,200 such steps) trains 2
ENSEMBLE_BUDGET = 2_800 * MOVIELENS_MEMBER_STEP


@dataclass
class TeacherConfig:
    kind: str = "ensemble"  # a key of toolkit.teachers.KINDS (the registry is the one list of kinds)
    members: int = 3
    # multiply-adds for the whole ensemble: a member is added only while the work spent plus the last
    # member's stays within it (each member has its own `train.budget` too)
    budget: float = ENSEMBLE_BUDGET
    dim: int = 32  # measured on ML-100K (valid NDCG@10, 3 seeds): dim 64 members 0.116, dim 32 members 0.125
    layers: int = 1
    heads: int = 1
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)
    kg: KGConfig = field(default_factory=KGConfig)  # kind "kg": how the graph enters the items
    kg_triples: str | None = None  # kind "kg": the graph's files (None: the dataset's own, MovieLens-100K)
    kg_links: str | None = None
    module: str | None = None  # kind "external": MODULE:FACTORY
    scores: str | None = None  # kind "scores": a Parquet file of precomputed soft labels

    def to_dict(self) -> dict:
        return asdict(self)

    def member_config(self, num_items: int, max_history: int):
        from toolkit.models.sasrec import ModelConfig

        return ModelConfig(num_items=num_items, dim=self.dim, layers=self.layers, heads=self.heads,
                           max_history=max_history, dropout=self.dropout)


@dataclass
class TrainedEnsemble:
    """The trained (or cached) ensemble and how it was trained."""

    model: object  # toolkit.models.sasrec.Ensemble
    seconds: float  # training time (0 when loaded from the cache)
    cached: bool
    cache_path: Path
    key: dict
    member_valid_ndcg10: list[float] = field(default_factory=list)  # each member's (selection) figure
    trained_with: dict = field(default_factory=dict)  # {"world_size", "backend"} of the run that trained it
    members: int = 0  # models in the ensemble: fewer than asked when TeacherConfig.budget binds
    member_steps: list[int] = field(default_factory=list)  # optimizer steps each member took
    member_capped: list[bool] = field(default_factory=list)  # stopped by its budget, not by early stopping


def teacher_key(cfg: TeacherConfig, data_key: dict, num_items: int, max_history: int, seed: int, kg=None) -> dict:
    teacher = cfg.to_dict()
    teacher["train"].pop("threads")  # how many threads trained it does not change what it is
    for name in ("kind", "kg", "kg_triples", "kg_links", "module", "scores"):
        teacher.pop(name)  # the graph enters below, by content; the other kinds are not trained here
    key = {"format": CACHE_FORMAT, "code": code_version(*_CODE), "data": data_key, "teacher": teacher,
           "num_items": num_items, "max_history": max_history, "seed": seed}
    if kg is not None:
        key["kg"] = {"graph": kg.key(), "config": cfg.kg.to_dict(),
                     "code": code_version("teachers/graph", "teachers/kg.py")}
    return key


def teacher_path(key: dict) -> Path:
    """Where the teacher of `key` is cached."""
    return cache_path("teachers", key, ".pt")


def train_teacher(cfg: TeacherConfig, split: Split, data_key: dict, max_history: int, seed: int,
                  log=print, world=None, kg=None) -> TrainedEnsemble:
    """Train the ensemble (member i uses seed + i), or load it from the cache; with `kg` (a
    `toolkit.teachers.graph.KnowledgeGraph` aligned with the split's items) a `KGTeacher`.

    On the ranks of `world` (toolkit.training.distributed) all ranks train each member together; rank 0's
    cache decides for all (its members are broadcast on a hit) and rank 0 alone writes the file.
    """
    import torch

    from toolkit.training.distributed import SINGLE
    from toolkit.training.loop import fit

    world = world or SINGLE
    member_cfg = cfg.member_config(split.num_items, max_history)
    key = teacher_key(cfg, data_key, split.num_items, max_history, seed, kg)
    world.check_same(key, "teacher key (data, settings, code)")
    path = teacher_path(key)
    make = _member_factory(cfg, member_cfg, kg, seed, log)
    cached = world.broadcast(_load(path, key, make, log) if world.is_main and path.is_file() else None)
    if cached is not None:
        members, trained_with = cached
        return TrainedEnsemble(model=_teacher_model(members, kg, cfg).eval(), seconds=0.0, cached=True,
                               cache_path=path, key=key, trained_with=trained_with, members=len(members))
    start = time.perf_counter()
    members, scores, steps, capped, spent = [], [], [], [], 0.0
    for i in range(cfg.members):
        torch.manual_seed(seed + i)
        init = make(pretrained=True) if kg is not None else None
        result = fit(member_cfg, split, replace(cfg.train, seed=seed + i), init=init,
                     desc=f"teacher {i + 1}/{cfg.members}", world=world)
        members.append(result.model)
        scores.append(result.valid.ndcg)
        steps.append(result.steps)
        capped.append(result.capped)
        spent += result.work
        if i + 1 < cfg.members and spent + result.work > cfg.budget:
            log(f"teacher: {len(members)} of {cfg.members} members (capped: {spent:.3g} multiply-adds spent, one "
                f"more would pass the ensemble's budget of {cfg.budget:.3g}: TeacherConfig.budget)")
            break
    trained_with = world.trained_with()
    if world.is_main:  # every rank holds the same members: one writes
        tmp = temporary_sibling(path)
        torch.save({"key": key, "states": [m.state_dict() for m in members], "member_valid_ndcg10": scores,
                    "trained_with": trained_with}, tmp)
        tmp.replace(path)  # atomic: an interrupted build never leaves a half-written teacher
    return TrainedEnsemble(model=_teacher_model(members, kg, cfg).eval(), seconds=time.perf_counter() - start,
                           cached=False, cache_path=path, key=key, member_valid_ndcg10=scores,
                           trained_with=trained_with, members=len(members), member_steps=steps, member_capped=capped)


def _member_factory(cfg: TeacherConfig, member_cfg, kg, seed: int, log):
    """make(pretrained) -> a fresh member: SASRec, or a knowledge-graph member (TransE pretrained once,
    when asked and `cfg.kg.transe`)."""
    from toolkit.models.sasrec import SASRec

    if kg is None:
        return lambda pretrained=False: SASRec(member_cfg)
    from toolkit.teachers.graph import pretrain_transe
    from toolkit.teachers.kg import kg_member

    transe = {}

    def make(pretrained: bool = False):
        if pretrained and cfg.kg.transe and "vectors" not in transe:
            start = time.perf_counter()
            transe["vectors"] = pretrain_transe(kg, replace(cfg.kg.transe_config, dim=cfg.dim, seed=seed))
            log(f"TransE on {len(kg.heads):,} triples in {time.perf_counter() - start:.0f} s")
        return kg_member(member_cfg, kg, cfg.kg, transe.get("vectors") if pretrained else None)

    return make


def _teacher_model(members: list, kg, cfg: TeacherConfig):
    from toolkit.models.sasrec import Ensemble

    if kg is None:
        return Ensemble(members)
    from toolkit.teachers.graph import kg_item_neighbours
    from toolkit.teachers.kg import KGTeacher

    return KGTeacher(members, kg_item_neighbours(kg, cfg.kg.item_neighbours))


def _load(path: Path, key: dict, make, log) -> tuple[list, dict] | None:
    """The cached members and how they were trained, or None (logged) when the file is unreadable or
    was made for something else."""
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("key") != key:
            log(f"teacher cache {path} was made from other data, settings or code; training the teacher again")
            return None
        members = []
        for state in saved["states"]:
            member = make()
            member.load_state_dict(state)
            members.append(member.eval())
        return members, dict(saved["trained_with"])
    except Exception as e:  # a truncated or corrupt file raises many types (pickle, zip, size mismatch)
        log(f"teacher cache {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            "training the teacher again")
        return None
