"""The teacher cache: keyed on everything that shapes the teacher, checked on load, and a damaged
file is retrained (logged), never a crash."""

from __future__ import annotations

from dataclasses import replace

import torch

from toolkit.teachers.ensemble import TeacherConfig, teacher_key, train_teacher
from toolkit.training.loop import TrainConfig

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


def test_the_ensemble_stops_adding_members_at_its_budget(cache_dir, small_split):
    """Each member stops at its own budget (`train.budget`: 3 steps' work here); the ensemble adds a
    member only while the work spent plus the last member's fits `TeacherConfig.budget`, says so,
    and records each member's steps and that its budget capped it."""
    from toolkit.training.loop import fit_budget

    split = small_split.sealed()
    lines: list[str] = []
    train = TrainConfig(epochs=50, batch_size=64, min_steps=0, patience=50)
    member = TeacherConfig(dim=8).member_config(split.num_items, 50)
    step = fit_budget(member, small_split, train).step_work
    capped = TeacherConfig(members=3, dim=8, budget=5 * step, train=replace(train, budget=3.5 * step))
    teacher = train_teacher(capped, split, {**DATA, "sha256": "budget"}, 50, 0, log=lines.append)
    assert len(teacher.model.members) == 1  # one member spends 3 steps' work; two would pass 5
    assert teacher.member_steps == [3] and teacher.member_capped == [True]
    assert any("1 of 3 members" in line and "TeacherConfig.budget" in line for line in lines)
    roomy = replace(capped, budget=100 * step)
    assert train_teacher(roomy, split, {**DATA, "sha256": "budget"}, 50, 0, log=lines.append).member_steps == [3, 3, 3]


def test_movielens_keeps_its_three_members_within_the_ensemble_budget(movielens):
    """MovieLens-100K's members stop early at 456, 456 and 494 steps (seed 0; ~900 the most seen):
    the ensemble's budget must leave room for a third member of 900 steps after two."""
    from toolkit.data import split_leave_one_out
    from toolkit.training.loop import fit_budget

    split = split_leave_one_out(movielens)
    cfg = TeacherConfig()
    member = fit_budget(cfg.member_config(split.num_items, 50), split, cfg.train)
    assert 3 * 900 * member.step_work <= cfg.budget
    assert member.steps >= 900
