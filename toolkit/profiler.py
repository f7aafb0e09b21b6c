"""The profiler: does an artifact fit a device profile? Measured in its real runtime, in a fresh process.

For one artifact (`profile_artifact`) it reports:
  size      bytes on disk (the file's size; that is what an app ships or downloads);
  memory    measured: peak resident memory (RSS high-water mark) of loading the artifact and
            serving requests, minus the process's RSS right after importing the runtime (so the
            interpreter, numpy and the runtime library are subtracted; the model's load, weights,
            arena and activations remain). The high-water mark is reset after the imports (Linux
            /proc/self/clear_refs) so import-time peaks do not leak in; `baseline` says how.
            estimated (.pte only): the memory-planned activation buffers read from the program
            (`non_const_buffer_sizes`) plus its constant bytes (weights, delegate payloads).
            The memory budget is judged on the measured figure.
  latency   host p50/p95/p99 over >= 1,000 runs and >= 2 s (capped at `max_seconds`) after warm-up,
            with the profile's thread count, on real test histories (reference.npz); and the device
            estimate = host latency x host GFLOP/s / profile GFLOP/s, labelled as an estimate.
            The latency budget is judged on the estimated device p95.
  ops       .pte: XNNPACK delegate calls, the XNNPACK nodes inside them, and the operators that run
            outside XNNPACK (portable / quantized kernels); .onnx: node counts by op type.
  parity    top-10 agreement and max score error against the PyTorch outputs stored at export.
  quality   HR@10 / NDCG@10 measured through the artifact: the build computes them on the test
            split and passes them in; the standalone `profile` command reuses the figures of the
            manifest.json next to the artifact when its sha256 matches (else "not available").

Each budget (and the profile's format, int8 and serving shape) gets pass/fail with its margin.
The worker is `python -c "...worker_main..."`: a fresh interpreter per artifact, so one
artifact's allocations never count against another and the thread pool is set from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.calibrate import CalibrationCache
from toolkit.errors import ToolkitError
from toolkit.profiles import DeviceProfile

REFERENCE_FILE = "reference.npz"  # written by the build next to the artifacts (pipeline.REFERENCE_FILE)
MANIFEST_FILE = "manifest.json"
HISTOGRAM_BINS = 40
_ROOT = Path(__file__).resolve().parent.parent
# ONNX op types that only appear in a quantized graph
_ONNX_INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear",
                  "ConvInteger", "QLinearConv", "GatherBlockQuantized", "MatMulNBits"}


@dataclass
class LatencyConfig:
    warmup_runs: int = 50
    min_runs: int = 1000
    min_seconds: float = 2.0
    max_seconds: float = 30.0  # a slow model stops here even below min_runs (then runs >= 2 s)


@dataclass
class Check:
    """One budget or requirement of the profile, judged for one artifact."""

    budget: str  # model_bytes | memory_bytes | latency_ms | format | precision | serving
    passed: bool
    text: str  # "model 1.9 MB of 4.0 MB (2.1 MB to spare)"
    value: float | None = None
    limit: float | None = None
    margin: float | None = None  # limit - value: positive = to spare, negative = over
    basis: str = ""  # "file" | "measured" | "estimated" | "artifact"


@dataclass
class ArtifactProfile:
    path: str
    format: str
    precision: str
    bytes: int
    sha256: str
    memory: dict
    latency: dict
    device_latency: dict
    ops: dict
    parity: dict
    quality: dict
    io: dict
    host: dict
    checks: list[Check] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        return [f"{self.path} misses {c.budget}: {c.text}" for c in self.checks if not c.passed]

    def verdict(self) -> dict:
        return {"verdict": "fits" if self.fits else "does not fit", "fits": self.fits,
                "checks": [asdict(c) for c in self.checks]}

    def figures(self) -> dict:
        """The measured figures (manifest key "profile"); the verdict is separate."""
        return {"bytes": self.bytes, "memory": self.memory, "latency": self.latency,
                "device_latency": self.device_latency, "ops": self.ops, "parity": self.parity,
                "quality": self.quality, "io": self.io, "host": self.host}

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "precision": self.precision, "sha256": self.sha256,
                **self.figures(), **self.verdict()}


def profile_artifact(path: Path, profile: DeviceProfile, calibrations: CalibrationCache | None = None,
                     latency: LatencyConfig | None = None, quality: dict | None = None,
                     precision: str | None = None) -> ArtifactProfile:
    """Measure one artifact in a fresh process and judge it against the profile.

    Args:
        path: a .pte or .onnx file with `reference.npz` next to it (a build directory).
        profile: the device profile to judge against.
        calibrations: host GFLOP/s per thread count, shared across artifacts of one run.
        latency: how long to measure.
        quality: HR@10/NDCG@10 through the artifact if known (the build passes them).
        precision: "fp32" | "int8" if known; otherwise inferred from the ops in the artifact.
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
    latency = latency or LatencyConfig()
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if quality is None or precision is None:
        known = _from_manifest(path, sha256)
        quality = quality if quality is not None else known.get("quality")
        precision = precision or known.get("precision")

    threads = profile.hardware.threads
    worker = _run_worker({"path": str(path), "format": fmt, "threads": threads, "reference": str(reference),
                          "latency": asdict(latency)})
    host = calibrations.get(threads)
    scale = host.gflops / profile.hardware.gflops
    device_latency = {"basis": "estimated", "how": f"host latency x host {host.gflops:.1f} GFLOP/s / device "
                      f"{profile.hardware.gflops:.1f} GFLOP/s (x{scale:.3f})", "scale": scale,
                      **{k: worker["latency"][k] * scale for k in ("p50_ms", "p95_ms", "p99_ms")}}
    result = ArtifactProfile(
        path=path.name, format=fmt, precision=precision or _infer_precision(fmt, worker["ops"]), bytes=len(data),
        sha256=sha256, memory=worker["memory"], latency=worker["latency"], device_latency=device_latency,
        ops=worker["ops"], parity=worker["parity"],
        quality=({**quality, "basis": "measured through the artifact"} if quality else {"basis": "not available"}),
        io=worker["io"], host=host.to_dict())
    result.checks = judge(result, profile)
    return result


def judge(a: ArtifactProfile, profile: DeviceProfile) -> list[Check]:
    """Pass/fail with margin for every budget and requirement of the profile."""
    b, hw, s = profile.budget, profile.hardware, profile.serving
    checks = [
        Check("format", a.format in s.formats, f"format {a.format}: device serves {', '.join(s.formats)}",
              basis="artifact"),
        Check("precision", a.precision == "fp32" or hw.int8,
              f"precision {a.precision}: device {'has' if hw.int8 else 'has no'} fast int8 kernels", basis="artifact"),
        Check("serving", a.io["max_history"] == s.max_history and a.io["top_k"] >= s.top_k,
              f"serving: history {a.io['max_history']} (device {s.max_history}), top-K {a.io['top_k']} "
              f"(device needs {s.top_k})", basis="artifact"),
        _budget_check("model_bytes", "model", a.bytes, b.model_bytes, _mb, "file"),
        _budget_check("memory_bytes", "memory", a.memory["measured_bytes"], b.memory_bytes, _mb, "measured"),
        _budget_check("latency_ms", "latency p95", a.device_latency["p95_ms"], b.latency_ms,
                      lambda v: f"{v:.2f} ms", "estimated"),
    ]
    return checks


def _budget_check(budget: str, label: str, value: float, limit: float, fmt, basis: str) -> Check:
    margin = limit - value
    spare = f"{fmt(margin)} to spare" if margin >= 0 else f"over by {fmt(-margin)}"
    return Check(budget, value <= limit, f"{label} {fmt(value)} of {fmt(limit)} ({basis}; {spare})",
                 value=float(value), limit=float(limit), margin=float(margin), basis=basis)


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if abs(n) >= 10_000 else f"{n / 1e3:.1f} KB"


def _infer_precision(fmt: str, ops: dict) -> str:
    if fmt == "executorch":
        names = list(ops.get("outside_xnnpack", {})) + list(ops.get("xnnpack_nodes", {}))
        return "int8" if any("quantized" in n.lower() for n in names) or ops.get("xnnpack_quantized_values") else "fp32"
    return "int8" if set(ops.get("op_types", {})) & _ONNX_INT8_OPS else "fp32"


def _from_manifest(path: Path, sha256: str) -> dict:
    """Quality and precision of this exact artifact from the build's manifest, if it is there."""
    try:
        manifest = json.loads((path.parent / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    for entry in manifest.get("artifacts", []) if isinstance(manifest, dict) else []:
        if isinstance(entry, dict) and entry.get("sha256") == sha256:
            metrics = entry.get("metrics") or None
            return {"quality": metrics, "precision": entry.get("precision")}
    return {}


# --- the parent side of the fresh process -------------------------------------------------------

def _run_worker(request: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="toolkit-profile-") as tmp:
        result_path = Path(tmp) / "result.json"
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        code = "import sys; from toolkit.profiler import worker_main; sys.exit(worker_main(sys.argv[1:]))"
        timeout = 300 + request["latency"]["max_seconds"]
        try:
            done = subprocess.run([sys.executable, "-c", code, json.dumps(request), str(result_path)], env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolkitError(f"{request['path']}: profiling did not finish within {timeout:.0f} s") from None
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            if "error" in result:
                raise ToolkitError(result["error"])
            if done.returncode == 0:
                return result
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolkitError(f"{request['path']}: the runtime failed while profiling ({how}: {last})")


# --- the fresh process ---------------------------------------------------------------------------

def worker_main(argv: list[str]) -> int:
    """Entry point of the fresh process: argv = [request JSON, result path]."""
    request, result_path = json.loads(argv[0]), Path(argv[1])
    try:
        result = measure(request)
        code = 0
    except ToolkitError as e:
        result, code = {"error": str(e)}, 2
    result_path.write_text(json.dumps(result))
    return code


def measure(request: dict) -> dict:
    """Load, serve and time one artifact in this (fresh) process; see the module docstring."""
    import time

    import numpy as np

    from export.runtime import Predictor
    from toolkit.parity import load_reference, measure_parity

    fmt, threads, cfg = request["format"], request["threads"], LatencyConfig(**request["latency"])
    _import_runtime(fmt)
    reference = load_reference(Path(request["reference"]))
    baseline = _memory_status()
    hwm_reset = _reset_peak()

    predictor = Predictor(Path(request["path"]), threads=threads)
    after_load = _memory_status()
    parity = measure_parity(predictor.predict, reference)  # also the first warm-up
    histories = reference["history"]
    for i in range(cfg.warmup_runs):
        predictor.predict(histories[i % len(histories)][None])
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        history = histories[len(samples) % len(histories)][None]
        t0 = time.perf_counter()
        predictor.predict(history)
        t1 = time.perf_counter()
        samples.append((t1 - t0) * 1e3)
        elapsed = t1 - start
        if (len(samples) >= cfg.min_runs and elapsed >= cfg.min_seconds) or elapsed >= cfg.max_seconds:
            break
    peak = _memory_status()

    ms = np.asarray(samples)
    edges = np.linspace(ms.min(), np.percentile(ms, 99.9), HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(np.clip(ms, edges[0], edges[-1]), bins=edges)
    # the baseline: RSS after importing the runtime; the peak: the high-water mark since the reset
    base = baseline["rss"] if hwm_reset else baseline["hwm"]
    memory = {
        "basis": "measured",
        "measured_bytes": max(peak["hwm"] - base, 0),
        "baseline": ("peak RSS of load + serving minus RSS after importing the runtime "
                     f"({'high-water mark reset after the imports' if hwm_reset else 'high-water mark not resettable: minus the peak after the imports'})"),
        "baseline_bytes": base,
        "process_peak_bytes": peak["hwm"],
        "after_load_bytes": max(after_load["rss"] - baseline["rss"], 0),
        "after_serving_bytes": max(peak["rss"] - baseline["rss"], 0),
    }
    ops = _inspect_ops(Path(request["path"]), fmt)
    if "estimated_bytes" in ops:
        memory["estimated_bytes"] = ops.pop("estimated_bytes")
        memory["estimated"] = ops.pop("estimated")
    return {
        "memory": memory,
        "latency": {"basis": "measured on this host", "threads": threads, "runs": len(samples),
                    "seconds": float(ms.sum() / 1e3), "warmup_runs": cfg.warmup_runs + len(histories),
                    "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                    "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
                    "histogram": {"edges_ms": edges.tolist(), "counts": counts.tolist()}},
        "parity": parity,
        "ops": ops,
        "io": {"max_history": predictor.max_history, "top_k": predictor.top_k},
    }


def _import_runtime(fmt: str) -> None:
    """Everything serving imports, before the baseline, so the baseline contains the runtime."""
    if fmt == "executorch":
        import executorch.kernels.quantized  # noqa: F401
        import torch  # noqa: F401
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool  # noqa: F401
        from executorch.runtime import Runtime

        Runtime.get()
    else:
        import onnxruntime  # noqa: F401


def _memory_status() -> dict[str, int]:
    """Current and peak resident memory of this process in bytes."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "hwm": int(fields["VmHWM"].split()[0]) * 1024}
    except (OSError, KeyError, ValueError):  # not Linux: ru_maxrss only (bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak if sys.platform == "darwin" else peak * 1024
        return {"rss": peak, "hwm": peak}


def _reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


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
        "estimated_bytes": planned + constants,
        "estimated": {"basis": "estimated", "planned_activation_bytes": planned, "constant_bytes": constants,
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


# --- a whole build -------------------------------------------------------------------------------

def profile_build_(build_dir: Path, profile: DeviceProfile, manifest: dict, log=print) -> list[ArtifactProfile]:
    """Profile every artifact of a build, add "profile" (figures) and "verdict" to each artifact entry of
    `manifest` in place, write report.json / report.md / plots into `build_dir` and log the verdict table."""
    from toolkit.report import verdict_table, write_report

    calibrations = CalibrationCache()
    results = []
    for entry in manifest["artifacts"]:
        log(f"  profiling {entry['path']} against {profile.name} in a fresh process ...")
        result = profile_artifact(Path(build_dir) / entry["path"], profile, calibrations,
                                  quality=entry.get("metrics"), precision=entry.get("precision"))
        entry["profile"], entry["verdict"] = result.figures(), result.verdict()
        results.append(result)
    write_report(Path(build_dir), profile, results, plan=manifest.get("plan"))
    log("\n" + verdict_table(profile, results))
    return results


def not_fit_message(results: list[ArtifactProfile]) -> str:
    """Which artifact misses which budget and by how much (empty when everything fits)."""
    return "; ".join(f for r in results for f in r.failures())
