"""What a build left next to an artifact, for profiling it: the manifest.json entry that lists this exact
file (matched by sha256: precision, reference source, parity minimum, quality) and the reference.npz
it is compared with (the build's, or `profile --reference`).
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.core.contract import MANIFEST_FILE, REFERENCE_FILE
from toolkit.core.errors import ToolkitError
from toolkit.profiler.records import ProfileRequest, Quality


def request_from_manifest(path: Path, sha256: str) -> ProfileRequest:
    """What the build recorded about this exact artifact (matched by sha256), if it is there."""
    try:
        manifest = json.loads((path.parent / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ProfileRequest()
    for entry in manifest.get("artifacts", []) if isinstance(manifest, dict) else []:
        if isinstance(entry, dict) and entry.get("sha256") == sha256:
            m, float_m = entry.get("metrics") or {}, entry.get("float_metrics") or {}
            pop = (manifest.get("popularity") or {}).get("test") or {}
            quality = Quality(k=m.get("k", 0), ndcg=m.get("ndcg"), hr=m.get("hr"), users=m.get("users", 0),
                              undetermined=m.get("undetermined", 0), float_ndcg=float_m.get("ndcg"),
                              popularity_ndcg=pop.get("ndcg"))
            reference = path.parent / REFERENCE_FILE
            return ProfileRequest(precision=entry.get("precision"), source=entry.get("source", "float"),
                                  parity_min=entry.get("parity_min"), quality=quality,
                                  analytic_ms=entry.get("analytic_ms"),
                                  reference=reference if reference.is_file() else None)
    return ProfileRequest()


def read_reference(path: Path, source: str) -> dict:
    """`history` (R, L) and, when present, the source model's `scores`/`items` (R, C) (toolkit/profiler/parity.py)."""
    import numpy as np

    from toolkit.profiler.parity import load_reference

    try:
        with np.load(path) as arrays:
            keys = set(arrays.files)
            history = arrays["history"] if "history" in keys else None
    except (OSError, ValueError) as e:
        raise ToolkitError(f"--reference {path}: not a readable .npz file ({e})") from e
    if history is None or history.ndim != 2 or not np.issubdtype(history.dtype, np.integer):
        raise ToolkitError(f"--reference {path}: expected an array `history` of item indices, shape (R, L)")
    if {f"{source}_scores", f"{source}_items"} <= keys:
        return load_reference(path, source)
    return {"history": history}
