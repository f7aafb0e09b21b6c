"""Interaction data: loading (MovieLens-100K or a user's file), the item vocabulary and the split.

The default dataset comes from the files `recbole/dataset_example/ml-100k/*` inside the
`recbole==1.2.1` wheel on PyPI: the wheel is fetched with `pip download --no-deps`, its sha256 is
checked against the pinned value, and it is read as a zip (recbole itself is never imported).
The extracted files are cached under the user's cache directory.

Split (leave-one-out by time): each user's interactions are sorted by timestamp, stably (ties
keep file order); the last one is test, the one before it validation, the rest training.
Item indices start at 1; 0 is padding.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from toolkit.errors import ToolkitError

DEFAULT_DATASET = "movielens-100k"
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_FILE = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
ML100K_MEMBERS = ("ml-100k.inter", "ml-100k.item")
ML100K_ZIP_DIR = "recbole/dataset_example/ml-100k/"

USER_COLUMNS = ("user_id", "user", "userId", "userid", "uid")
ITEM_COLUMNS = ("item_id", "item", "itemId", "itemid", "movieId", "movie_id", "iid")
TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date")
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".inter", ".parquet")
MIN_INTERACTIONS_PER_USER = 3  # train + validation + test


@dataclass
class Dataset:
    """Users' interaction sequences in time order, as item indices (1..num_items-1)."""

    name: str
    sha256: str
    item_ids: list[str]  # index -> original item id; index 0 is padding ("")
    user_ids: list[str]  # row -> original user id
    sequences: list[np.ndarray]  # per user, item indices oldest first
    titles: dict[str, str] = field(default_factory=dict)  # original item id -> title
    num_interactions: int = 0
    dropped_users: int = 0  # users with fewer than MIN_INTERACTIONS_PER_USER interactions

    @property
    def num_items(self) -> int:
        """Vocabulary size including the padding index 0."""
        return len(self.item_ids)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "users": len(self.user_ids),
            "items": self.num_items - 1,
            "interactions": self.num_interactions,
            "dropped_users": self.dropped_users,
        }


@dataclass
class Split:
    """Leave-one-out split: training prefix, validation item and test item per user."""

    train: list[np.ndarray]
    valid_target: np.ndarray  # (U,)
    test_target: np.ndarray  # (U,)
    num_items: int

    def history(self, phase: str) -> list[np.ndarray]:
        """What the model sees before predicting `phase` ("valid" or "test")."""
        if phase == "valid":
            return self.train
        if phase == "test":
            return [np.append(t, v) for t, v in zip(self.train, self.valid_target)]
        raise ValueError(f"unknown phase {phase!r}")

    def target(self, phase: str) -> np.ndarray:
        return self.valid_target if phase == "valid" else self.test_target


def split_leave_one_out(dataset: Dataset) -> Split:
    """Last interaction is test, the one before validation, the rest training."""
    train = [s[:-2] for s in dataset.sequences]
    valid = np.array([s[-2] for s in dataset.sequences], dtype=np.int64)
    test = np.array([s[-1] for s in dataset.sequences], dtype=np.int64)
    return Split(train=train, valid_target=valid, test_target=test, num_items=dataset.num_items)


def cache_dir() -> Path:
    """Where downloaded data and trained teachers are kept (override with TOOLKIT_CACHE_DIR)."""
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-rec-toolkit"


def load_dataset(
    data: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Dataset:
    """Load the default MovieLens-100K (data=None) or a user's interaction file."""
    if data is None or data == DEFAULT_DATASET:
        return load_movielens_100k()
    return read_interactions(Path(data), user_col=user_col, item_col=item_col, time_col=time_col)


# --- MovieLens-100K from the RecBole wheel -------------------------------------------------------


def movielens_100k_files() -> Path:
    """Fetch (once) and return the folder holding ml-100k.inter and ml-100k.item."""
    target = cache_dir() / "movielens-100k"
    if all((target / m).is_file() for m in ML100K_MEMBERS):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(tmp) / RECBOLE_WHEEL_FILE
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE_WHEEL, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.is_file():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolkitError(f"dataset {DEFAULT_DATASET}: could not download {RECBOLE_WHEEL} from PyPI ({last})")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != RECBOLE_WHEEL_SHA256:
            raise ToolkitError(
                f"dataset {DEFAULT_DATASET}: {RECBOLE_WHEEL_FILE} has sha256 {digest}, expected {RECBOLE_WHEEL_SHA256}"
            )
        staging = Path(tempfile.mkdtemp(dir=_ensure_dir(target.parent)))
        with zipfile.ZipFile(wheel) as zf:
            for member in ML100K_MEMBERS:
                (staging / member).write_bytes(zf.read(ML100K_ZIP_DIR + member))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a half-extracted cache is never seen
    return target


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_movielens_100k() -> Dataset:
    folder = movielens_100k_files()
    dataset = read_interactions(folder / "ml-100k.inter")
    dataset.name = DEFAULT_DATASET
    dataset.titles = read_titles(folder / "ml-100k.item")
    return dataset


def read_titles(path: Path) -> dict[str, str]:
    """Item id -> "title (year)" from a RecBole .item file."""
    rows = _read_rows(path)
    header = [_strip_type(h) for h in rows[0]]
    if "item_id" not in header or "movie_title" not in header:
        return {}
    i_id, i_title = header.index("item_id"), header.index("movie_title")
    i_year = header.index("release_year") if "release_year" in header else None
    titles = {}
    for row in rows[1:]:
        if len(row) <= max(i_id, i_title):
            continue
        year = row[i_year] if i_year is not None and i_year < len(row) and row[i_year] else ""
        titles[row[i_id]] = f"{row[i_title]} ({year})" if year else row[i_title]
    return titles


# --- A user's interaction file -------------------------------------------------------------------


def read_interactions(
    path: Path,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Dataset:
    """Read CSV/TSV/Parquet/RecBole .inter interactions into time-ordered sequences."""
    if not path.is_file():
        raise ToolkitError(f"--data {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ToolkitError(f"--data {path}: unsupported file type {suffix!r}; valid: {', '.join(SUPPORTED_SUFFIXES)}")
    raw = path.read_bytes()
    if suffix == ".parquet":
        header, columns = _read_parquet(path)
    else:
        rows = _read_rows(path, raw)
        if len(rows) < 2:
            raise ToolkitError(f"--data {path}: no interactions (need a header row and data rows)")
        header = [_strip_type(h) for h in rows[0]]
        columns = None
        body = rows[1:]
    u = _pick_column(path, header, user_col, USER_COLUMNS, "--user-col")
    i = _pick_column(path, header, item_col, ITEM_COLUMNS, "--item-col")
    t = _pick_column(path, header, time_col, TIME_COLUMNS, "--time-col")
    if columns is not None:
        users, items, times = columns[u], columns[i], columns[t]
    else:
        width = len(header)
        for n, row in enumerate(body, start=2):
            if len(row) != width:
                raise ToolkitError(f"--data {path}: line {n} has {len(row)} fields, the header has {width}")
        users = [r[u] for r in body]
        items = [r[i] for r in body]
        times = [r[t] for r in body]
    stamps = _parse_times(path, header[t], times)
    return _build_dataset(path.stem, hashlib.sha256(raw).hexdigest(), users, items, stamps)


def _read_rows(path: Path, raw: bytes | None = None) -> list[list[str]]:
    raw = path.read_bytes() if raw is None else raw
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]


def _read_parquet(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a declared dependency
        raise ToolkitError(f"--data {path}: reading Parquet needs pyarrow (pip install pyarrow)") from e
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise ToolkitError(f"--data {path}: not a readable Parquet file ({e})") from e
    header = list(table.column_names)
    columns = [[str(v) for v in table.column(c).to_pylist()] for c in header]
    return header, columns


def _strip_type(name: str) -> str:
    """RecBole headers look like `user_id:token`; keep the name."""
    return name.split(":", 1)[0].strip()


def _pick_column(path: Path, header: list[str], chosen: str | None, known: tuple[str, ...], flag: str) -> int:
    if chosen is not None:
        if chosen not in header:
            raise ToolkitError(f"{flag} {chosen!r}: no such column in {path}; columns: {', '.join(header)}")
        return header.index(chosen)
    lowered = [h.lower() for h in header]
    for name in known:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    raise ToolkitError(
        f"--data {path}: no column named any of {', '.join(known)}; columns: {', '.join(header)}; name it with {flag}"
    )


def _parse_times(path: Path, column: str, values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        pass
    try:
        return np.array([datetime.fromisoformat(v).timestamp() for v in values], dtype=np.float64)
    except ValueError as e:
        raise ToolkitError(
            f"--data {path}: column {column!r} must hold numbers or ISO dates ({e})"
        ) from e


def _sort_key(ids: set[str]) -> list[str]:
    """Integer ids sort numerically, anything else as strings: a stable, readable vocabulary."""
    if all(x.lstrip("-").isdigit() for x in ids):
        return sorted(ids, key=int)
    return sorted(ids)


def _build_dataset(name: str, sha256: str, users: list[str], items: list[str], stamps: np.ndarray) -> Dataset:
    per_user: dict[str, list[int]] = {}
    for row, user in enumerate(users):
        per_user.setdefault(user, []).append(row)
    kept = {u: rows for u, rows in per_user.items() if len(rows) >= MIN_INTERACTIONS_PER_USER}
    if not kept:
        raise ToolkitError(f"--data {name}: no user has {MIN_INTERACTIONS_PER_USER} or more interactions")
    vocab = [""] + _sort_key({items[r] for rows in kept.values() for r in rows})
    index = {item: i for i, item in enumerate(vocab)}
    user_ids = _sort_key(set(kept))
    sequences = []
    for user in user_ids:
        rows = np.array(kept[user])
        order = np.argsort(stamps[rows], kind="stable")  # ties keep file order
        sequences.append(np.array([index[items[r]] for r in rows[order]], dtype=np.int64))
    return Dataset(
        name=name,
        sha256=sha256,
        item_ids=vocab,
        user_ids=user_ids,
        sequences=sequences,
        num_interactions=sum(len(s) for s in sequences),
        dropped_users=len(per_user) - len(kept),
    )
