"""Where histories come from besides `--history`: a user of the build's dataset, or random real ones.

The dataset is the one named in the build's manifest (MovieLens-100K by default). A build made
from a user's own file records only that file's name and sha256, so `--data PATH` points at it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from toolkit.data import DEFAULT_DATASET, Dataset, load_dataset
from toolkit.errors import ToolkitError


def load_build_dataset(manifest: dict, data: Path | None = None) -> Dataset:
    """The dataset a build was made from (`data` overrides where to read it)."""
    recorded = manifest.get("dataset", {})
    name = recorded.get("name", DEFAULT_DATASET)
    if data is None:
        if name != DEFAULT_DATASET:
            raise ToolkitError(f"the build was made from {name!r}, not {DEFAULT_DATASET}: "
                               f"pass its interactions file with --data PATH")
        return load_dataset()
    dataset = load_dataset(str(data))
    if recorded.get("sha256") and dataset.sha256 != recorded["sha256"]:
        print(f"warning: --data {data} has sha256 {dataset.sha256[:12]}..., the build recorded "
              f"{recorded['sha256'][:12]}... ({name}); ids may not match", file=sys.stderr)
    return dataset


def user_history(dataset: Dataset, user: str) -> list[str]:
    """The user's whole history as original item ids, oldest first."""
    try:
        row = dataset.user_ids.index(user)
    except ValueError:
        sample = ", ".join(dataset.user_ids[:3])
        raise ToolkitError(f"--user {user!r}: no such user in {dataset.name} "
                           f"({len(dataset.user_ids)} users, ids like {sample}, ...)") from None
    return [dataset.item_ids[i] for i in dataset.sequences[row]]


def sample_histories(dataset: Dataset, n: int, seed: int = 0) -> list[list[str]]:
    """n random real histories: a random user's first t interactions (t >= 1), as original ids."""
    rng = np.random.default_rng(seed)
    per_user = [[dataset.item_ids[i] for i in seq] for seq in dataset.sequences]
    users = rng.integers(0, len(per_user), size=n)
    cuts = rng.random(n)
    return [per_user[u][: 1 + int(c * len(per_user[u]))] for u, c in zip(users, cuts)]
