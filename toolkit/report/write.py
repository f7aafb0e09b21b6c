"""The report of a profiling run: report.json (every figure), report.md (toolkit/report/markdown.py)
and the PNG plots (toolkit/report/plots.py), written together by `write_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.core.profiles import DeviceProfile
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT, POPULARITY_NOISE_Z, QUALITY_MARGIN, popularity_rule
from toolkit.profiler.recommend import Recommendation
from toolkit.profiler.records import ArtifactProfile
from toolkit.report.markdown import data_markdown, markdown, own_student_markdown, plan_markdown
from toolkit.report.plots import CANDIDATES_PNG, candidates_figure, plot, save

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def report_dict(profile: DeviceProfile, results: list[ArtifactProfile],
                recommended: dict[str, Recommendation] | None = None, warnings: list[str] | None = None) -> dict:
    return {"profile": profile.to_dict(), "fits": all(r.fits for r in results),
            "thresholds": thresholds(), "warnings": list(warnings or []),
            "recommended": {fmt: r.to_dict() for fmt, r in (recommended or {}).items()},
            "artifacts": [r.to_dict() for r in results]}


def thresholds() -> dict:
    """What the parity and quality checks require (stated in every report)."""
    return {"parity_min_top10_agreement": PARITY_MIN_AGREEMENT, "quality_margin": QUALITY_MARGIN,
            "popularity_noise_z": POPULARITY_NOISE_Z,
            "quality_rule": f"NDCG@K through the artifact {popularity_rule()}, and at least "
                            f"(1 - {QUALITY_MARGIN}) x its float model's NDCG@K"}


def write_report(out: Path, profile: DeviceProfile, results: list[ArtifactProfile], plan: dict | None = None,
                 serving: dict | None = None, recommended: dict[str, Recommendation] | None = None,
                 warnings: list[str] | None = None, data: dict | None = None) -> list[Path]:
    """Write report.json, report.md and the plots into `out`; returns the paths written.

    plan: a build's `Plan.to_dict()` (toolkit/planning/search.py): adds the candidates the plan considered and their
    Pareto plot (candidates.png). serving: the build's ServingRecord (candidates returned).
    recommended: format -> the artifact to ship (`toolkit.profiler.recommend.recommend`). warnings: what the
    build found worth a warning (e.g. a teacher below the popularity baseline). data: the build's
    DataSummary (what was read, dropped and kept)."""
    out = Path(out)
    report = report_dict(profile, results, recommended, warnings)
    text = markdown(profile, results, serving, recommended, warnings)
    written = plot(out, profile, results)
    if serving is not None:
        report["serving"] = serving
    if data is not None:
        report["data"] = data
        text += "\n" + data_markdown(data)
    if plan is not None and plan.get("kind") == "own_student":  # --student MODULE:FACTORY: no candidates
        report["plan"] = plan
        text += "\n" + own_student_markdown(plan)
    elif plan is not None:
        report["plan"] = plan
        text += "\n" + plan_markdown(profile, plan)
        written.append(save(candidates_figure(profile, plan), out / CANDIDATES_PNG))
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2))
    (out / REPORT_MD).write_text(text)
    return [out / REPORT_JSON, out / REPORT_MD] + written
