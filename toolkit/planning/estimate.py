"""Analytic estimates of a candidate on a device profile, before anything is trained: file bytes =
weight bytes (parameters x their storage bytes) + the format's measured program overhead; peak memory =
the runtime's measured base + weights + planned activations; latency = FLOPs / the profile's GFLOP/s +
the runtime's measured per-request overhead. The profiler then measures the shipped files in their real
runtimes; these figures only choose what to train. Pure: no torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from toolkit.planning.candidates import Candidate

# Measured on this toolkit's exports (MovieLens-100K vocabulary, max_history 50, one block):
# bytes a file holds beyond its weights (graph/program, delegate headers), fp32 and quantized graphs.
FORMAT_OVERHEAD_BYTES = {"executorch": {"fp32": 17_000, "quantized": 31_500},
                         "onnx": {"fp32": 4_000, "quantized": 7_000}}
EXTRA_BLOCK_OVERHEAD_BYTES = {"executorch": 27_000, "onnx": 7_500}  # each block after the first
# fp32 .pte: XNNPACK runs the scores as a fully connected layer on its own packed copy of the
# (float) item table, so the table is in the file twice. A large int8 table is in both files twice,
# as int8: once for the lookup, once as the int8 matmul's weight (export.serving: `int8_scores`).
PACKED_TABLE_COPY = {"executorch": True, "onnx": False}
# What the runtime itself holds resident while serving a tiny model (measured on the host): for
# ONNX Runtime its CPU library's pages and a session (the profiler's Python figure above the bare
# interpreter); for ExecuTorch the native runtime.
RUNTIME_BASE_MEMORY = {"executorch": 7_500_000, "onnx": 33_000_000}
# Per-request time that does not scale with FLOPs (op dispatch, top-k, copies), host-measured.
RUNTIME_OVERHEAD_MS = {"executorch": 2.0, "onnx": 0.6}
# Per scored item, host-measured ns (one thread): what an integer or PQ table costs a request beyond its
# matmul FLOPs (unpacking, LUT gathers outside the matmul kernels; ONNX Runtime unpacks an int4 table once
# at load), scaled to a device by REFERENCE_HOST_GFLOPS / the profile's GFLOP/s (`calibrate` on the host
# they were measured on). int4 and PQ: bench/serving_scale.json (10^6 items, dim 32). int8: unpacked on
# every request (below INT8_SCORES_MIN_ITEMS), the 50,000-item build's compressed .pte cost 60 ns an item
# (3.07 ms; ExecuTorch unpacks outside XNNPACK), its .onnx 3 ns (ORT folds the unpacking at load);
# "int8-matmul": from INT8_SCORES_MIN_ITEMS the scores run in each runtime's int8 matmul
# (export.serving `int8_scores`): a 50,000-item dim-32 int8-table model serves in 0.22 ms (.pte) /
# 0.16 ms (.onnx) a request on the host, ~3 ns an item above its FLOPs.
TABLE_ITEM_NS = {"executorch": {"float": 0.0, "int8": 60.0, "int8-matmul": 3.0, "int4": 155.0, "pq": 51.0},
                 "onnx": {"float": 0.0, "int8": 3.0, "int8-matmul": 3.0, "int4": 5.0, "pq": 23.0}}
REFERENCE_HOST_GFLOPS = 120.0
TWO_STAGE_SCORED = 0.07  # share of the catalogue a two-stage request scores at recall@10 0.96 (7.0 % at 10^6, C = 4·sqrt(N))
SCALE_BYTES = 2  # fp16 per-row scales


@dataclass
class Estimate:
    """Analytic predictions for one candidate: per-format file bytes, peak memory, latency."""

    weight_bytes: int
    file_bytes: dict[str, int]
    memory_bytes: dict[str, int]
    latency_ms: dict[str, float]
    flops: int

    def to_dict(self) -> dict:
        return asdict(self)


def weight_bytes(c: Candidate, num_items: int, max_history: int) -> int:
    """Bytes of the weights as stored: item table once (+ per-row scales; or PQ codes + codebooks),
    projection, positions, blocks, and a two-stage graph's cluster index."""
    from toolkit.compression.pq import PQConfig, pq_table_bytes

    d, hidden = c.dim, 4 * c.dim
    width = c.embedding_rank or d
    if c.pq_subspaces:
        table = pq_table_bytes(num_items, width, PQConfig(c.pq_subspaces))
    else:
        table = num_items * width * c.table_bits // 8 + (num_items * SCALE_BYTES if c.table_bits < 32 else 0)
    if c.two_stage:
        clusters = two_stage_clusters(num_items)
        table += clusters * d * 4 + 2 * clusters * 8 + two_stage_capacity(num_items) * 8  # centroids, starts, sizes
    project = width * d * 4 if c.embedding_rank else 0
    wbytes = 1 if c.linear_bits == 8 else 4
    scale = SCALE_BYTES if c.linear_bits == 8 else 0
    positions = max_history * d * wbytes + (max_history * scale)
    linear_weights = 4 * d * d + 2 * d * hidden  # q, k, v, out, fc1, fc2
    linear_rows = 4 * d + hidden + d  # output channels (biases, scales)
    block = linear_weights * wbytes + linear_rows * (4 + scale) + 4 * d * 4  # + 2 LayerNorms
    return table + project + positions + c.layers * block + 2 * d * 4  # + final LayerNorm


def two_stage_clusters(num_items: int) -> int:
    """C: export.two_stage's default for the catalogue."""
    from export.cluster_index import default_clusters

    return default_clusters(num_items)


def two_stage_capacity(num_items: int) -> int:
    from export.cluster_index import DEFAULT_BALANCE

    return math.ceil(DEFAULT_BALANCE * num_items / two_stage_clusters(num_items))


def items_scored(c: Candidate, num_items: int) -> int:
    """Items whose scores a request computes: all of them, or C centroids + the probed clusters'
    members (expected `TWO_STAGE_SCORED` of the catalogue at recall@10 0.95; the build measures it)."""
    if not c.two_stage:
        return num_items
    return two_stage_clusters(num_items) + math.ceil(TWO_STAGE_SCORED * num_items)


def flops(c: Candidate, num_items: int, max_history: int) -> int:
    """Multiply-adds × 2 of one request (last position only in the last block)."""
    t, d, hidden = max_history, c.dim, 4 * c.dim
    full_block = t * (4 * d * d + 2 * d * hidden) + 2 * t * t * d  # every position
    last_block = t * 2 * d * d + (2 * d * d + 2 * d * hidden) + 2 * t * d  # k, v for all; the rest once
    width = c.embedding_rank or d
    scores = items_scored(c, num_items) * width + (width * d if c.embedding_rank else 0)
    return 2 * ((c.layers - 1) * full_block + last_block + scores)


def int8_scores(c: Candidate, num_items: int) -> bool:
    """Whether the candidate's int8 table is scored by the runtime's int8 matmul, on a second int8
    copy of the table in the file (export.serving `int8_scores`: large catalogues)."""
    from export import INT8_SCORES_MIN_ITEMS

    return c.table_bits == 8 and not (c.pq_subspaces or c.two_stage) and num_items >= INT8_SCORES_MIN_ITEMS


def estimate(c: Candidate, num_items: int, max_history: int, gflops: float, formats: tuple[str, ...]) -> Estimate:
    w = weight_bytes(c, num_items, max_history)
    f = flops(c, num_items, max_history)
    kind = "quantized" if c.quantized else "fp32"
    width = c.embedding_rank or c.dim
    # planned activations: hidden states of every position (a few per block), the scores (N),
    # and a quantized table dequantized for the score matmul (N × width fp32), unless its scores run
    # in the runtime's int8 matmul (on a second int8 copy of the table in the file)
    int8_matmul = int8_scores(c, num_items)
    unpacked = c.quantized and not int8_matmul
    activations = 4 * (8 * max_history * 4 * c.dim * c.layers + 4 * num_items + (num_items * width if unpacked else 0))
    file_bytes, memory, latency = {}, {}, {}
    for fmt in formats:
        file_bytes[fmt] = w + FORMAT_OVERHEAD_BYTES[fmt][kind] + EXTRA_BLOCK_OVERHEAD_BYTES[fmt] * (c.layers - 1)
        if PACKED_TABLE_COPY[fmt] and c.table_bits == 32:
            file_bytes[fmt] += num_items * width * 4
        if int8_matmul:
            file_bytes[fmt] += num_items * (width + 4)  # the int8 matmul's copy, fp32 scales
        memory[fmt] = RUNTIME_BASE_MEMORY[fmt] + file_bytes[fmt] + activations
        # integer and PQ tables are unpacked or looked up item by item outside the matmul kernels
        per_item = TABLE_ITEM_NS[fmt]["pq" if c.pq_subspaces else "int8-matmul" if int8_matmul
                                      else f"int{c.table_bits}" if c.table_bits < 32 else "float"]
        decode = items_scored(c, num_items) * per_item * 1e-6 * REFERENCE_HOST_GFLOPS / gflops
        latency[fmt] = f / (gflops * 1e9) * 1e3 + RUNTIME_OVERHEAD_MS[fmt] + decode
    return Estimate(weight_bytes=w, file_bytes=file_bytes, memory_bytes=memory, latency_ms=latency, flops=f)


def misses(est: Estimate, profile, measured_bytes: dict[str, int] | None = None,
           formats: tuple[str, ...] | None = None) -> dict[str, float]:
    """Relative excess over each budget (worst of `formats`, default all estimated), 0 when it fits."""
    b = profile.budget
    formats = formats or tuple(est.file_bytes)
    size = max((measured_bytes or est.file_bytes)[f] for f in formats)
    return {"model_bytes": max(0.0, size / b.model_bytes - 1),
            "memory_bytes": max(0.0, max(est.memory_bytes[f] for f in formats) / b.memory_bytes - 1),
            "latency_ms": max(0.0, max(est.latency_ms[f] for f in formats) / b.latency_ms - 1)}


def scaled(est: Estimate, k: float) -> Estimate:
    return Estimate(weight_bytes=est.weight_bytes, file_bytes={f: int(b * k) for f, b in est.file_bytes.items()},
                    memory_bytes={f: int(b * k) for f, b in est.memory_bytes.items()},
                    latency_ms={f: v * k for f, v in est.latency_ms.items()}, flops=est.flops)


def describe(miss: dict[str, float]) -> str:
    parts = [f"{k} by {v:.0%}" for k, v in miss.items() if v > 0]
    return ", ".join(parts) if parts else "nothing"


def float_precisions(c: Candidate, profile, num_items: int, formats: tuple[str, ...]) -> dict[str, list[str]]:
    """Per format, which exports of the float student of `c` (full item table) fit the model budget by
    estimate: "fp32", and "int8" (PT2E static / ORT dynamic; it holds the table twice as int8:
    lookup and scores)."""
    c, b = replace(c, embedding_rank=0), profile.budget
    out = {}
    for fmt in formats:
        fp32 = estimate(replace(c, table_bits=32, linear_bits=32), num_items, profile.serving.max_history,
                        profile.hardware.gflops, (fmt,)).file_bytes[fmt]
        as_int8 = replace(c, table_bits=8, linear_bits=8)
        int8 = estimate(as_int8, num_items, profile.serving.max_history, profile.hardware.gflops, (fmt,)).file_bytes[fmt]
        if not int8_scores(as_int8, num_items):  # the estimate counts the second copy itself when it has one
            int8 += num_items * c.dim
        out[fmt] = [p for p, size in (("fp32", fp32), ("int8", int8))
                    if size <= b.model_bytes and (p == "fp32" or profile.hardware.int8)]
    return out


def analytic_latency(c: Candidate, profile, num_items: int, formats: tuple[str, ...]) -> dict[str, float]:
    """The analytic device latency (FLOPs / GFLOP/s + per-request overhead) per "format/source": the
    float student of `c` ("float") and `c` itself ("compressed")."""
    out = {}
    for fmt in formats:
        for source, cand in (("float", replace(c, table_bits=32, linear_bits=32, embedding_rank=0)), ("compressed", c)):
            est = estimate(cand, num_items, profile.serving.max_history, profile.hardware.gflops, (fmt,))
            out[f"{fmt}/{source}"] = est.latency_ms[fmt]
    return out
