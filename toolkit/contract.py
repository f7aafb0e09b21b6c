"""The files an app reads next to an artifact (the artifact contract, shared/DESIGN.md): their names,
and the two readers every client needs (items.json; the top_k an app keeps, from manifest.json).

Kept free of heavy imports: the native client, the verifier and the runtime demo all read these.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.errors import ToolkitError

ITEMS_FILE = "items.json"  # index -> original item id; index 0 is padding ""
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.npz"  # real histories and each source model's outputs (parity)
# manifest.json's serving.repeats: "drop" (an app drops every item the user has seen; the default,
# also for a manifest without the field) or "allow" (seen items are answers: repeat consumption)
REPEATS_MODES = ("drop", "allow")


def read_items(path: Path) -> list[str]:
    """items.json: a JSON list, index -> original item id, index 0 is padding ("")."""
    if not path.is_file():
        raise ToolkitError(f"{path}: no such file (items.json must lie next to the artifact)")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ToolkitError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(items, list) or len(items) < 2 or not all(isinstance(i, str) for i in items):
        raise ToolkitError(f"{path}: expected a JSON list of item id strings, index 0 the padding \"\"")
    return items


def read_allow_repeats(path: Path) -> bool:
    """Whether an app keeps answers the user has already seen: manifest.json's `serving.repeats` is
    "allow" (a build's `--repeats allow`); "drop", no such field or no manifest: they are dropped."""
    if not path.is_file():
        return False
    try:
        serving = json.loads(path.read_text(encoding="utf-8")).get("serving")
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise ToolkitError(f"{path}: not a valid manifest ({e})") from e
    repeats = serving.get("repeats", "drop") if isinstance(serving, dict) else "drop"
    if repeats not in REPEATS_MODES:
        raise ToolkitError(f"{path}: serving.repeats must be one of {', '.join(REPEATS_MODES)}, not {repeats!r}")
    return repeats == "allow"


def read_top_k(path: Path) -> int | None:
    """How many answers an app keeps: manifest.json's `profile.serving.top_k`; None without a manifest."""
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ToolkitError(f"{path}: not valid JSON ({e})") from e
    top_k = manifest
    for key in ("profile", "serving", "top_k"):
        top_k = top_k.get(key) if isinstance(top_k, dict) else None
    if isinstance(top_k, float) and top_k.is_integer():
        top_k = int(top_k)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ToolkitError(f"{path}: profile.serving.top_k must be a positive integer")
    return top_k
