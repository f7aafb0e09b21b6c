"""Interaction data: loading (MovieLens-100K or a user's file), the item vocabulary and the split.

The default dataset comes from the files `recbole/dataset_example/ml-100k/*` inside the
`recbole==1.2.1` wheel on PyPI: the wheel is fetched with `pip download --no-deps`, its sha256 is
checked against the pinned value, and it is read as a zip (recbole itself is never imported).
The extracted files are cached under the user's cache directory.

A user's file (CSV, TSV, RecBole `.inter`, Parquet) is read column-wise with pyarrow and every id
is mapped with vectorised numpy (no Python loop per row), so 10^7 interactions load in seconds.
Ids are strings and stay distinct strings: `"12"`, `"012"` and `"١٢"` are three items.
Timestamps are epoch seconds or milliseconds (told apart by size, `EPOCH_MS_FROM`), ISO-8601 with a
zone offset (`Z`, `+02:00`: converted to UTC) or without one (read as UTC), or whatever
`time_format` (strptime) names; one format per column, a row in another is an error naming it.
Exact duplicates (same user, item and instant) are dropped and counted; repeat consumption (the
same item again at another time) is kept: whether an app may recommend a seen item is the build's
`repeats` mode (`DataSummary`).

Split (leave-one-out by time): each user's interactions are sorted by timestamp, stably (ties
keep file order); the last one is test, the one before it validation, the rest training.
Item indices start at 1; 0 is padding.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from toolkit.core.contract import REPEATS_MODES
from toolkit.core.errors import ToolkitError
from toolkit.core.wheels import WheelError, unpack_wheel

DEFAULT_DATASET = "movielens-100k"
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
ML100K_MEMBERS = ("ml-100k.inter", "ml-100k.item", "ml-100k.kg", "ml-100k.link")
ML100K_ZIP_DIR = "recbole/dataset_example/ml-100k/"

# column names recognised without a --*-col flag (case-insensitive, first match wins): the common
# spellings of recommender datasets, and of shops', news apps' and players' own event exports
USER_COLUMNS = ("user_id", "user", "userId", "userid", "uid", "customer_id", "customer", "visitor_id", "visitorid",
                "client_id", "member_id", "account_id")
ITEM_COLUMNS = ("item_id", "item", "itemId", "itemid", "movieId", "movie_id", "iid", "product_id", "product", "sku",
                "article_id", "track_id", "content_id")
TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date", "event_time", "event_timestamp", "created_at",
                "occurred_at")
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".inter", ".parquet")
MIN_INTERACTIONS_PER_USER = 3  # train + validation + test
# Epoch numbers at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973,
# so every real log falls clearly on one side (a seconds log of today is ~1.7e9, milliseconds ~1.7e12).
EPOCH_MS_FROM = 1e11
# Above this share of test users whose test item is already in their history (so that, with seen
# items never recommended, they can never be hit) the build warns: MovieLens-100K has none (a film
# is rated once); 5% already caps HR@10 at 0.95 and means the log has repeat consumption, where
# `--repeats allow` measures what the app would really show.
UNREACHABLE_WARN_SHARE = 0.05
SPLIT_RULE = "leave-one-out by time (stable): last = test, second to last = validation, rest = training"
_ASCII_INTEGER = re.compile(r"-?[0-9]+")


class TestDataAccessError(AssertionError):
    """Test targets were read where only training and validation data may be (a bug, not bad input)."""


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
    columns: dict[str, str] = field(default_factory=dict)  # role (user/item/time) -> column read
    encoding: str = "utf-8"
    path: str = ""  # the file read ("" for the default dataset's cache)
    rows_read: int = 0  # data rows in the file
    duplicates_dropped: int = 0  # exact duplicates (same user, item, instant) after the first
    time_format: str | None = None  # the strptime format the time column was read with (None: detected)
    time_read_as: str = ""  # how the time column was read, e.g. "epoch seconds"

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
            "columns": dict(self.columns),
            "encoding": self.encoding,
            "time_format": self.time_format,
            "time_read_as": self.time_read_as,
            "rows_read": self.rows_read,
            "duplicates_dropped": self.duplicates_dropped,
            "has_titles": bool(self.titles),
            "path": str(Path(self.path).resolve()) if self.path else "",  # "" for the default dataset
        }

    def key(self) -> dict:
        """Everything about the data that shapes a model trained on it (part of every cache key)."""
        return {"sha256": self.sha256, "columns": dict(self.columns), "encoding": self.encoding,
                "min_interactions": MIN_INTERACTIONS_PER_USER, "split": SPLIT_RULE,
                "users": len(self.user_ids), "items": self.num_items - 1, "interactions": self.num_interactions,
                # only when given: the keys of every cache made before the flag existed stay valid
                **({"time_format": self.time_format} if self.time_format is not None else {})}


@dataclass
class Split:
    """Leave-one-out split: training prefix, validation item and test item per user.

    `sealed()` gives the same split with the test targets locked away: training, planning and
    model selection get that one, so reading a test target there raises `TestDataAccessError`.
    """

    train: list[np.ndarray]
    valid_target: np.ndarray  # (U,)
    test_target_: np.ndarray  # (U,) read through `test_target`
    num_items: int
    is_sealed: bool = False
    eval_rows: np.ndarray | None = None  # users that evaluation reads (None: all); training reads everyone
    allow_repeats: bool = False  # evaluation keeps seen items as answers (the build's `--repeats allow`)

    @property
    def test_target(self) -> np.ndarray:
        if self.is_sealed:
            raise TestDataAccessError("a test target was read while training or choosing a model "
                                      "(only training and validation data may be used there)")
        return self.test_target_

    def sealed(self) -> Split:
        return replace(self, is_sealed=True)

    def subset(self, users: np.ndarray) -> Split:
        """The split of these users only (row indices), sealed if this one is."""
        return replace(self, train=[self.train[u] for u in users.tolist()], valid_target=self.valid_target[users],
                       test_target_=self.test_target_[users], eval_rows=None)

    def relabelled(self, new_of_old: np.ndarray) -> Split:
        """The same split with every item index mapped through `new_of_old` (N,) (0 stays 0)."""
        return replace(self, train=[new_of_old[t] for t in self.train], valid_target=new_of_old[self.valid_target],
                       test_target_=new_of_old[self.test_target_])

    def evaluated_on(self, n: int, seed: int = 0) -> Split:
        """The same split, evaluated on a fixed random sample of n users (all when n is 0 or at least
        their number): full ranking over a large catalogue for every user costs users x items."""
        if not n or n >= len(self.train):
            return replace(self, eval_rows=None)
        return replace(self, eval_rows=np.sort(np.random.default_rng(seed).choice(len(self.train), n, replace=False)))

    def history(self, phase: str) -> list[np.ndarray]:
        """What the model sees before predicting `phase` ("valid" or "test"), for the evaluated users."""
        rows = range(len(self.train)) if self.eval_rows is None else self.eval_rows.tolist()
        if phase == "valid":
            return [self.train[u] for u in rows]
        if phase == "test":
            return [np.append(self.train[u], self.valid_target[u]) for u in rows]
        raise ValueError(f"unknown phase {phase!r}")

    def target(self, phase: str) -> np.ndarray:
        """The evaluated users' targets of `phase`."""
        if phase not in ("valid", "test"):
            raise ValueError(f"unknown phase {phase!r}")
        targets = self.valid_target if phase == "valid" else self.test_target
        return targets if self.eval_rows is None else targets[self.eval_rows]


@dataclass
class DataSummary:
    """What the build read and what it kept: in the build log, the manifest (`data`) and the report."""

    name: str
    rows_read: int  # data rows of the file (MovieLens-100K: its 100,000 ratings)
    duplicates_dropped: int  # exact duplicates (same user, item and instant), the first kept
    users_dropped: int  # users with fewer than MIN_INTERACTIONS_PER_USER events (after duplicates)
    users: int
    items: int
    interactions: int  # events kept
    time_read_as: str
    repeats: str  # REPEATS_MODES: "drop" (seen items are never recommended) or "allow"
    repeat_events: int  # events of an item the user already had earlier (repeat consumption, kept)
    test_users: int
    test_targets_seen: int  # users whose test item is already in their history
    warn_share: float = UNREACHABLE_WARN_SHARE

    @property
    def unreachable_test_targets(self) -> int:
        """Test targets no model can hit: in the history, and seen items are dropped (0 under "allow")."""
        return self.test_targets_seen if self.repeats == "drop" else 0

    def text(self) -> str:
        seen = self.test_targets_seen
        share = seen / max(self.test_users, 1)
        targets = (f"{self.unreachable_test_targets} of {self.test_users} test targets ({share:.1%}) unreachable (already in "
                   "the user's history; --repeats drop never recommends a seen item)" if self.repeats == "drop" else
                   f"--repeats allow: seen items may be recommended and count as hits ({seen} of {self.test_users} "
                   f"test targets, {share:.1%}, are repeats)")
        return (f"data: {self.name}: {self.rows_read:,} rows read, {self.duplicates_dropped:,} exact duplicates dropped, "
                f"{self.users_dropped:,} users dropped (fewer than {MIN_INTERACTIONS_PER_USER} events); {self.users:,} "
                f"users, {self.items:,} items, {self.interactions:,} interactions ({self.repeat_events:,} repeat events "
                f"kept); time read as {self.time_read_as}; {targets}")

    def warnings(self) -> list[str]:
        share = self.unreachable_test_targets / max(self.test_users, 1)
        if share <= self.warn_share:
            return []
        return [f"warning: {self.unreachable_test_targets} of {self.test_users} test users ({share:.0%}, above "
                f"{self.warn_share:.0%}) can never be hit: their test item is already in their history and "
                "--repeats drop never recommends a seen item; if users re-consume items (groceries, music, re-reads) "
                "build with --repeats allow"]

    def to_dict(self) -> dict:
        return {**asdict(self), "unreachable_test_targets": self.unreachable_test_targets}


def summarize(dataset: Dataset, split: Split, repeats: str) -> DataSummary:
    """The data summary of a build (every user, not only the evaluated sample)."""
    repeat_events = sum(len(s) - len(np.unique(s)) for s in dataset.sequences)
    seen = sum(bool(t == v or np.any(h == t)) for h, v, t in zip(split.train, split.valid_target.tolist(),
                                                                split.test_target_.tolist()))
    return DataSummary(name=dataset.name, rows_read=dataset.rows_read or dataset.num_interactions,
                       duplicates_dropped=dataset.duplicates_dropped, users_dropped=dataset.dropped_users,
                       users=len(dataset.user_ids), items=dataset.num_items - 1, interactions=dataset.num_interactions,
                       time_read_as=dataset.time_read_as, repeats=repeats, repeat_events=int(repeat_events),
                       test_users=len(split.train), test_targets_seen=int(seen))


def check_repeats(repeats: str) -> str:
    if repeats not in REPEATS_MODES:
        raise ToolkitError(f"--repeats {repeats!r}: not valid; valid: {', '.join(REPEATS_MODES)}")
    return repeats


def split_leave_one_out(dataset: Dataset, allow_repeats: bool = False) -> Split:
    """Last interaction is test, the one before validation, the rest training."""
    train = [s[:-2] for s in dataset.sequences]
    valid = np.array([s[-2] for s in dataset.sequences], dtype=np.int64)
    test = np.array([s[-1] for s in dataset.sequences], dtype=np.int64)
    return Split(train=train, valid_target=valid, test_target_=test, num_items=dataset.num_items,
                 allow_repeats=allow_repeats)


def cache_dir() -> Path:
    """Where downloaded data and trained teachers are kept (override with TOOLKIT_CACHE_DIR)."""
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-rec-toolkit"


def check_data_path(data: str | None) -> Path | None:
    """The user's file (None for the default dataset), checked without reading it: exists, known type."""
    if data is None or data == DEFAULT_DATASET:
        return None
    path = Path(data)
    expected = f"a {', '.join(SUPPORTED_SUFFIXES)} file of interactions"
    if path.is_dir():
        raise ToolkitError(f"--data {path}: is a directory; expected {expected}")
    if path.exists() and not path.is_file():
        raise ToolkitError(f"--data {path}: not a regular file; expected {expected}")
    if not path.is_file():
        raise ToolkitError(f"--data {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ToolkitError(f"--data {path}: unsupported file type {suffix!r}; valid: {', '.join(SUPPORTED_SUFFIXES)}")
    if not os.access(path, os.R_OK):
        raise ToolkitError(f"--data {path}: not readable (permission denied)")
    return path


def check_encoding(encoding: str) -> str:
    import codecs

    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ToolkitError(f"--encoding {encoding!r}: unknown encoding; e.g. utf-8, latin-1, cp1252, utf-16") from None


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


# --- MovieLens-100K from the RecBole wheel -------------------------------------------------------


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
    table = _read_table(path, path.read_bytes(), "utf-8")
    header = [_strip_type(h) for h in table.column_names]
    if "item_id" not in header or "movie_title" not in header:
        return {}
    columns = {name: table.column(i).to_pylist() for i, name in enumerate(header)}
    years = columns.get("release_year", [""] * table.num_rows)
    return {i: f"{t} ({y})" if y else t for i, t, y in zip(columns["item_id"], columns["movie_title"], years)}


# --- A user's interaction file -------------------------------------------------------------------


def read_interactions(
    path: Path,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    encoding: str = "utf-8",
    time_format: str | None = None,
) -> Dataset:
    """Read CSV/TSV/Parquet/RecBole .inter interactions into time-ordered sequences (exact duplicates dropped).

    Args:
        time_format: a strptime format for the time column (e.g. "%d/%m/%Y %H:%M"); None detects
            epoch seconds / milliseconds and ISO-8601.
    """
    path = check_data_path(str(path)) or path
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    if path.suffix.lower() == ".parquet":
        table = _read_parquet(path)
        encoding = "parquet"
    else:
        encoding = check_encoding(encoding)
        table = _read_table(path, raw, encoding)
    del raw
    header = [_strip_type(h) for h in table.column_names]
    if table.num_rows == 0:
        raise ToolkitError(f"--data {path}: no interactions (need a header row and data rows)")
    u = _pick_column(path, header, user_col, USER_COLUMNS, "--user-col")
    i = _pick_column(path, header, item_col, ITEM_COLUMNS, "--item-col")
    t = _pick_column(path, header, time_col, TIME_COLUMNS, "--time-col")
    users = _id_column(path, table.column(u), header[u])
    items = _id_column(path, table.column(i), header[i])
    stamps, read_as = _time_column(path, table.column(t), header[t], time_format)
    dataset = _build_dataset(path, sha256, users, items, stamps)
    dataset.columns = {"user": header[u], "item": header[i], "time": header[t]}
    dataset.encoding = encoding
    dataset.time_format, dataset.time_read_as = time_format, read_as
    return dataset


def _read_table(path: Path, raw: bytes, encoding: str):
    """A delimited text file as a pyarrow table of strings; bad bytes and rows named by line."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    if encoding.replace("_", "-") in ("utf-8", "utf-8-sig"):
        _check_utf8(path, raw)
    else:
        try:
            raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise ToolkitError(f"--data {path}: line {_line_of(raw, e.start)} is not valid {encoding} "
                               f"(byte 0x{raw[e.start]:02x})") from None
    header = _header_names(path, raw, encoding, delimiter)
    try:
        return pcsv.read_csv(
            pa.py_buffer(raw),
            read_options=pcsv.ReadOptions(encoding=encoding, column_names=header, skip_rows=1),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as e:
        raise ToolkitError(f"--data {path}: {_find_bad_row(raw, encoding, delimiter) or str(e).splitlines()[0]}") from None


def _check_utf8(path: Path, raw: bytes) -> None:
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise ToolkitError(f"--data {path}: line {_line_of(raw, nul)} holds a NUL byte: not a text file "
                           "(give a CSV/TSV text file, or a .parquet file)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolkitError(f"--data {path}: line {_line_of(raw, e.start)} is not valid UTF-8 (byte 0x{raw[e.start]:02x}); "
                           "if the file is in another encoding, pass it with --encoding (e.g. --encoding latin-1)") from None


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def _header_names(path: Path, raw: bytes, encoding: str, delimiter: str) -> list[str]:
    import csv
    import io

    first = raw.split(b"\n", 1)[0].decode(encoding).lstrip("\ufeff").rstrip("\r")
    names = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    if not names or not any(n.strip() for n in names):
        raise ToolkitError(f"--data {path}: no header row (the first line must name the columns)")
    if len(set(names)) != len(names):
        raise ToolkitError(f"--data {path}: the header names a column twice ({', '.join(names)})")
    return names


def _find_bad_row(raw: bytes, encoding: str, delimiter: str) -> str | None:
    """The first row whose field count differs from the header's (only on the error path)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(raw.decode(encoding).lstrip("\ufeff"), newline=""), delimiter=delimiter)
    width = None
    for row in reader:
        if width is None:
            width = len(row)
        elif row and len(row) != width:
            return f"line {reader.line_num} has {len(row)} fields, the header has {width}"
    return None


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise ToolkitError(f"--data {path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


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


def _id_column(path: Path, column, name: str) -> tuple[np.ndarray, list[str]]:
    """An id column as (codes (R,) int64, distinct ids), dictionary-encoded by pyarrow; a missing or
    empty id is an error naming its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        raise ToolkitError(f"--data {path}: column {name!r} holds floating-point numbers; ids must be strings or integers")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_length(column), 0))
    if pc.any(empty).as_py():
        row = int(pc.index(empty, True).as_py())
        raise ToolkitError(f"--data {path}: data row {row + 1} (line {row + 2} of a text file) has an empty "
                           f"{name!r}; every interaction needs a user id and an item id")
    encoded = pc.dictionary_encode(column.combine_chunks() if hasattr(column, "combine_chunks") else column)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


_NUMBER = r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?"
_ISO_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_ISO_TIME = r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
# how a time string looks -> what it is read as; a column holds one of them throughout
TIME_FORMATS = {
    "number": f"^{_NUMBER}$",
    "ISO-8601 with a zone offset": f"^{_ISO_DATE}{_ISO_TIME} ?(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$",
    "ISO-8601 without a zone offset": f"^{_ISO_DATE}({_ISO_TIME})?$",
}
_TIME_HELP = ("epoch seconds or milliseconds, or ISO-8601 (e.g. 2024-06-15T05:16:01Z, 2024-06-15T07:16:01+02:00, "
              "2024-06-15); for another format pass --time-format (strptime, e.g. '%d/%m/%Y %H:%M')")


def _row_text(row: int) -> str:
    return f"data row {row + 1} (line {row + 2} of a text file)"


def _time_column(path: Path, column, name: str, time_format: str | None = None) -> tuple[np.ndarray, str]:
    """Timestamps as float64 seconds (UTC), and how they were read: epoch seconds or milliseconds,
    ISO-8601 (zone offsets converted to UTC; without one read as UTC), a Parquet timestamp type, or
    `time_format` (strptime). One format per column: the first row in another is an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        read_as = f"Parquet {column.type}" + (" (UTC)" if getattr(column.type, "tz", None) else "")
        column = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
        return column.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6, read_as
    if time_format is not None:
        return _strptime_column(path, column, name, time_format)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(values).any():
            raise ToolkitError(f"--data {path}: {_row_text(int(np.flatnonzero(np.isnan(values))[0]))} has no {name!r} "
                               "(empty or NaN)")
        return _epoch(path, name, values, [str(v) for v in values[:1].tolist()])
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    empty = pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_length(text), 0))
    if pc.any(empty).as_py():
        raise ToolkitError(f"--data {path}: {_row_text(int(pc.index(empty, True).as_py()))} has no {name!r} (empty)")
    first = text[0].as_py()
    kind = next((k for k, pattern in TIME_FORMATS.items() if pc.match_substring_regex(text[:1], pattern)[0].as_py()),
                None)
    if kind is None:
        raise ToolkitError(f"--data {path}: column {name!r} must hold {_TIME_HELP}; {_row_text(0)} holds {first!r}")
    other = pc.invert(pc.match_substring_regex(text, TIME_FORMATS[kind]))
    if pc.any(other).as_py():
        row = int(pc.index(other, True).as_py())
        raise ToolkitError(f"--data {path}: column {name!r} mixes time formats: {_row_text(row)} holds "
                           f"{text[row].as_py()!r}, data row 1 holds {first!r} ({kind}); use one format throughout, "
                           "or name it with --time-format")
    if kind == "number":
        return _epoch(path, name, pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False), text.to_pylist())
    zoned = kind == "ISO-8601 with a zone offset"
    target = pa.timestamp("us", tz="UTC") if zoned else pa.timestamp("us")
    text = pc.replace_substring(text, ",", ".")  # ISO allows a decimal comma; Arrow reads the point
    try:
        stamps = pc.cast(text, target)
    except pa.ArrowInvalid:  # shaped like a date but not one (month 13): find the first such row
        row = next(r for r, v in enumerate(text.to_pylist()) if not pc.is_valid(_try_cast(v, target)).as_py())
        raise ToolkitError(f"--data {path}: {_row_text(row)} holds {text[row].as_py()!r} in column {name!r}: "
                           "not a valid date/time") from None
    seconds = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    return seconds, f"{kind}{', converted to UTC' if zoned else ' (read as UTC)'}"


def _try_cast(value: str, target):
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(pa.scalar(value), target)
    except pa.ArrowInvalid:
        return pa.scalar(None, target)


def _epoch(path: Path, name: str, values: np.ndarray, texts: list[str]) -> tuple[np.ndarray, str]:
    """Epoch numbers as seconds: milliseconds when they lie at or above EPOCH_MS_FROM, seconds below;
    a column with both is an error naming the first row on the other side."""
    ms = np.abs(values) >= EPOCH_MS_FROM
    if ms.any() and not ms.all():
        row = int(np.flatnonzero(ms != ms[0])[0])
        units = ("milliseconds", "seconds") if ms[0] else ("seconds", "milliseconds")
        raise ToolkitError(f"--data {path}: column {name!r} mixes epoch {units[0]} and {units[1]}: {_row_text(row)} "
                           f"holds {texts[row] if row < len(texts) else values[row]!r}, data row 1 holds {texts[0]!r}")
    return (values / 1000.0, "epoch milliseconds") if ms[0] else (values, "epoch seconds")


def _strptime_column(path: Path, column, name: str, time_format: str) -> tuple[np.ndarray, str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.fill_null(pc.utf8_trim_whitespace(pc.cast(column, pa.string())), "")
    try:
        stamps = pc.strptime(text, format=time_format, unit="us", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ToolkitError(f"--time-format {time_format!r}: not a strptime format ({str(e).splitlines()[0]})") from None
    bad = pc.is_null(stamps)
    if pc.any(bad).as_py():
        row = int(pc.index(bad, True).as_py())
        raise ToolkitError(f"--data {path}: {_row_text(row)} holds {text[row].as_py()!r} in column {name!r}, which "
                           f"does not match --time-format {time_format!r}")
    seconds = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    return seconds, f"--time-format {time_format!r}" + (", converted to UTC" if stamps.type.tz else " (read as UTC)")


def _sorted_codes(codes: np.ndarray, values: list[str], used: np.ndarray | None = None
                  ) -> tuple[np.ndarray, list[str]]:
    """Renumber dictionary codes so ids sort numerically when every id is an ASCII integer, else as
    strings; ids with the same value ("7", "07") stay distinct. `used` (bool per value) keeps only
    those values. Returns (new codes, sorted ids)."""
    keep = np.arange(len(values)) if used is None else np.flatnonzero(used)
    kept = [values[k] for k in keep.tolist()]
    if all(_ASCII_INTEGER.fullmatch(x) for x in kept):
        order = sorted(range(len(kept)), key=lambda j: (int(kept[j]), kept[j]))
    else:
        order = sorted(range(len(kept)), key=lambda j: kept[j])
    rank = np.full(len(values), -1, dtype=np.int64)
    rank[keep[np.asarray(order, dtype=np.int64)]] = np.arange(len(kept))
    return rank[codes], [kept[j] for j in order]


def _build_dataset(path: Path, sha256: str, users: tuple[np.ndarray, list[str]], items: tuple[np.ndarray, list[str]],
                   stamps: np.ndarray) -> Dataset:
    rows_read = len(stamps)
    first = first_occurrences(users[0], items[0], stamps)
    users, items, stamps = (users[0][first], users[1]), (items[0][first], items[1]), stamps[first]
    user_codes, user_values = users
    counts = np.bincount(user_codes, minlength=len(user_values))
    kept_users = counts >= MIN_INTERACTIONS_PER_USER
    if not kept_users.any():
        raise ToolkitError(f"--data {path}: no user has {MIN_INTERACTIONS_PER_USER} or more interactions "
                           "(one for training, one for validation, one for test)")
    rows = kept_users[user_codes]
    user_index, user_ids = _sorted_codes(user_codes[rows], user_values, kept_users)
    item_codes = items[0][rows]
    item_index, item_ids = _sorted_codes(item_codes, items[1], np.bincount(item_codes, minlength=len(items[1])) > 0)
    item_index = item_index + 1  # 0 is padding
    stamps = stamps[rows]
    order = np.lexsort((np.arange(len(stamps)), stamps, user_index))  # by user, then time; ties keep file order
    item_index, user_index = item_index[order], user_index[order]
    bounds = np.flatnonzero(np.diff(user_index)) + 1
    return Dataset(
        name=path.stem,
        sha256=sha256,
        item_ids=[""] + item_ids,
        user_ids=user_ids,
        sequences=np.split(item_index, bounds),
        num_interactions=int(len(item_index)),
        dropped_users=int((~kept_users).sum()),
        path=str(path),
        rows_read=rows_read,
        duplicates_dropped=rows_read - len(first),
    )


def first_occurrences(user_codes: np.ndarray, item_codes: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row indices (file order) of the first of each set of exact duplicates: the same user, item and
    instant (times compare after conversion, so 07:16+02:00 and 05:16Z are one event)."""
    order = np.lexsort((np.arange(len(stamps)), stamps, item_codes, user_codes))
    u, i, t = user_codes[order], item_codes[order], stamps[order]
    again = np.zeros(len(order), dtype=bool)
    again[1:] = (u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1])
    return np.sort(order[~again])


def first_users(dataset: Dataset, n: int) -> Dataset:
    """The first n users (quick runs): items keep their indices so the vocabulary is unchanged."""
    return replace(dataset, user_ids=dataset.user_ids[:n], sequences=dataset.sequences[:n],
                   num_interactions=sum(len(s) for s in dataset.sequences[:n]))
