"""How the toolkit writes a size: bytes with the unit that fits (B, KB, MB, GB), in one place.

Decimal units, as the profiles write their budgets (`model_bytes = 60_000` is 60 KB): 1 KB =
1,000 B. Three significant digits, so a 60 KB budget reads "60.0 KB" (not "0.06 MB") and a 4 MB
one "4.00 MB"; report.json keeps the exact byte counts.
"""

from __future__ import annotations

UNITS = (("GB", 1e9), ("MB", 1e6), ("KB", 1e3))


def byte_unit(n: float) -> tuple[str, float]:
    """The unit that fits `n` bytes and its size in bytes, e.g. (\"KB\", 1000.0) for 60,000."""
    for name, size in UNITS:
        if abs(n) >= size:
            return name, size
    return "B", 1.0


def format_bytes(n: float | None) -> str:
    """e.g. 512 -> "512 B", 58_432 -> "58.4 KB", 4_000_000 -> "4.00 MB", None -> "unknown"."""
    if n is None:
        return "unknown"
    name, size = byte_unit(n)
    if name == "B":
        return f"{n:.0f} B"
    value = n / size
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {name}"
