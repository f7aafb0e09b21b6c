"""Where histories come from besides `--history`: a user of the build's dataset, or random real ones.

The dataset is the one named in the build's manifest (MovieLens-100K by default). A build made
from a user's own file records the file's path, sha256 and how it was read (columns, encoding,
time format): it is read again the same way, from `--data PATH` when given (else the recorded
path), and the `--*-col`, `--encoding` and `--time-format` flags override what was recorded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from toolkit.data import DEFAULT_DATASET, Dataset, load_dataset
from toolkit.core.errors import ToolkitError

READ_FLAGS = ("user_col", "item_col", "time_col", "encoding", "time_format")  # how a file is read


def recorded_reading(manifest: dict) -> dict[str, str]:
    """How the build read its data file (load_dataset's keyword arguments), from the manifest."""
    recorded = manifest.get("dataset", {})
    columns = recorded.get("columns", {})
    read = {"user_col": columns.get("user"), "item_col": columns.get("item"), "time_col": columns.get("time"),
            "time_format": recorded.get("time_format")}
    if recorded.get("encoding") not in (None, "parquet"):
        read["encoding"] = recorded["encoding"]
    return {k: v for k, v in read.items() if v is not None}


def load_build_dataset(manifest: dict, data: Path | None = None, **flags: str | None) -> Dataset:
    """The dataset a build was made from, read as the build read it (`data` and `flags`, e.g.
    user_col="customer", override the manifest)."""
    recorded = manifest.get("dataset", {})
    name = recorded.get("name", DEFAULT_DATASET)
    if data is None and recorded.get("path") and Path(recorded["path"]).is_file():
        data = Path(recorded["path"])
    if data is None:
        if name != DEFAULT_DATASET:
            where = f" ({recorded['path']}: no longer there)" if recorded.get("path") else ""
            raise ToolkitError(f"the build was made from {name!r}{where}, not {DEFAULT_DATASET}: "
                               f"pass its interactions file with --data PATH")
        return load_dataset()
    read = {**recorded_reading(manifest), **{k: v for k, v in flags.items() if k in READ_FLAGS and v is not None}}
    dataset = load_dataset(str(data), **read)
    if recorded.get("sha256") and dataset.sha256 != recorded["sha256"]:
        print(f"warning: --data {data} has sha256 {dataset.sha256[:12]}..., the build recorded "
              f"{recorded['sha256'][:12]}... ({name}); ids may not match", file=sys.stderr)
    return dataset


def has_titles(manifest: dict) -> bool:
    """Whether the build's data has item titles (a manifest without the field: MovieLens-100K has them)."""
    recorded = manifest.get("dataset", {})
    return bool(recorded.get("has_titles", recorded.get("name", DEFAULT_DATASET) == DEFAULT_DATASET))


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
