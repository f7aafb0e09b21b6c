"""A user's interaction file (CSV, TSV, RecBole `.inter`, Parquet): checked, read column-wise with
pyarrow, its user, item and time columns found (by flag or by a known name) and its ids
dictionary-encoded with vectorised numpy (no Python loop per row), so 10^7 interactions load in
seconds. Ids are strings and stay distinct strings: `"12"`, `"012"` and `"١٢"` are three items.
Encodings are checked before reading: a bad byte or row is an error naming its line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError
from toolkit.data.dataset import Dataset, build_dataset
from toolkit.data.times import time_column

DEFAULT_DATASET = "movielens-100k"  # what --data names the default dataset by (toolkit/data/movielens.py)

# column names recognised without a --*-col flag (case-insensitive, first match wins): the common
# spellings of recommender datasets, and of shops', news apps' and players' own event exports
USER_COLUMNS = ("user_id", "user", "userId", "userid", "uid", "customer_id", "customer", "visitor_id", "visitorid",
                "client_id", "member_id", "account_id")
ITEM_COLUMNS = ("item_id", "item", "itemId", "itemid", "movieId", "movie_id", "iid", "product_id", "product", "sku",
                "article_id", "track_id", "content_id")
TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date", "event_time", "event_timestamp", "created_at",
                "occurred_at")
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".inter", ".parquet")


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
        table = read_table(path, raw, encoding)
    del raw
    header = [strip_type(h) for h in table.column_names]
    if table.num_rows == 0:
        raise ToolkitError(f"--data {path}: no interactions (need a header row and data rows)")
    u = _pick_column(path, header, user_col, USER_COLUMNS, "--user-col")
    i = _pick_column(path, header, item_col, ITEM_COLUMNS, "--item-col")
    t = _pick_column(path, header, time_col, TIME_COLUMNS, "--time-col")
    users = _id_column(path, table.column(u), header[u])
    items = _id_column(path, table.column(i), header[i])
    stamps, read_as = time_column(path, table.column(t), header[t], time_format)
    dataset = build_dataset(path, sha256, users, items, stamps)
    dataset.columns = {"user": header[u], "item": header[i], "time": header[t]}
    dataset.encoding = encoding
    dataset.time_format, dataset.time_read_as = time_format, read_as
    return dataset


def read_table(path: Path, raw: bytes, encoding: str):
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


def strip_type(name: str) -> str:
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
