"""The profiler: does an artifact fit a device profile? Measured in its real runtime, in a fresh process.

For one artifact (`profile_artifact`) it measures:
  size      bytes on disk (what an app ships or downloads).
  memory    what the app pays, its runtime included:
            - python: peak RSS of loading the artifact and serving, minus the RSS of the interpreter
              before the runtime was imported (runtime library + bindings + model); for ExecuTorch
              the Python bindings import torch, so this figure is only shown, never judged;
            - python_model: the same minus the RSS right after importing the runtime (the model's
              own load, weights, arena and activations);
            - native: the whole-process peak RSS of the native client when it is built, what an
              app pays: the C++ ExecuTorch client for a .pte (runtime_demo/cpp), the ONNX Runtime
              C API client for an .onnx (runtime_demo/cpp/onnx, on the wheel's libonnxruntime.so);
            - browser (a profile with serving.web_runtime): onnxruntime-web's WebAssembly memory in
              headless Chromium (runtime_demo/web/bench.mjs), the renderer's peak RSS beside it;
            - program (.pte): planned activation buffers + constants read from the program.
            The verdict uses browser, else native (else for a .pte python_model + the runtime's
            measured base, labelled an estimate; for an .onnx python), and says which.
  latency   per-call wall time with 1 thread and with the profile's thread count, interleaved in
            blocks (toolkit/profiler/measure.py); the faster setting is recommended. The device estimate is
            the *quiet* host figure (the least disturbed blocks) x host GFLOP/s / device GFLOP/s, so
            another job on the build machine does not flip the verdict; the figures over every call
            and the host's load while measuring are recorded next to it, and an analytic estimate
            (FLOPs / device GFLOP/s + per-request overhead) when the build's plan is known.
  ops       .pte: XNNPACK delegate calls, the nodes inside them and the operators outside XNNPACK;
            .onnx: node counts by op type.
  parity    top-10 agreement and max score error against the model the artifact was exported from
            (the outputs stored at export in reference.npz, used only when the manifest beside the
            artifact lists its sha256, or given with --reference); else not checked.
  quality   NDCG@K through the artifact (from the build, or measured on --data), against the
            popularity baseline and its float model (when known); else not checked.
  download  a browser profile's: onnxruntime-web's files (gzip), counted with the model or cached.

Any artifact that follows the contract (toolkit/core/contract.py) is profiled, built here or elsewhere;
one that does not is bad input, with what differs.

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
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.profiler.calibrate import CalibrationCache
from toolkit.core.contract import ITEMS_FILE, MANIFEST_FILE, REFERENCE_FILE
from toolkit.core.errors import ToolkitError
from toolkit.profiler.measure import HostLoad, MeasurementError, Timing, TimingConfig, run_fresh
from toolkit.planning.search import QUALITY_MARGIN  # an artifact's NDCG@K may be at most 5 % below its float model's
from toolkit.core.profiles import DeviceProfile
from toolkit.core.units import format_bytes

if TYPE_CHECKING:  # numpy and the data readers stay out of `import toolkit.profiler.profile`
    from toolkit.data import Split

# top-10 agreement an artifact must reach with the model it was exported from: the same weights
# (fp32 export, or a model whose weights were already quantized by toolkit.compression) differ only
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
    native_bytes: int | None = None  # whole native client process (runtime included)
    browser_bytes: int | None = None  # a browser profile: onnxruntime-web's wasm linear memory in Chromium (peak)
    browser_renderer_bytes: int | None = None  # ... and the page's whole renderer process (Blink, V8 included)
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
class Download:
    """A browser profile's download: the model's file, and onnxruntime-web's files as a server sends them."""

    web_runtime: str  # the profile's serving.web_runtime: "counted" | "cached"
    model_bytes: int
    runtime_bytes: int | None  # gzip of WEB_RUNTIME_FILES; None: onnxruntime-web is not installed
    how: str
    runtime_files_gzip_bytes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


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
    not_checked: dict[str, str] = field(default_factory=dict)  # budget -> why it was not judged (standalone)
    download: Download | None = None  # a browser profile's: the runtime's files beside the model

    @property
    def fits(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{self.path} misses {c.budget}: {c.text} (try: {c.advice})" for c in self.checks if not c.passed]

    def verdict(self) -> dict:
        return {"verdict": "fits" if self.fits else "does not fit", "fits": self.fits,
                "checks": [asdict(c) for c in self.checks], "not_checked": dict(self.not_checked)}

    def figures(self) -> dict:
        """The measured figures (manifest key "profile"); the verdict is separate."""
        return {"bytes": self.bytes, "memory": self.memory.to_dict(), "latency": self.latency.to_dict(),
                "ops": self.ops, "parity": self.parity, "parity_min": self.parity_min,
                "quality": self.quality.to_dict(), "io": self.io, "host": self.host,
                "download": self.download.to_dict() if self.download else None}

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
    reference: Path | None = None  # histories + this artifact's source outputs (parity); None: not checked


@dataclass
class QualityData:
    """An interactions file to measure quality through an artifact on (`profile --data`): its last
    interaction per user is the test target, as in a build; items map through the items.json next to it."""

    path: str
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    encoding: str | None = None


NO_PARITY = {"top10_agreement": None, "histories": 0, "top10_exact": None, "max_score_error": None}
SYNTHETIC_HISTORIES = 200  # timing inputs when neither reference histories nor data are given


def profile_artifact(path: Path, profile: DeviceProfile, calibrations: CalibrationCache | None = None,
                     timing: TimingConfig | None = None, known: ProfileRequest | None = None,
                     native=None, reference: Path | None = None, data: QualityData | None = None) -> ArtifactProfile:
    """Measure one artifact in a fresh process and judge it against the profile.

    Any .pte/.onnx that follows the artifact contract (toolkit/core/contract.py) is measured: size,
    memory and latency always; parity only against reference outputs of the model it came from,
    quality only through a data file or the figures of the build that made it.

    Args:
        path: a .pte or .onnx file.
        profile: the device profile to judge against.
        calibrations: host GFLOP/s per thread count, shared across artifacts of one run.
        timing: how long to time.
        known: what the build knows (precision, reference source, quality, reference file); None
            reads the manifest.json next to the artifact, used only when it lists this file's sha256
            (an artifact copied into another build's folder is never compared with that build's model).
        native: where the app runs this format: a `toolkit.profiler.native.NativeClient` for a .pte, an
            `OnnxClient` for an .onnx, a `toolkit.profiler.browser.BrowserClient` for a browser profile's .onnx
            (None: not measured there; the Python figures judge).
        reference: a reference.npz (`history` (R, L), and `<source>_scores/_items` for parity);
            overrides the build's.
        data: interactions to measure quality through the artifact on (HR/NDCG@10 vs popularity).
    """
    from export.runtime import artifact_format
    from toolkit.profiler.browser import BrowserClient

    path = Path(path)
    fmt = artifact_format(path)
    if not path.is_file():
        raise ToolkitError(f"{path}: no such artifact")
    calibrations = calibrations or CalibrationCache()
    timing = timing or TimingConfig()
    payload = path.read_bytes()
    sha256 = hashlib.sha256(payload).hexdigest()
    known = known or _from_manifest(path, sha256)
    reference = Path(reference) if reference is not None else known.reference
    if reference is not None and not reference.is_file():
        raise ToolkitError(f"--reference {reference}: no such file")
    if data is not None and not (path.parent / ITEMS_FILE).is_file():
        raise ToolkitError(f"--data {data.path}: measuring quality needs the {ITEMS_FILE} next to {path} "
                           f"(index -> item id) to map the data's items")
    threads = sorted({1, profile.hardware.threads})
    # in a Python process ExecuTorch's portable matmul binds to torch's MKL, whose own threads fight
    # the runtime's on a busy host (32 ms instead of 0.12 ms for an int4-table model): one MKL thread
    try:
        worker = run_fresh("toolkit.profiler.profile:measure", {
            "path": str(path), "format": fmt, "threads": threads, "profile_threads": profile.hardware.threads,
            "reference": str(reference) if reference else None, "source": known.source,
            "data": asdict(data) if data else None, "timing": asdict(timing)}, timeout=PROFILE_TIMEOUT_S,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if fmt == "executorch" else None)
    except MeasurementError as e:  # the runtime crashed or hung: every measured figure is unknown, none passes
        return _unmeasured(path, fmt, len(payload), sha256, known, profile, str(e),
                           _not_checked(reference, known, data, has_outputs=reference is not None))
    timings = {k: Timing(**v) for k, v in worker["timings"].items()}
    memory = Memory(**worker["memory"])
    histories = worker.pop("histories")
    if isinstance(native, BrowserClient):
        where = "browser/" if _browser_figures(native, path, histories, timing, memory, timings) else ""
    else:
        where = "native/" if _native_figures(native, fmt, path, histories, profile, timing, memory, timings) else ""
    latency = _device_latency(timings, profile, calibrations, known.analytic_ms,
                              HostLoad(**worker["host_load"]) if worker.get("host_load") else None, prefix=where)
    precision = known.precision or _infer_precision(fmt, worker["ops"])
    parity_min = known.parity_min if known.parity_min is not None else PARITY_MIN_AGREEMENT[
        "same weights" if precision == "fp32" else "quantized at export"]
    quality = Quality(**worker["quality"]) if worker.get("quality") else known.quality
    result = ArtifactProfile(
        path=path.name, format=fmt, precision=precision, bytes=len(payload), sha256=sha256, memory=memory,
        latency=latency, ops=worker["ops"], parity=worker["parity"], parity_min=parity_min,
        quality=quality or Quality(k=0, ndcg=None, hr=None), io=worker["io"],
        host=calibrations.get(latency.threads).to_dict(),
        not_checked=_not_checked(reference, known, data, has_outputs=worker["parity"]["histories"] > 0),
        download=web_download(len(payload), profile))
    result.checks = [c for c in judge(result, profile) if c.budget not in result.not_checked]
    return result


def _not_checked(reference: Path | None, known: ProfileRequest, data: QualityData | None,
                 has_outputs: bool) -> dict[str, str]:
    """The checks nothing was given for: an artifact profiled on its own is judged on size, memory and latency."""
    out = {}
    if reference is None:
        out["parity"] = (f"no reference outputs of the model it came from (--reference FILE.npz, or the build's "
                         f"{REFERENCE_FILE} when the {MANIFEST_FILE} next to it lists this artifact's sha256)")
    elif not has_outputs:
        out["parity"] = f"--reference {reference} holds histories only, no outputs of the model it came from"
    if data is None and known.quality is None:
        out["quality"] = (f"no interactions to measure it on (--data FILE), and no {MANIFEST_FILE} next to it "
                          f"lists this artifact's sha256")
    return out


def _unmeasured(path: Path, fmt: str, size: int, sha256: str, known: ProfileRequest, profile: DeviceProfile,
                reason: str, not_checked: dict[str, str] | None = None) -> ArtifactProfile:
    """An artifact whose measurement failed: the file's size is known, everything measured is unknown."""
    why = f"not measured: {reason}"
    result = ArtifactProfile(
        path=path.name, format=fmt, precision=known.precision or "unknown", bytes=size, sha256=sha256,
        memory=Memory(basis="unknown", verdict_bytes=None, how=why),
        latency=Latency(threads=profile.hardware.threads, timings={}, device_p50_ms=None, device_p95_ms=None,
                        device_p99_ms=None, scale=0.0, how=why),
        ops={}, parity=dict(NO_PARITY),
        parity_min=known.parity_min or PARITY_MIN_AGREEMENT["same weights"],
        quality=known.quality or Quality(k=0, ndcg=None, hr=None), io={"max_history": None, "candidates": None},
        host={}, not_checked=not_checked or {}, download=web_download(size, profile))
    result.checks = [c for c in judge(result, profile) if c.budget not in result.not_checked]
    return result


# the files runtime_demo/web/index.html makes the browser fetch besides the model: onnxruntime-web's
# wasm-only bundle, its wasm loader and the SIMD wasm binary (the single-threaded page loads the same ones)
WEB_RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime_demo" / "web" / "node_modules" / "onnxruntime-web" / "dist"
WEB_RUNTIME_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEB_GZIP_LEVEL = 6  # what a web server's Content-Encoding: gzip sends (nginx's and Python's default level)


def web_download(model_bytes: int, profile: DeviceProfile) -> Download | None:
    """A browser profile's download: the model, and onnxruntime-web's files as a server sends them (gzip),
    measured from the installed package (runtime_demo/web: npm install); None for an app's profile."""
    import gzip

    mode = profile.serving.web_runtime
    if not mode:
        return None
    files = {name: WEB_RUNTIME_DIR / name for name in WEB_RUNTIME_FILES}
    if not all(p.is_file() for p in files.values()):
        return Download(mode, model_bytes, None, f"onnxruntime-web is not installed ({WEB_RUNTIME_DIR}: run npm "
                                                 "install in runtime_demo/web)")
    sizes = {name: len(gzip.compress(p.read_bytes(), WEB_GZIP_LEVEL)) for name, p in files.items()}
    runtime = sum(sizes.values())
    return Download(mode, model_bytes, runtime, runtime_files_gzip_bytes=sizes, how=(
        f"onnxruntime-web's {', '.join(WEB_RUNTIME_FILES)}: {runtime:,} B gzip (level {WEB_GZIP_LEVEL}); "
        + ("counted in the download budget with the model" if mode == "counted" else
           "not counted: the profile says the browser has it cached (serving.web_runtime = \"cached\"); a first "
           "visit downloads it too")))


NATIVE_ROUNDS = 2  # native runs per thread setting, alternated (1, T, 1, T): drift hits both alike


NATIVE_HOW = {
    "executorch": "peak RSS of the native C++ client (runtime_demo/cpp) loading and serving the program: the "
                  "ExecuTorch runtime, XNNPACK and the model, what an app pays",
    "onnx": "peak RSS of the native ONNX Runtime client (runtime_demo/cpp/onnx, the C API on the wheel's "
            "libonnxruntime.so) loading and serving the model: the runtime library and the model, what an app pays",
}


def _native_figures(native, fmt: str, path: Path, histories: list[list[int]], profile: DeviceProfile,
                    timing: TimingConfig, memory: Memory, timings: dict[str, Timing]) -> bool:
    """The artifact measured in its native client (when built) on the histories the Python runtime was
    timed on: what an app pays. Its memory and its timings are the verdict's basis; the Python figures
    stay in the report beside them. Returns True when measured."""
    import numpy as np

    from toolkit.profiler.measure import timing_from_samples
    from toolkit.planning.estimate import RUNTIME_BASE_MEMORY

    python_how, failed = memory.how, ""

    if native is not None:
        try:
            history = np.asarray(histories, dtype=np.int64)
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
            memory.how = NATIVE_HOW[fmt]
            if memory.python_bytes is not None:
                memory.how += (f"; the Python process measured {memory.python_bytes:,} B (interpreter bindings "
                               f"included), {memory.python_bytes - peak:+,} B against the native figure")
            return True
        except (MeasurementError, ToolkitError, OSError) as e:
            failed = memory.how = f"native client failed ({e}); "
    if fmt == "onnx":  # the Python figure stays the verdict's basis, and says where it was measured
        memory.how = (f"{failed or 'no native ONNX Runtime client (runtime_demo/cpp/onnx needs cmake, g++ and '}"
                      f"{'' if failed else 'onnxruntime_c_api.h); '}measured in the Python process: {python_how}")
        return False
    if memory.python_model_bytes is None:
        memory.basis, memory.verdict_bytes = "unknown", None
        memory.how += "the memory could not be measured"
        return False
    memory.basis = "estimated"
    memory.verdict_bytes = memory.python_model_bytes + RUNTIME_BASE_MEMORY["executorch"]
    memory.how += (f"no native client: the model's memory measured in Python ({memory.python_model_bytes:,} B) + "
                   f"the ExecuTorch runtime's base ({RUNTIME_BASE_MEMORY['executorch']:,} B, measured natively)")
    return False


def _browser_figures(client, path: Path, histories: list[list[int]], timing: TimingConfig, memory: Memory,
                     timings: dict[str, Timing]) -> bool:
    """A browser profile's .onnx measured in headless Chromium with onnxruntime-web (1 thread, wasm): its
    timings and its wasm memory are the verdict's basis; the Python figures stay beside them."""
    from toolkit.profiler.measure import timing_from_samples

    try:
        bench = client.bench(path, histories, runs=timing.min_blocks * timing.block_calls, warmup=timing.warmup_calls)
    except (ToolkitError, OSError, subprocess.TimeoutExpired) as e:
        memory.how = f"browser client failed ({e}); measured in the Python process: {memory.how}"
        return False
    timings["browser/1"] = timing_from_samples(bench.samples_ms, timing)
    memory.browser_bytes, memory.browser_renderer_bytes = bench.wasm_memory_bytes, bench.renderer_peak_rss_bytes
    memory.basis, memory.verdict_bytes = "browser", bench.wasm_memory_bytes
    memory.how = (f"onnxruntime-web {bench.runtime_version}'s WebAssembly memory in headless Chromium after serving "
                  f"(it only grows: its peak; the model, the runtime's arena and activations); the page's renderer "
                  f"process peaked at {bench.renderer_peak_rss_bytes:,} B (Blink and V8 included); the Python "
                  f"process measured {memory.python_bytes or 0:,} B")
    return True


WHERE = {"": "Python runtime", "native/": "native client", "browser/": "headless Chromium (onnxruntime-web wasm)"}


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
        how=(f"quiet {WHERE[prefix]} figures at {best} thread(s) (the "
             f"{t.quiet_blocks} least disturbed of {t.blocks} blocks) x host "
             f"{host.gflops:.1f} GFLOP/s / device {device_gflops:.1f} GFLOP/s at {best} thread(s) (x{scale:.3f})"
             + ("; conservative: the host figure is already wasm and the profile's GFLOP/s is the device's wasm "
                "rate, while the host's is native, so wasm's slowdown counts twice" if prefix == "browser/" else "")))


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
            reference = path.parent / REFERENCE_FILE
            return ProfileRequest(precision=entry.get("precision"), source=entry.get("source", "float"),
                                  parity_min=entry.get("parity_min"), quality=quality,
                                  analytic_ms=entry.get("analytic_ms"),
                                  reference=reference if reference.is_file() else None)
    return ProfileRequest()


# --- the fresh process ---------------------------------------------------------------------------

def measure(request: dict) -> dict:
    """Load, check and time one artifact in this (fresh) process; see the module docstring."""
    import numpy  # noqa: F401  (every client has its arrays; the baseline holds them)

    from toolkit.profiler.measure import Contender, LoadMonitor, memory_status, reset_peak, time_calls

    path = Path(request["path"])
    before_runtime = memory_status()
    _import_runtime(request["format"])
    from export.runtime import Predictor
    from toolkit.profiler.parity import measure_parity

    reference = _read_reference(Path(request["reference"]), request["source"]) if request["reference"] else None
    after_runtime = memory_status()
    peak_reset = reset_peak()
    profile_threads = request["profile_threads"]
    predictor = Predictor(path, threads=profile_threads)
    histories, histories_how = _timing_histories(path, predictor.max_history, reference, None)
    parity = measure_parity(predictor.predict, reference) if reference and "items" in reference else NO_PARITY
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
    # the data file is read after the memory figures: its arrays and readers are not the app's memory
    evaluation = _read_quality_data(path, QualityData(**request["data"])) if request["data"] else None
    histories, histories_how = _timing_histories(path, predictor.max_history, reference, evaluation)
    io = {"max_history": predictor.max_history, "candidates": predictor.top_k, "histories": histories_how}
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
    quality = None
    if evaluation is not None:
        quality = _quality_through(predictors[current["threads"]] or Predictor(path, threads=profile_threads),
                                   evaluation)
    return {"memory": memory, "timings": {k: v.to_dict() for k, v in timings.items()}, "parity": parity,
            "ops": ops, "io": io, "host_load": monitor.load.to_dict(), "quality": quality,
            "histories": histories.tolist()}


def _read_reference(path: Path, source: str) -> dict:
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


def _timing_histories(path: Path, max_history: int, reference: dict | None, evaluation) -> tuple:
    """What the artifact is timed on: the reference histories, else the data's test histories, else
    synthetic ones (seeded, valid indices from the items.json next to it, else item 1 only)."""
    import numpy as np

    from toolkit.core.contract import read_items
    from toolkit.training.evaluate import pad_histories

    if reference is not None:
        history = reference["history"]
        if history.shape[1] != max_history:
            raise ToolkitError(f"--reference: its histories hold {history.shape[1]} items, the artifact's input "
                               f"{max_history}")
        return history, f"{len(history)} reference histories"
    if evaluation is not None:
        rows = evaluation.split.history("test")[:SYNTHETIC_HISTORIES]
        return pad_histories(rows, max_history), f"{len(rows)} test histories of --data"
    rng = np.random.default_rng(0)
    items_file = path.parent / ITEMS_FILE
    num_items = len(read_items(items_file)) if items_file.is_file() else 2
    history = np.zeros((SYNTHETIC_HISTORIES, max_history), dtype=np.int64)
    for row, length in enumerate(rng.integers(1, max_history + 1, SYNTHETIC_HISTORIES)):
        history[row, max_history - length:] = rng.integers(1, num_items, length)
    how = (f"{SYNTHETIC_HISTORIES} synthetic histories (seed 0) of random items from {ITEMS_FILE}"
           if items_file.is_file() else f"{SYNTHETIC_HISTORIES} synthetic histories of item 1 only (no {ITEMS_FILE})")
    return history, how


@dataclass
class _Evaluation:
    split: Split  # over the artifact's item indices (its items.json)
    kept_users: int
    dropped_users: int
    unknown_items: int  # interactions whose item the artifact's items.json does not hold


def _read_quality_data(path: Path, data: QualityData) -> _Evaluation:
    """The interactions, mapped to the artifact's item indices (items.json), split leave-one-out as a build does."""
    import numpy as np

    from toolkit.core.contract import read_items
    from toolkit.data import MIN_INTERACTIONS_PER_USER, Dataset, load_dataset, split_leave_one_out

    items = read_items(path.parent / ITEMS_FILE)
    options = {k: v for k, v in asdict(data).items() if k != "path" and v is not None}
    dataset = load_dataset(data.path, **options)
    index = {item: i for i, item in enumerate(items) if i}
    to_artifact = np.array([index.get(item, 0) for item in dataset.item_ids], dtype=np.int64)
    sequences, unknown = [], 0
    for seq in dataset.sequences:
        mapped = to_artifact[seq]
        unknown += int((mapped == 0).sum())
        if (mapped > 0).sum() >= MIN_INTERACTIONS_PER_USER:
            sequences.append(mapped[mapped > 0])
    if not sequences:
        raise ToolkitError(f"--data {data.path}: no user has {MIN_INTERACTIONS_PER_USER} interactions with items "
                           f"of the artifact's {ITEMS_FILE}")
    mapped = Dataset(name=dataset.name, sha256=dataset.sha256, item_ids=items,
                     user_ids=[str(i) for i in range(len(sequences))], sequences=sequences)
    return _Evaluation(split=split_leave_one_out(mapped), kept_users=len(sequences),
                       dropped_users=len(dataset.sequences) - len(sequences), unknown_items=unknown)


def _quality_through(predictor, evaluation: _Evaluation) -> dict:
    """HR/NDCG@K on the data's test targets through the artifact, and the popularity baseline on the same split."""
    from toolkit.training.evaluate import cutoff_for, evaluate_popularity, evaluate_topk

    k = cutoff_for(predictor.top_k)
    metrics = evaluate_topk(predictor.predict, evaluation.split, "test", predictor.max_history, k)
    popularity = evaluate_popularity(evaluation.split, "test", k)
    return asdict(Quality(k=k, ndcg=metrics.ndcg, hr=metrics.hr, users=metrics.users,
                          undetermined=metrics.undetermined, popularity_ndcg=popularity.ndcg))


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
