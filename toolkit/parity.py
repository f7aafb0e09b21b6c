"""Parity: does an artifact, run in its runtime, give what the PyTorch serving graph gave?

The build stores real test histories and the PyTorch outputs for them (`reference.npz`: arrays
`history` (R, L), `scores` (R, K), `items` (R, K)) next to the artifacts, so parity can be checked
again later (the profiler does) without the PyTorch model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.errors import ToolkitError

PARITY_CUTOFF = 10


def load_reference(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {k: data[k] for k in ("history", "scores", "items")}
    except (OSError, KeyError, ValueError) as e:
        raise ToolkitError(f"{path}: missing or unreadable reference outputs ({e})") from e


def measure_parity(predict, reference: dict[str, np.ndarray]) -> dict:
    """Top-10 exact match and overlap, and the max score error over finite scores.

    Args:
        predict: history (1, L) -> (scores (1, K), items (1, K)).
        reference: arrays from `load_reference`.
    """
    exact, overlap, max_err = 0, 0.0, 0.0
    n = len(reference["history"])
    for row in range(n):
        scores, items = predict(reference["history"][row:row + 1])
        a = [int(i) for i in items[0, :PARITY_CUTOFF]]
        b = [int(i) for i in reference["items"][row, :PARITY_CUTOFF]]
        exact += a == b
        overlap += len(set(a) & set(b)) / PARITY_CUTOFF
        ref = reference["scores"][row]
        finite = np.isfinite(ref)
        max_err = max(max_err, float(np.abs(scores[0][finite] - ref[finite]).max()))
    return {"histories": n, "top10_exact": exact / n, "top10_agreement": overlap / n, "max_score_error": max_err}
