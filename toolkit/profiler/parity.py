"""Parity: does an artifact, run in its runtime, give what the model it was exported from gave?

The build stores real test histories and, for every model it exported (the float student, and the
plan's compressed student), that model's PyTorch outputs on them: `reference.npz` holds `history`
(R, L) and `<source>_scores` (R, C), `<source>_items` (R, C) for each source ("float",
"compressed"). Parity always compares an artifact with its own source, so "parity" means one
thing everywhere; the profiler checks it again later without the PyTorch model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.core.errors import ToolkitError

PARITY_CUTOFF = 10
SOURCES = ("float", "compressed")


def write_reference(path: Path, history: np.ndarray, outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """history (R, L); outputs: source -> (scores (R, C), items (R, C))."""
    arrays = {"history": history}
    for source, (scores, items) in outputs.items():
        assert source in SOURCES, source
        arrays[f"{source}_scores"], arrays[f"{source}_items"] = scores, items
    np.savez(path, **arrays)


def load_reference(path: Path, source: str = "float") -> dict[str, np.ndarray]:
    """The stored histories and one source's outputs: {"history", "scores", "items"}."""
    try:
        with np.load(path) as data:
            return {"history": data["history"], "scores": data[f"{source}_scores"], "items": data[f"{source}_items"]}
    except (OSError, KeyError, ValueError) as e:
        raise ToolkitError(f"{path}: missing or unreadable reference outputs for the {source} model ({e})") from e


def measure_parity(predict, reference: dict[str, np.ndarray]) -> dict:
    """Top-10 exact match and overlap, and the max score error over finite scores.

    Args:
        predict: history (1, L) -> (scores (1, C), items (1, C)).
        reference: arrays from `load_reference`.
    """
    exact, overlap, max_err = 0, 0.0, 0.0
    n = len(reference["history"])
    cut = min(PARITY_CUTOFF, reference["items"].shape[1])  # an artifact may return fewer than 10
    for row in range(n):
        scores, items = predict(reference["history"][row:row + 1])
        a = [int(i) for i in items[0, :cut]]
        b = [int(i) for i in reference["items"][row, :cut]]
        exact += a == b
        overlap += len(set(a) & set(b)) / cut
        ref = reference["scores"][row]
        finite = np.isfinite(ref)
        max_err = max(max_err, float(np.abs(scores[0][finite] - ref[finite]).max()))
    return {"histories": n, "top10_exact": exact / n, "top10_agreement": overlap / n, "max_score_error": max_err}
