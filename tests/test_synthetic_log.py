"""bench/synthetic.py, the scaling benchmark's log generator: deterministic, and with `every_item`
every id of the catalogue occurs (the model's catalogue is what the log holds) without moving the
users' last two items (their validation and test targets) off a draw of their own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("synthetic", Path(__file__).parents[1] / "bench" / "synthetic.py")
synthetic = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = synthetic  # dataclasses look their module up there
SPEC.loader.exec_module(synthetic)

SMALL = dict(items=5_000, interactions=30_000)


def by_user(log: dict) -> dict[str, list[str]]:
    order = np.lexsort((log["timestamp"], log["user"]))
    users, items = log["user"][order], log["item"][order]
    cut = np.flatnonzero(users[1:] != users[:-1]) + 1
    return {u[0]: list(i) for u, i in zip(np.split(users, cut), np.split(items, cut))}


def test_the_generator_is_deterministic():
    a, b = synthetic.generate(synthetic.SyntheticConfig(**SMALL)), synthetic.generate(synthetic.SyntheticConfig(**SMALL))
    assert all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_item_makes_the_whole_catalogue_occur(seed):
    plain = synthetic.generate(synthetic.SyntheticConfig(**SMALL, seed=seed))
    full = synthetic.generate(synthetic.SyntheticConfig(**SMALL, seed=seed, every_item=True))
    assert len(set(plain["item"])) < SMALL["items"]  # a Zipf tail alone leaves ids out at this size
    assert len(set(full["item"])) == SMALL["items"]
    assert len(full["item"]) == len(plain["item"])  # items replaced, none added
    # the same users with the same lengths, and their targets untouched by the replacements: the
    # items that occur once (the replacements' own) are never among a user's last two
    plain_users, full_users = by_user(plain), by_user(full)
    assert {u: len(s) for u, s in plain_users.items()} == {u: len(s) for u, s in full_users.items()}
    ids, counts = np.unique(full["item"], return_counts=True)
    once = set(ids[counts == 1]) - set(plain["item"])
    assert once and not any(i in once for s in full_users.values() for i in s[-2:])
