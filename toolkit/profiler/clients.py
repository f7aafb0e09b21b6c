"""An artifact measured where the app runs it: its native client (the C++ ExecuTorch client for a .pte,
the ONNX Runtime C API client for an .onnx) or, for a browser profile, headless Chromium with
onnxruntime-web. Their memory and timings become the verdict's basis; without a client the Python
figures judge (for a .pte as an estimate with the runtime's measured base).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from toolkit.core.errors import ToolkitError
from toolkit.core.profiles import DeviceProfile
from toolkit.profiler.fresh import MeasurementError
from toolkit.profiler.measure import Timing, TimingConfig
from toolkit.profiler.records import Memory


NATIVE_ROUNDS = 2  # native runs per thread setting, alternated (1, T, 1, T): drift hits both alike

NATIVE_HOW = {
    "executorch": "peak RSS of the native C++ client (runtime_demo/cpp) loading and serving the program: the "
                  "ExecuTorch runtime, XNNPACK and the model, what an app pays",
    "onnx": "peak RSS of the native ONNX Runtime client (runtime_demo/cpp/onnx, the C API on the wheel's "
            "libonnxruntime.so) loading and serving the model: the runtime library and the model, what an app pays",
}


def native_figures(native, fmt: str, path: Path, histories: list[list[int]], profile: DeviceProfile,
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


def browser_figures(client, path: Path, histories: list[list[int]], timing: TimingConfig, memory: Memory,
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
