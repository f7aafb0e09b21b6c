"""Which artifact to ship per format of a profile (`recommend`): of those that fit, the smallest whose
quality is within the plan's tolerance of the best; none, and why, when nothing fits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from toolkit.core.units import format_bytes
from toolkit.profiler.records import ArtifactProfile


@dataclass
class Recommendation:
    """The artifact to ship for one format of the profile, or none (path None) and why."""

    format: str
    path: str | None
    why: str

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """e.g. "executorch: ship model.int8.pte (fits; ...)" or "onnx: none (...)"."""
        return f"{self.format}: {'ship ' + self.path if self.path else 'none'} ({self.why})"


def recommend(results: list[ArtifactProfile], formats: tuple[str, ...], tolerance: float,
              not_built: dict[str, str] | None = None) -> dict[str, Recommendation]:
    """Per format the profile serves, the artifact to ship: of those that fit, the ones whose NDCG@K
    through the artifact is within `tolerance` (relative: the plan's `quality_tolerance`) of the best
    fitting one, the smallest file; none when nothing fits. `not_built`: format -> why the build wrote
    no artifact in it."""
    out = {}
    for fmt in formats:
        mine = [r for r in results if r.format == fmt]
        fitting = [r for r in mine if r.fits and r.quality.ndcg is not None]
        if fitting:
            best = max(r.quality.ndcg for r in fitting)
            keep = [r for r in fitting if r.quality.ndcg >= best * (1 - tolerance)]
            pick = min(keep, key=lambda r: (r.bytes, -r.quality.ndcg))
            why = (f"fits; {format_bytes(pick.bytes)}, NDCG@{pick.quality.k} {pick.quality.ndcg:.4f}: {len(fitting)} of "
                   f"{len(mine)} {fmt} artifacts fit, {len(keep)} of them with NDCG within {tolerance:.0%} of the best "
                   f"that fits ({best:.4f}); this is the smallest of those")
            out[fmt] = Recommendation(fmt, pick.path, why)
        elif mine:
            missed = "; ".join(f"{r.path} misses {', '.join(c.budget for c in r.checks if not c.passed)}"
                               for r in mine)
            out[fmt] = Recommendation(fmt, None, f"no {fmt} artifact fits: {missed}")
        else:
            why = (not_built or {}).get(fmt, f"no {fmt} artifact was built")
            out[fmt] = Recommendation(fmt, None, f"not built: {why}")
    return out
