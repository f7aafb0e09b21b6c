"""A time column as float64 seconds (UTC), and how it was read: epoch seconds or milliseconds (told
apart by size, `EPOCH_MS_FROM`), ISO-8601 with a zone offset (`Z`, `+02:00`: converted to UTC) or
without one (read as UTC), a Parquet timestamp type, or whatever `time_format` (strptime) names.
One format per column: a row in another is an error naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError

# Epoch numbers at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973,
# so every real log falls clearly on one side (a seconds log of today is ~1.7e9, milliseconds ~1.7e12).
EPOCH_MS_FROM = 1e11

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


def time_column(path: Path, column, name: str, time_format: str | None = None) -> tuple[np.ndarray, str]:
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
