"""The files an app reads next to an artifact (the artifact contract, shared/DESIGN.md): their names,
and the two readers every client needs (items.json; the top_k an app keeps, from manifest.json).

Kept free of heavy imports: the native client, the verifier and the runtime demo all read these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from toolkit.core.errors import ToolkitError

ITEMS_FILE = "items.json"  # index -> original item id; index 0 is padding ""
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.npz"  # real histories and each source model's outputs (parity)
BUILD_LOG = "build.log"  # the build's whole output: the toolkit's lines, the libraries' and every epoch's
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


# --- the program's signature (retrieval mode) ----------------------------------------------------

HISTORY_INPUT = "history"  # int64 [1, L]: item indices, left-padded with 0
OUTPUTS = (("scores", "float32"), ("items", "int64"))  # each [1, K'], best first


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the runtime declares it: dims are ints, or a string for a symbolic dim."""

    name: str  # "" where the format has no names (a .pte's method is positional)
    dtype: str  # numpy-style: "int64", "float32", ...
    shape: tuple[int | str, ...]

    def text(self) -> str:
        return f"{self.name or 'unnamed'} {self.dtype} [{', '.join(str(d) for d in self.shape)}]"


def contract_differences(inputs: list[TensorSpec], outputs: list[TensorSpec], positional: bool = False) -> list[str]:
    """How a program's signature differs from the artifact contract (empty: it follows it).

    Contract: one input `history` int64 [1, L], outputs `scores` float32 [1, K'] and `items` int64
    [1, K'] with L and K' fixed positive sizes. `positional`: the format has no names (a .pte),
    so input 0 is the history and outputs 0 and 1 are scores and items.
    """
    diffs = []
    if len(inputs) != 1:
        diffs.append(f"{len(inputs)} inputs ({', '.join(t.text() for t in inputs) or 'none'}), expected one: "
                     f"{HISTORY_INPUT} int64 [1, L]")
    elif not positional and inputs[0].name != HISTORY_INPUT:
        diffs.append(f"input {inputs[0].text()}: expected the name {HISTORY_INPUT!r}")
    if inputs:
        diffs += _spec_differences("input", inputs[0], "int64")
    if positional:
        named = {name: outputs[i] for i, (name, _) in enumerate(OUTPUTS) if i < len(outputs)}
        if len(outputs) != len(OUTPUTS):
            diffs.append(f"{len(outputs)} outputs, expected {len(OUTPUTS)}: scores float32 [1, K'], items int64 [1, K']")
    else:
        named = {t.name: t for t in outputs}
        missing = [name for name, _ in OUTPUTS if name not in named]
        if missing:
            diffs.append(f"no output {' or '.join(repr(m) for m in missing)} (outputs: "
                         f"{', '.join(t.text() for t in outputs) or 'none'})")
    for name, dtype in OUTPUTS:
        if name in named:
            diffs += _spec_differences("output", named[name], dtype)
    sizes = [named[name].shape[1] for name, _ in OUTPUTS if name in named and len(named[name].shape) == 2]
    if len(sizes) == 2 and sizes[0] != sizes[1] and all(isinstance(s, int) for s in sizes):
        diffs.append(f"outputs scores and items return different numbers of candidates ({sizes[0]} and {sizes[1]})")
    return diffs


def _spec_differences(kind: str, t: TensorSpec, dtype: str) -> list[str]:
    diffs = []
    if t.dtype != dtype:
        diffs.append(f"{kind} {t.text()}: dtype {t.dtype}, expected {dtype}")
    if len(t.shape) != 2:
        diffs.append(f"{kind} {t.text()}: rank {len(t.shape)}, expected 2 ([1, {'L' if kind == 'input' else 'K'}])")
    elif t.shape[0] != 1 or not isinstance(t.shape[1], int) or t.shape[1] < 1:
        diffs.append(f"{kind} {t.text()}: shape, expected [1, {'L' if kind == 'input' else 'K'}] with a fixed size")
    return diffs
