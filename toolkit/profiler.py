"""The profiler: does an artifact fit a device profile? Measured in its real runtime, in a fresh process.

For one artifact (`profile_artifact`) it measures:
  size      bytes on disk (what an app ships or downloads).
  memory    what the app pays, its runtime included:
            - python: peak RSS of loading the artifact and serving, minus the RSS of the interpreter
              before the runtime was imported (runtime library + bindings + model); for ExecuTorch
              the Python bindings import torch, so this figure is only shown, never judged;
            - python_model: the same minus the RSS right after importing the runtime (the model's
              own load, weights, arena and activations);
            - native (.pte): the whole-process peak RSS of the C++ client (runtime_demo/cpp) when it
              is built: what a phone app pays;
            - program (.pte): planned activation buffers + constants read from the program.
            The verdict uses native for .pte (else python_model + the runtime's measured base,
            labelled an estimate) and python for .onnx.
  latency   per-call wall time with 1 thread and with the profile's thread count, interleaved in
            blocks (toolkit/measure.py); the faster setting is recommended. The device estimate is
            the *quiet* host figure (the least disturbed blocks) x host GFLOP/s / device GFLOP/s, so
            another job on the build machine does not flip the verdict; the figures over every call
            and the host's load while measuring are recorded next to it, and an analytic estimate
            (FLOPs / device GFLOP/s + per-request overhead) when the build's plan is known.
  ops       .pte: XNNPACK delegate calls, the nodes inside them and the operators outside XNNPACK;
            .onnx: node counts by op type.
  parity    top-10 agreement and max score error against the model the artifact was exported from
            (the outputs stored at export in reference.npz).
  quality   NDCG@K through the artifact (from the build), against the popularity baseline and its
            float model.

An artifact fits only when every check passes: format, precision, serving shape, size, memory,
latency, parity (agreement >= the stated minimum) and quality (above popularity by more than the
noise of the users evaluated, `popularity_noise`, and within `QUALITY_MARGIN` of its float model).
A figure that could not be measured is *unknown* and fails. A failed check says which condition
failed, by how much, and what to try (`Check.advice`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.calibrate import CalibrationCache
from toolkit.contract import MANIFEST_FILE, REFERENCE_FILE
from toolkit.errors import ToolkitError
from toolkit.measure import HostLoad, MeasurementError, Timing, TimingConfig, run_fresh
from toolkit.plan import QUALITY_MARGIN  # an artifact's NDCG@K may be at most 5 % below its float model's
from toolkit.profiles import DeviceProfile
from toolkit.units import format_bytes

# top-10 agreement an artifact must reach with the model it was exported from: the same weights
# (fp32 export, or a model whose weights were already quantized by toolkit.compress) differ only
# by float rounding; int8 PT2E / ONNX Runtime dynamic quantization also rounds every activation
PARITY_MIN_AGREEMENT = {"same weights": 0.98, "quantized at export": 0.85}
THREADS_GAIN = 0.9  # more threads are recommended only when they cut the quiet p50 by >= 10 %
PROFILE_TIMEOUT_S = 600
WARMUP_AFTER_LOAD = 10  # untimed calls after a (re)load, before a block is timed
# ONNX op types that only appear in a quantized graph
_ONNX_INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear",
                  "ConvInteger", "QLinearConv", "GatherBlockQuantized", "MatMulNBits"}


@dataclass
class Check:
    """One budget or requirement of the profile, judged for one artifact."""

    budget: str  # format | precision | serving | model_bytes | memory_bytes | latency_ms | parity | quality
    passed: bool
    text: str  # "model 1.9 MB of 4.0 MB (file; 2.1 MB to spare)"
    value: float | None = None
    limit: float | None = None
    margin: float | None = None  # limit - value: positive = to spare, negative = over
    basis: str = ""  # file | measured | native | estimated | artifact | unknown
    advice: str = ""  # a failed check: what to try


@dataclass
class Quality:
    """What the quality check needs: the artifact's figure, its float model's, the popularity baseline."""

    k: int
    ndcg: float | None  # through the artifact (test)
    hr: float | None
    users: int = 0
    undetermined: int = 0
    float_ndcg: float | None = None  # the float model the artifact comes from (PyTorch, test)
    popularity_ndcg: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Memory:
    basis: str  # native | python | estimated | unknown: which figure the verdict uses
    verdict_bytes: int | None
    how: str
    python_bytes: int | None = None  # runtime + bindings + model (RSS above the bare interpreter)
    python_model_bytes: int | None = None  # the model alone (RSS above the imported runtime)
    native_bytes: int | None = None  # whole C++ client process (runtime included)
    program_bytes: int | None = None  # .pte: planned buffers + constants
    program: dict = field(default_factory=dict)
    peak_reset: bool = True  # the RSS high-water mark could be reset after the imports

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Latency:
    threads: int  # the recommended setting (the faster of 1 and the profile's threads)
    timings: dict[str, Timing]  # "1", "<profile threads>" (and "native") -> per-call times on this host
    device_p50_ms: float | None
    device_p95_ms: float | None
    device_p99_ms: float | None
    scale: float  # host GFLOP/s / device GFLOP/s at the recommended threads
    how: str
    host_load: HostLoad | None = None
    analytic_ms: float | None = None  # FLOPs / device GFLOP/s + per-request overhead (the plan's estimate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timings"] = {k: v.to_dict() for k, v in self.timings.items()}
        return d


@dataclass
class ArtifactProfile:
    path: str
    format: str
    precision: str
    bytes: int
    sha256: str
    memory: Memory
    latency: Latency
    ops: dict
    parity: dict
    parity_min: float
    quality: Quality
    io: dict
    host: dict  # the host's calibration
    checks: list[Check] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{self.path} misses {c.budget}: {c.text} (try: {c.advice})" for c in self.checks if not c.passed]

    def verdict(self) -> dict:
        return {"verdict": "fits" if self.fits else "does not fit", "fits": self.fits,
                "checks": [asdict(c) for c in self.checks]}

    def figures(self) -> dict:
        """The measured figures (manifest key "profile"); the verdict is separate."""
        return {"bytes": self.bytes, "memory": self.memory.to_dict(), "latency": self.latency.to_dict(),
                "ops": self.ops, "parity": self.parity, "parity_min": self.parity_min,
                "quality": self.quality.to_dict(), "io": self.io, "host": self.host}

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "precision": self.precision, "sha256": self.sha256,
                **self.figures(), **self.verdict()}


@dataclass
class ProfileRequest:
    """What the build knows about an artifact (the standalone command reads it from manifest.json)."""

    precision: str | None = None
    source: str = "float"  # which reference outputs the artifact is compared with ("float" | "compressed")
    parity_min: float | None = None
    quality: Quality | None = None
    analytic_ms: float | None = None


def profile_artifact(path: Path, profile: DeviceProfile, calibrations: CalibrationCache | None = None,
                     timing: TimingConfig | None = None, known: ProfileRequest | None = None,
                     native=None) -> ArtifactProfile:
    """Measure one artifact in a fresh process and judge it against the profile.

    Args:
        path: a .pte or .onnx file with `reference.npz` next to it (a build directory).
        profile: the device profile to judge against.
        calibrations: host GFLOP/s per thread count, shared across artifacts of one run.
        timing: how long to time.
        known: what the build knows (precision, reference source, quality); None reads the
            manifest.json next to the artifact (matched by sha256).
        native: a `toolkit.native.NativeClient` to measure a .pte in (None: not measured natively).
    """
    from export.runtime import artifact_format

    path = Path(path)
    fmt = artifact_format(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: no such artifact")
    reference = path.parent / REFERENCE_FILE
    if not reference.is_file():
        raise ToolkitError(f"{path}: no {REFERENCE_FILE} next to it; profile artifacts inside their build directory")
    calibrations = calibrations or CalibrationCache()
    timing = timing or TimingConfig()
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    known = known or _from_manifest(path, sha256)
    threads = sorted({1, profile.hardware.threads})
    # in a Python process ExecuTorch's portable matmul binds to torch's MKL, whose own threads fight
    # the runtime's on a busy host (32 ms instead of 0.12 ms for an int4-table model): one MKL thread
    try:
        worker = run_fresh("toolkit.profiler:measure", {
            "path": str(path), "format": fmt, "threads": threads, "profile_threads": profile.hardware.threads,
            "reference": str(reference), "source": known.source, "timing": asdict(timing)}, timeout=PROFILE_TIMEOUT_S,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if fmt == "executorch" else None)
    except MeasurementError as e:  # the runtime crashed or hung: every measured figure is unknown, none passes
        return _unmeasured(path, fmt, len(data), sha256, known, profile, str(e))
    timings = {k: Timing(**v) for k, v in worker["timings"].items()}
    memory = Memory(**worker["memory"])
    measured_natively = fmt == "executorch" and _native_figures(native, path, reference, profile, timing, memory, timings)
    latency = _device_latency(timings, profile, calibrations, known.analytic_ms,
                              HostLoad(**worker["host_load"]) if worker.get("host_load") else None,
                              prefix="native/" if measured_natively else "")
    precision = known.precision or _infer_precision(fmt, worker["ops"])
    parity_min = known.parity_min if known.parity_min is not None else PARITY_MIN_AGREEMENT[
        "same weights" if precision == "fp32" else "quantized at export"]
    result = ArtifactProfile(
        path=path.name, format=fmt, precision=precision, bytes=len(data), sha256=sha256, memory=memory,
        latency=latency, ops=worker["ops"], parity=worker["parity"], parity_min=parity_min,
        quality=known.quality or Quality(k=0, ndcg=None, hr=None), io=worker["io"],
        host=calibrations.get(latency.threads).to_dict())
    result.checks = judge(result, profile)
    return result


def _unmeasured(path: Path, fmt: str, size: int, sha256: str, known: ProfileRequest, profile: DeviceProfile,
                reason: str) -> ArtifactProfile:
    """An artifact whose measurement failed: the file's size is known, everything measured is unknown."""
    why = f"not measured: {reason}"
    result = ArtifactProfile(
        path=path.name, format=fmt, precision=known.precision or "unknown", bytes=size, sha256=sha256,
        memory=Memory(basis="unknown", verdict_bytes=None, how=why),
        latency=Latency(threads=profile.hardware.threads, timings={}, device_p50_ms=None, device_p95_ms=None,
                        device_p99_ms=None, scale=0.0, how=why),
        ops={}, parity={"top10_agreement": None, "histories": 0, "top10_exact": None, "max_score_error": None},
        parity_min=known.parity_min or PARITY_MIN_AGREEMENT["same weights"],
        quality=known.quality or Quality(k=0, ndcg=None, hr=None), io={"max_history": None, "candidates": None},
        host={})
    result.checks = judge(result, profile)
    return result


NATIVE_ROUNDS = 2  # native runs per thread setting, alternated (1, T, 1, T): drift hits both alike


def _native_figures(native, path: Path, reference: Path, profile: DeviceProfile, timing: TimingConfig,
                    memory: Memory, timings: dict[str, Timing]) -> bool:
    """The .pte measured in the native C++ client (when built): what an app pays. Its memory and its
    timings are the verdict's basis; the Python figures stay in the report. Returns True when measured."""
    from toolkit.measure import timing_from_samples
    from toolkit.parity import load_reference
    from toolkit.plan import RUNTIME_BASE_MEMORY

    if native is not None:
        try:
            history = load_reference(reference)["history"]
            runs = max(timing.min_blocks * timing.block_calls // NATIVE_ROUNDS, timing.block_calls)
            samples: dict[int, list[float]] = {}
            peak = 0
            for _ in range(NATIVE_ROUNDS):
                for n in sorted({1, profile.hardware.threads}):
                    bench = native.bench(path, history, threads=n, runs=runs, warmup=timing.warmup_calls)
                    samples.setdefault(n, []).extend(bench.samples_ms)
                    peak = max(peak, bench.peak_rss_bytes)
            for n, s in samples.items():
                timings[f"native/{n}"] = timing_from_samples(s, timing)
            memory.native_bytes = peak
            memory.basis, memory.verdict_bytes = "native", peak
            memory.how = ("peak RSS of the native C++ client (runtime_demo/cpp) loading and serving the program: "
                          "the ExecuTorch runtime, XNNPACK and the model, what an app pays")
            return True
        except (MeasurementError, ToolkitError, OSError) as e:
            memory.how = f"native client failed ({e}); "
    if memory.python_model_bytes is None:
        memory.basis, memory.verdict_bytes = "unknown", None
        memory.how += "the memory could not be measured"
        return False
    memory.basis = "estimated"
    memory.verdict_bytes = memory.python_model_bytes + RUNTIME_BASE_MEMORY["executorch"]
    memory.how += (f"no native client: the model's memory measured in Python ({memory.python_model_bytes:,} B) + "
                   f"the ExecuTorch runtime's base ({RUNTIME_BASE_MEMORY['executorch']:,} B, measured natively)")
    return False


def _device_latency(timings: dict[str, Timing], profile: DeviceProfile, calibrations: CalibrationCache,
                    analytic_ms: float | None, load: HostLoad | None, prefix: str = "") -> Latency:
    """The recommended thread count and the device estimate from its quiet figures; `prefix` "native/"
    judges the native client's timings (what the app runs), "" the Python runtime's."""
    threads = profile.hardware.threads
    best = 1
    many, one = timings.get(f"{prefix}{threads}"), timings[f"{prefix}1"]
    if many is not None and many.quiet_p50_ms < THREADS_GAIN * one.quiet_p50_ms:
        best = threads
    t = timings[f"{prefix}{best}"]
    host = calibrations.get(best)
    device_gflops = profile.hardware.gflops * best / threads  # the profile's rate is for all its threads
    scale = host.gflops / device_gflops
    return Latency(
        threads=best, timings=timings, scale=scale, host_load=load, analytic_ms=analytic_ms,
        device_p50_ms=t.quiet_p50_ms * scale, device_p95_ms=t.quiet_p95_ms * scale, device_p99_ms=t.quiet_p99_ms * scale,
        how=(f"quiet {'native C++ client' if prefix else 'Python runtime'} figures at {best} thread(s) (the "
             f"{t.quiet_blocks} least disturbed of {t.blocks} blocks) x host "
             f"{host.gflops:.1f} GFLOP/s / device {device_gflops:.1f} GFLOP/s at {best} thread(s) (x{scale:.3f})"))


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
        _budget_check("model_bytes", "model", a.bytes, b.model_bytes, format_bytes, "file"),
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
    if q.ndcg is None or q.float_ndcg is None or q.popularity_ndcg is None:
        return Check("quality", False, "quality: unknown (not measured through this artifact by a build)",
                     basis="unknown")
    noise = popularity_noise(q.ndcg, q.popularity_ndcg, q.users)
    above = q.ndcg - q.popularity_ndcg
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


def _infer_precision(fmt: str, ops: dict) -> str:
    if fmt == "executorch":
        names = list(ops.get("outside_xnnpack", {})) + list(ops.get("xnnpack_nodes", {}))
        return "int8" if any("quantized" in n.lower() for n in names) or ops.get("xnnpack_quantized_values") else "fp32"
    return "int8" if set(ops.get("op_types", {})) & _ONNX_INT8_OPS else "fp32"


def _from_manifest(path: Path, sha256: str) -> ProfileRequest:
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
            return ProfileRequest(precision=entry.get("precision"), source=entry.get("source", "float"),
                                  parity_min=entry.get("parity_min"), quality=quality,
                                  analytic_ms=entry.get("analytic_ms"))
    return ProfileRequest()


# --- the fresh process ---------------------------------------------------------------------------

def measure(request: dict) -> dict:
    """Load, check and time one artifact in this (fresh) process; see the module docstring."""
    import numpy  # noqa: F401  (every client has its arrays; the baseline holds them)

    from toolkit.measure import Contender, LoadMonitor, memory_status, reset_peak, time_calls

    before_runtime = memory_status()
    _import_runtime(request["format"])
    from export.runtime import Predictor
    from toolkit.parity import load_reference, measure_parity

    reference = load_reference(Path(request["reference"]), request["source"])
    after_runtime = memory_status()
    peak_reset = reset_peak()
    profile_threads = request["profile_threads"]
    predictor = Predictor(Path(request["path"]), threads=profile_threads)
    parity = measure_parity(predictor.predict, reference)  # also the first warm-up
    histories = reference["history"]
    for i in range(200):  # serve a while: arena and caches at their steady size
        predictor.predict(histories[i % len(histories)][None])
    peak = memory_status()
    memory = {
        "basis": "python", "verdict_bytes": None, "how": "", "peak_reset": peak_reset,
        "python_bytes": max(peak.peak_bytes - before_runtime.rss_bytes, 0) if peak_reset else None,
        "python_model_bytes": max(peak.peak_bytes - after_runtime.rss_bytes, 0) if peak_reset else None,
    }
    if request["format"] == "onnx":
        memory["verdict_bytes"] = memory["python_bytes"]
        memory["basis"] = "python" if peak_reset else "unknown"
        memory["how"] = ("peak RSS of loading and serving minus the RSS of the interpreter before ONNX Runtime was "
                         "imported: the runtime library, its bindings and the model" if peak_reset else
                         "the RSS high-water mark cannot be reset on this system: memory not measured")
    io = {"max_history": predictor.max_history, "candidates": predictor.top_k}
    ops = _inspect_ops(Path(request["path"]), request["format"])
    if "program_bytes" in ops:
        memory["program_bytes"], memory["program"] = ops.pop("program_bytes"), ops.pop("program")

    # latency: 1 thread and the profile's threads, interleaved in blocks (a fresh load per setting)
    predictors = {n: predictor if n == profile_threads else None for n in request["threads"]}
    del predictor
    current = {"threads": profile_threads}

    def setting(n: int):
        def prepare() -> None:
            if request["format"] == "executorch" and current["threads"] != n:
                # XNNPACK keeps the thread pool it was loaded with: drop the method, resize, load again
                predictors[current["threads"]] = None
                predictors[n] = Predictor(Path(request["path"]), threads=n)
                current["threads"] = n
                for h in histories[:WARMUP_AFTER_LOAD]:  # a fresh load's first calls are slow: untimed
                    predictors[n].predict(h[None])
            elif predictors[n] is None:
                predictors[n] = Predictor(Path(request["path"]), threads=n)

        return Contender(call=lambda h: predictors[n].predict(h[None]), prepare=prepare)

    with LoadMonitor() as monitor:
        timings = time_calls({str(n): setting(n) for n in request["threads"]}, histories,
                             TimingConfig(**request["timing"]))
    return {"memory": memory, "timings": {k: v.to_dict() for k, v in timings.items()}, "parity": parity,
            "ops": ops, "io": io, "host_load": monitor.load.to_dict()}


def _import_runtime(fmt: str) -> None:
    """Everything serving imports, so the RSS after it is the runtime's baseline."""
    if fmt == "executorch":
        import executorch.kernels.quantized  # noqa: F401
        import torch  # noqa: F401
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool  # noqa: F401
        from executorch.runtime import Runtime

        Runtime.get()
    else:
        import onnxruntime  # noqa: F401


def _inspect_ops(path: Path, fmt: str) -> dict:
    if fmt == "onnx":
        import collections

        import onnx

        model = onnx.load(str(path), load_external_data=False)
        counts = collections.Counter(n.op_type for n in model.graph.node)
        return {"nodes": sum(counts.values()), "op_types": dict(counts.most_common())}
    return inspect_pte(path.read_bytes())


def inspect_pte(data: bytes) -> dict:
    """Delegation and memory plan of a serialized ExecuTorch program (its first method)."""
    import collections

    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(data)
    program = pte.program
    plan = program.execution_plan[0]
    outside: collections.Counter = collections.Counter()
    delegate_calls = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            kind = type(instruction.instr_args).__name__
            if kind == "KernelCall":
                op = plan.operators[instruction.instr_args.op_index]
                outside[f"{op.name}.{op.overload}" if op.overload else op.name] += 1
            elif kind == "DelegateCall":
                delegate_calls += 1
    nodes: collections.Counter = collections.Counter()
    quantized_values = 0
    names = _xnnpack_node_names()
    for delegate in plan.delegates:
        if delegate.id != "XnnpackBackend" or delegate.processed.location.name != "INLINE":
            continue
        types, quantized = _xnnpack_graph(program.backend_delegate_data[delegate.processed.index].data)
        quantized_values += quantized
        nodes.update(names.get(t, f"node type {t}") for t in types)
    planned = sum(plan.non_const_buffer_sizes)
    constants = (sum(len(b.storage) for b in program.constant_buffer)
                 + sum(len(d.data) for d in program.backend_delegate_data)
                 + sum(len(b) for b in (pte.named_data.buffers if pte.named_data else [])))
    return {
        "delegates": {d.id: sum(1 for x in plan.delegates if x.id == d.id) for d in plan.delegates},
        "delegate_calls": delegate_calls,
        "xnnpack_nodes_total": sum(nodes.values()),
        "xnnpack_nodes": dict(nodes.most_common()),
        "xnnpack_quantized_values": quantized_values,
        "outside_xnnpack_total": sum(outside.values()),
        "outside_xnnpack": dict(outside.most_common()),
        "planned_buffers": list(plan.non_const_buffer_sizes),
        "program_bytes": planned + constants,
        "program": {"planned_activation_bytes": planned, "constant_bytes": constants,
                    "how": "memory-planned buffers (non_const_buffer_sizes) + constants, delegate payloads "
                           "and named data in the program"},
    }


def _xnnpack_graph(blob: bytes) -> tuple[list[int], int]:
    """Node union types and the number of quantized values of one XNNPACK delegate payload.

    The payload is an XNNHeader ("XH00": flatbuffer offset at bytes 10-14, size at 14-18) followed by
    an XNNGraph flatbuffer (executorch/backends/xnnpack/serialization/schema.fbs). Read with the
    flatbuffers table API: XNNGraph field 1 = xnodes, 2 = xvalues; XNode/XValue field 0 = union type.
    """
    import flatbuffers
    from flatbuffers.table import Table

    if blob[4:8] == b"XH00":
        offset, size = int.from_bytes(blob[10:14], "little"), int.from_bytes(blob[14:18], "little")
        blob = blob[offset:offset + size]
    buf = bytearray(blob)
    graph = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))

    def union_types(field_index: int) -> list[int]:
        o = graph.Offset(4 + 2 * field_index)
        if not o:
            return []
        start, types = graph.Vector(o), []
        for i in range(graph.VectorLen(o)):
            item = Table(buf, graph.Indirect(start + 4 * i))
            to = item.Offset(4)
            types.append(item.Get(flatbuffers.number_types.Uint8Flags, item.Pos + to) if to else 0)
        return types

    quantized = sum(1 for t in union_types(2) if t == 2)  # XValueUnion: 1 = XNNTensorValue, 2 = XNNQuantizedTensorValue
    return union_types(1), quantized


def _xnnpack_node_names() -> dict[int, str]:
    """XNodeUnion member index -> name, read from the schema shipped with the installed executorch."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    schema = Path(list(spec.submodule_search_locations)[0]) / "backends/xnnpack/serialization/schema.fbs"
    try:
        body = re.search(r"union\s+XNodeUnion\s*\{(.*?)\}", schema.read_text(), re.S).group(1)
    except (OSError, AttributeError):
        return {}
    members = [m.split(":")[0].strip() for m in body.split(",") if m.split(":")[0].strip()]
    members = [re.sub(r"//.*", "", m).strip() for m in members]
    return {i + 1: name.removeprefix("XNN") for i, name in enumerate(m for m in members if m)}


def not_fit_message(results: list[ArtifactProfile]) -> str:
    """Which artifact misses which budget and by how much (empty when everything fits)."""
    return "; ".join(f for r in results for f in r.failures())
