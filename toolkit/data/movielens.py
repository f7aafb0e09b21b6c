"""The default dataset, MovieLens-100K: the files `recbole/dataset_example/ml-100k/*` inside the
`recbole==1.2.1` wheel on PyPI. The wheel is fetched with `pip download --no-deps`, its sha256 is
checked against the pinned value, and it is read as a zip (recbole itself is never imported).
The extracted files are cached under the toolkit's cache directory. `load_dataset` reads it, or a
user's file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from toolkit.core.cache import cache_dir
from toolkit.core.errors import ToolkitError
from toolkit.core.wheels import WheelError, unpack_wheel
from toolkit.data.dataset import Dataset
from toolkit.data.read import DEFAULT_DATASET, check_data_path, read_interactions, read_table, strip_type

RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
ML100K_MEMBERS = ("ml-100k.inter", "ml-100k.item", "ml-100k.kg", "ml-100k.link")
ML100K_ZIP_DIR = "recbole/dataset_example/ml-100k/"


def load_dataset(
    data: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    encoding: str = "utf-8",
    time_format: str | None = None,
) -> Dataset:
    """Load the default MovieLens-100K (data=None) or a user's interaction file."""
    path = check_data_path(data)
    if path is None:
        return load_movielens_100k()
    return read_interactions(path, user_col=user_col, item_col=item_col, time_col=time_col, encoding=encoding,
                             time_format=time_format)


def movielens_100k_files() -> Path:
    """Fetch (once) and return the folder holding ml-100k.inter, .item, .kg and .link."""
    target = cache_dir() / "movielens-100k"
    if all((target / m).is_file() for m in ML100K_MEMBERS):
        return target

    def extract(zf: zipfile.ZipFile, staging: Path) -> None:
        for member in ML100K_MEMBERS:
            (staging / member).write_bytes(zf.read(ML100K_ZIP_DIR + member))

    try:
        unpack_wheel(RECBOLE_WHEEL, target, extract, sha256=RECBOLE_WHEEL_SHA256)
    except WheelError as e:
        raise ToolkitError(f"dataset {DEFAULT_DATASET}: {e}") from None
    return target


def load_movielens_100k() -> Dataset:
    folder = movielens_100k_files()
    dataset = read_interactions(folder / "ml-100k.inter")
    dataset.name = DEFAULT_DATASET
    dataset.path = ""
    dataset.titles = read_titles(folder / "ml-100k.item")
    return dataset


def read_titles(path: Path) -> dict[str, str]:
    """Item id -> "title (year)" from a RecBole .item file."""
    table = read_table(path, path.read_bytes(), "utf-8")
    header = [strip_type(h) for h in table.column_names]
    if "item_id" not in header or "movie_title" not in header:
        return {}
    columns = {name: table.column(i).to_pylist() for i, name in enumerate(header)}
    years = columns.get("release_year", [""] * table.num_rows)
    return {i: f"{t} ({y})" if y else t for i, t, y in zip(columns["item_id"], columns["movie_title"], years)}
