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

The records are toolkit/profiler/records.py, the verdicts judge.py, what runs in the fresh process
worker.py, the native and browser clients' figures clients.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

from toolkit.core.contract import ITEMS_FILE, MANIFEST_FILE, REFERENCE_FILE
from toolkit.core.errors import ToolkitError
from toolkit.core.profiles import DeviceProfile
from toolkit.profiler.build_files import request_from_manifest
from toolkit.profiler.calibrate import CalibrationCache
from toolkit.profiler.clients import browser_figures, native_figures
from toolkit.profiler.download import web_download
from toolkit.profiler.fresh import MeasurementError, run_fresh
from toolkit.profiler.host import HostLoad
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT, judge
from toolkit.profiler.measure import Timing, TimingConfig
from toolkit.profiler.ops import infer_precision
from toolkit.profiler.records import NO_PARITY, ArtifactProfile, Latency, Memory, ProfileRequest, Quality, QualityData

THREADS_GAIN = 0.9  # more threads are recommended only when they cut the quiet p50 by >= 10 %
PROFILE_TIMEOUT_S = 600


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
        native: where the app runs this format: a `toolkit.profiler.native.NativeClient` for a .pte, a
            `toolkit.profiler.onnx_client.OnnxClient` for an .onnx, a `toolkit.profiler.browser.BrowserClient`
            for a browser profile's .onnx (None: not measured there; the Python figures judge).
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
    known = known or request_from_manifest(path, sha256)
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
        worker = run_fresh("toolkit.profiler.worker:measure", {
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
        where = "browser/" if browser_figures(native, path, histories, timing, memory, timings) else ""
    else:
        where = "native/" if native_figures(native, fmt, path, histories, profile, timing, memory, timings) else ""
    latency = device_latency(timings, profile, calibrations, known.analytic_ms,
                             HostLoad(**worker["host_load"]) if worker.get("host_load") else None, prefix=where)
    precision = known.precision or infer_precision(fmt, worker["ops"])
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


WHERE = {"": "Python runtime", "native/": "native client", "browser/": "headless Chromium (onnxruntime-web wasm)"}


def device_latency(timings: dict[str, Timing], profile: DeviceProfile, calibrations: CalibrationCache,
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
