"""The teacher cache: keyed on everything that shapes the teacher, checked on load, and a damaged
file is retrained (logged), never a crash."""

from __future__ import annotations

from dataclasses import replace

import torch

from toolkit.teacher import TeacherConfig, teacher_key, train_teacher
from toolkit.train import TrainConfig

CFG = TeacherConfig(members=1, dim=8, train=TrainConfig(epochs=1, batch_size=64))
DATA = {"sha256": "abc", "columns": {"user": "user_id", "item": "item_id", "time": "timestamp"}, "min_interactions": 3,
        "split": "leave-one-out", "max_users": 150}


def test_the_key_covers_data_columns_split_settings_and_code():
    base = teacher_key(CFG, DATA, 1683, 50, 0)
    changed = [teacher_key(CFG, {**DATA, "columns": {**DATA["columns"], "time": "ts"}}, 1683, 50, 0),
               teacher_key(CFG, {**DATA, "min_interactions": 5}, 1683, 50, 0),
               teacher_key(CFG, {**DATA, "split": "random"}, 1683, 50, 0),
               teacher_key(replace(CFG, dropout=0.3), DATA, 1683, 50, 0),
               teacher_key(replace(CFG, train=replace(CFG.train, lr=1e-3)), DATA, 1683, 50, 0),
               teacher_key(CFG, DATA, 1683, 20, 0), teacher_key(CFG, DATA, 1683, 50, 1)]
    assert all(k != base for k in changed)
    assert base["code"] and teacher_key(replace(CFG, train=replace(CFG.train, threads=4)), DATA, 1683, 50, 0) == base


def test_a_damaged_cache_is_retrained_and_said(cache_dir, small_split):
    torch.set_num_threads(1)
    split = small_split.sealed()
    first = train_teacher(CFG, split, DATA, 50, 0, log=lambda *_: None)
    assert not first.cached and first.cache_path.is_file()
    again = train_teacher(CFG, split, DATA, 50, 0, log=lambda *_: None)
    assert again.cached
    data = first.cache_path.read_bytes()
    first.cache_path.write_bytes(data[: len(data) // 2])  # truncated (a full disk, a killed copy)
    lines = []
    retrained = train_teacher(CFG, split, DATA, 50, 0, log=lines.append)
    assert not retrained.cached and any("unreadable" in x and "training the teacher again" in x for x in lines)
    # a file whose stored key differs (copied from elsewhere) is not trusted either
    other = train_teacher(replace(CFG, dropout=0.1), split, DATA, 50, 0, log=lambda *_: None)
    other.cache_path.replace(retrained.cache_path)
    lines.clear()
    assert not train_teacher(CFG, split, DATA, 50, 0, log=lines.append).cached
    assert any("other data, settings or code" in x for x in lines)


def test_the_ensemble_stops_adding_members_at_its_step_budget(cache_dir, small_split):
    """Each member is capped at `train.max_steps` (it stops at the end of the epoch that reaches
    them); the ensemble adds a member only while its spent steps plus the last member's fit the
    budget, and says so."""
    split = small_split.sealed()
    lines: list[str] = []
    capped = TeacherConfig(members=3, dim=8, max_steps=5, train=TrainConfig(epochs=50, batch_size=64, min_steps=0,
                                                                           max_steps=3, patience=50))
    teacher = train_teacher(capped, split, {**DATA, "sha256": "budget"}, 50, 0, log=lines.append)
    assert len(teacher.model.members) == 1  # one member spends >= 3 steps; two would pass 5
    assert any("1 of 3 members" in line and "budget" in line for line in lines)
    roomy = replace(capped, max_steps=10_000)
    assert len(train_teacher(roomy, split, {**DATA, "sha256": "budget"}, 50, 0, log=lines.append).model.members) == 3
