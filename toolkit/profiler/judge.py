"""The verdicts: every budget and requirement of a device profile judged for one artifact (`judge`),
pass/fail with its margin and, when it fails, which condition failed, by how much and what to try.

An artifact fits only when every check passes: format, precision, serving shape, size, memory,
latency, parity (agreement >= `PARITY_MIN_AGREEMENT`) and quality (above popularity by more than the
noise of the users evaluated, `popularity_noise`, and within `QUALITY_MARGIN` of its float model).
A figure that could not be measured is *unknown* and fails.
"""

from __future__ import annotations

import math

from toolkit.core.profiles import DeviceProfile
from toolkit.core.units import format_bytes
from toolkit.planning.search import QUALITY_MARGIN  # an artifact's NDCG@K may be at most 5 % below its float model's
from toolkit.profiler.records import ArtifactProfile, Check, Quality

# top-10 agreement an artifact must reach with the model it was exported from: the same weights
# (fp32 export, or a model whose weights were already quantized by toolkit.compression) differ only
# by float rounding; int8 PT2E / ONNX Runtime dynamic quantization also rounds every activation
PARITY_MIN_AGREEMENT = {"same weights": 0.98, "quantized at export": 0.85}


POPULARITY_NOISE_Z = 2.0  # "above popularity" means above it by more than this many standard errors


def popularity_noise(ndcg: float, popularity_ndcg: float, users: int) -> float:
    """How far apart two mean NDCG@K over `users` users can be by chance: `POPULARITY_NOISE_Z`
    standard errors of their difference. Each user's NDCG is in [0, 1], so its variance is at most
    its mean: the bound needs only the two means (an upper bound: 0.026 for NDCG 0.0062 against
    popularity 0.0273 on 200 users, 0.023 for 0.10 against 0.03 on 943 users)."""
    if users <= 0:
        return float("inf")
    return POPULARITY_NOISE_Z * math.sqrt(max(ndcg + popularity_ndcg, 0.0) / users)


def popularity_rule() -> str:
    """The rule, as the report states it."""
    return (f"above the popularity baseline by more than the noise of the users evaluated: {POPULARITY_NOISE_Z:g} x "
            "sqrt((NDCG + popularity NDCG) / users), an upper bound on that many standard errors of the difference "
            "(each user's NDCG is in [0, 1], so its variance is at most its mean)")


# what to try when a check fails, per check (the quality check chooses by the condition that failed)
ADVICE = {
    "format": "profile it against a profile whose serving.formats has {format}, or add {format} to this profile's",
    "precision": "this device has no fast int8 kernels: ship this build's fp32 artifact, or use a profile with "
                 "hardware.int8 = true",
    "serving": "rebuild for this profile (the artifact's history length or candidate count is not the profile's)",
    "model_bytes": "ship a smaller artifact of this build if one fits (int8, compressed), or give the profile a larger "
                   "budget.model_bytes, or build for another profile",
    "memory_bytes": "give the profile a larger budget.memory_bytes or build for another profile; a smaller "
                    "serving.max_history or student lowers the activations",
    "latency_ms": "give the profile a larger budget.latency_ms or more hardware.threads, or build for another "
                  "profile; a smaller student, catalogue or serving.max_history is faster",
    "parity": "the runtime's rounding reorders the top 10: ship this build's artifact with the same weights as its "
              "model (fp32 or compressed), or rebuild with another seed",
    "unknown": "the figure could not be measured: see why above, fix it and run `python -m toolkit profile` again "
               "(an unknown figure never passes)",
    "below popularity": "the model ranks no better than counting: train longer (--epochs) or on more data (more "
                        "users: without --max-users), or build for another profile with a larger budget.model_bytes",
    "below float": "compression lost quality: ship this build's float artifact if it fits, or give the profile a "
                   "larger budget.model_bytes so the student needs less compression",
}


def judge(a: ArtifactProfile, profile: DeviceProfile) -> list[Check]:
    """Pass/fail with margin for every budget and requirement of the profile; unknown never passes.

    A failed check says which condition failed, by how much (its text) and what to try (`advice`)."""
    b, hw, s = profile.budget, profile.hardware, profile.serving
    history, candidates = a.io["max_history"], a.io["candidates"]
    serving_ok = history == s.max_history and (candidates or 0) >= s.top_k
    serving_text = (f"serving: history {history} (device {s.max_history}), {candidates} candidates "
                    f"(device shows {s.top_k})")
    if history is None:  # the artifact could not be loaded: its shapes are unknown
        serving_text = "serving: unknown (the artifact's history length and candidates were not read)"
    elif not serving_ok:
        wrong = ([f"history {history} is not the device's {s.max_history}"] if history != s.max_history else []) + (
            [f"{candidates} candidates, fewer than the {s.top_k} the device shows"]
            if (candidates or 0) < s.top_k else [])
        serving_text += ": " + "; ".join(wrong)
    checks = [
        Check("format", a.format in s.formats, f"format {a.format}: device serves {', '.join(s.formats)}",
              basis="artifact"),
        Check("precision", a.precision == "fp32" or hw.int8,
              f"precision {a.precision}: device {'has' if hw.int8 else 'has no'} fast int8 kernels", basis="artifact"),
        Check("serving", serving_ok, serving_text, basis="artifact" if history is not None else "unknown"),
        _model_bytes_check(a, profile),
        _budget_check("memory_bytes", "memory", a.memory.verdict_bytes, b.memory_bytes, format_bytes, a.memory.basis,
                      unknown=a.memory.how),
        _budget_check("latency_ms", f"latency p95 at {a.latency.threads} thread(s)", a.latency.device_p95_ms,
                      b.latency_ms, lambda v: f"{v:.2f} ms", "estimated"),
        _at_least("parity", "top-10 agreement with the model it was exported from",
                  a.parity.get("top10_agreement"), a.parity_min, "measured"),
        quality_check(a.quality),
    ]
    for c in checks:
        if not c.passed and not c.advice:
            c.advice = ADVICE["unknown" if c.basis == "unknown" else c.budget].format(format=a.format)
    return checks


def quality_check(q: Quality) -> Check:
    """NDCG@K through the artifact: above popularity by more than the noise of the users evaluated
    (`popularity_noise`), and at most `QUALITY_MARGIN` below its float model's."""
    if q.ndcg is None or q.popularity_ndcg is None:
        return Check("quality", False, "quality: unknown (not measured through this artifact by a build)",
                     basis="unknown")
    noise = popularity_noise(q.ndcg, q.popularity_ndcg, q.users)
    above = q.ndcg - q.popularity_ndcg
    if q.float_ndcg is None:  # profiled on its own with --data: no float model to compare with
        ok = above > noise
        state = (f"by {above:.4f}, more than" if ok else f"{'above' if above >= 0 else 'below'} it by {abs(above):.4f}, "
                 f"{noise - above:.4f} short of")
        return Check("quality", ok, f"NDCG@{q.k} {q.ndcg:.4f} through the artifact on {q.users} users: "
                     f"{'' if ok else 'failed: not '}above popularity {q.popularity_ndcg:.4f} {state} the noise of "
                     f"{q.users} users ({noise:.4f}; no float model known to compare with)",
                     value=q.ndcg, limit=q.popularity_ndcg + noise, margin=above - noise, basis="measured",
                     advice="" if ok else ADVICE["below popularity"])
    float_floor = q.float_ndcg * (1 - QUALITY_MARGIN)
    drop = 1 - q.ndcg / q.float_ndcg if q.float_ndcg > 0 else 0.0
    beats_popularity, keeps_float = above > noise, q.ndcg >= float_floor
    popularity = (f"above popularity {q.popularity_ndcg:.4f} by {above:.4f}, more than the noise of {q.users} users "
                  f"({noise:.4f})" if beats_popularity else
                  f"not above popularity {q.popularity_ndcg:.4f} by more than the noise of {q.users} users "
                  f"({noise:.4f}): {'above' if above >= 0 else 'below'} it by {abs(above):.4f}, "
                  f"{noise - above:.4f} short")
    relation = f"{drop:.1%} below" if drop >= 0 else f"{-drop:.1%} above"
    versus_float = (f"within {QUALITY_MARGIN:.0%} of its float model's {q.float_ndcg:.4f} ({relation})"
                    if keeps_float else
                    f"not within {QUALITY_MARGIN:.0%} of its float model's {q.float_ndcg:.4f}: {drop:.1%} below it, "
                    f"{float_floor - q.ndcg:.4f} short")
    conditions = [(beats_popularity, popularity), (keeps_float, versus_float)]
    if beats_popularity and keeps_float:
        text = f"NDCG@{q.k} {q.ndcg:.4f} through the artifact: {popularity}; {versus_float}"
    else:  # the failed condition first, then what passed
        text = (f"NDCG@{q.k} {q.ndcg:.4f} through the artifact: failed: "
                + "; ".join(t for ok, t in conditions if not ok)
                + "".join(f"; passed: {t}" for ok, t in conditions if ok))
    floor = max(q.popularity_ndcg + noise, float_floor)
    advice = "" if beats_popularity and keeps_float else ADVICE["below popularity" if not beats_popularity else "below float"]
    return Check("quality", beats_popularity and keeps_float, text, value=q.ndcg, limit=floor, margin=q.ndcg - floor,
                 basis="measured", advice=advice)


def _model_bytes_check(a: ArtifactProfile, profile: DeviceProfile) -> Check:
    """The artifact's file; for a browser profile whose runtime is counted, the runtime's download with it."""
    if profile.serving.web_runtime != "counted":
        return _budget_check("model_bytes", "model", a.bytes, profile.budget.model_bytes, format_bytes, "file")
    runtime = a.download.runtime_bytes if a.download else None
    return _budget_check("model_bytes", "download (model + onnxruntime-web, runtime counted)",
                         None if runtime is None else a.bytes + runtime, profile.budget.model_bytes, format_bytes,
                         "download", unknown=a.download.how if a.download else "")


def _budget_check(budget: str, label: str, value: float | None, limit: float, fmt, basis: str,
                  unknown: str = "") -> Check:
    if value is None:
        return Check(budget, False, f"{label} unknown ({unknown or 'not measured'}) of {fmt(limit)}",
                     limit=float(limit), basis="unknown")
    margin = limit - value
    spare = (f"{fmt(margin)} to spare" if margin >= 0
             else f"over by {fmt(-margin)}, {-margin / limit:.0%} of the budget")
    return Check(budget, value <= limit, f"{label} {fmt(value)} of {fmt(limit)} ({basis}; {spare})",
                 value=float(value), limit=float(limit), margin=float(margin), basis=basis)


def _at_least(budget: str, label: str, value: float | None, minimum: float, basis: str) -> Check:
    if value is None:
        return Check(budget, False, f"{label}: unknown", limit=minimum, basis="unknown")
    short = "" if value >= minimum else f", {minimum - value:.3f} short"
    return Check(budget, value >= minimum, f"{label} {value:.3f} (at least {minimum:.2f}{short})", value=float(value),
                 limit=float(minimum), margin=float(value - minimum), basis=basis)


def below_popularity(what: str, metrics, popularity) -> str | None:
    """A warning when a model (the teacher) is not above the popularity baseline by more than the
    noise of the users evaluated (`popularity_noise`); None when it is. Both are `Metrics`."""
    noise = popularity_noise(metrics.ndcg, popularity.ndcg, metrics.users)
    if metrics.ndcg - popularity.ndcg > noise:
        return None
    return (f"{what} NDCG@{metrics.k} {metrics.ndcg:.4f} is not above the popularity baseline's {popularity.ndcg:.4f} "
            f"by more than the noise of {metrics.users} users ({noise:.4f}): its students learn from a model no better "
            "than counting; train longer (--epochs), on more data (more users: without --max-users), or another "
            "teacher (--teacher)")


def not_fit_message(results: list[ArtifactProfile]) -> str:
    """Which artifact misses which budget and by how much (empty when everything fits)."""
    return "; ".join(f for r in results for f in r.failures())
