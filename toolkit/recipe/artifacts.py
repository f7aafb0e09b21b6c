"""The build's artifacts: which files to write (`export_jobs`), the graph each ships (`serving_graph`),
writing one (`export_job`), and checking each in its runtime against the model it came from
(`check_artifacts`: parity on real test histories, quality through the runtime). Every file is
exported once, on the graph that ships: the plan's trial files are the shipped files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.core.contract import REFERENCE_FILE
from toolkit.recipe.manifest import ArtifactRecord
from toolkit.core.units import format_bytes
from toolkit.planning.candidates import Candidate
from toolkit.profiler.judge import PARITY_MIN_AGREEMENT
from toolkit.recipe.records import ExportJob
from toolkit.training.evaluate import Metrics, pad_histories

CALIBRATION_HISTORIES = 128  # real training histories used to calibrate int8 activations
PARITY_HISTORIES = 200  # test histories each artifact is compared on against the model it came from
# how an artifact's weights were quantized at export, by (format, method); "compressed" artifacts
# carry the weights toolkit.compression left in the model (`compressed_quantization`)
QUANTIZATION = {
    ("executorch", "none"): "none", ("onnx", "none"): "none",
    ("executorch", "int8"): "torchao int8 weight-only lookup + PT2E XNNPACKQuantizer int8 per-channel linears, dynamic activations",
    ("onnx", "int8"): "ONNX Runtime quantize_dynamic int8 (MatMul, Gather)",
}
SUFFIX = {"executorch": ".pte", "onnx": ".onnx"}


@dataclass
class Shipping:
    """What the served graphs need beyond the model: how many candidates they return, whether seen
    items may be answers, and (compressed, large catalogues) the two-stage index and its probe."""

    candidates: int
    allow_repeats: bool
    two_stage: tuple | None = None  # (export.cluster_index.ClusterIndex, probe)


def compressed_description(c: Candidate) -> str:
    """How the plan's compressed artifact stores its weights (the manifest's `quantization`)."""
    rank = f"item table factorized at rank {c.embedding_rank} (SVD, fine-tuned)" if c.embedding_rank else ""
    table = (f"product-quantized item table: {c.pq_subspaces} uint8 codes an item + faiss codebooks, stored once"
             if c.pq_subspaces else f"toolkit.compression weight-only: int{c.table_bits} table stored once"
             if c.table_bits < 32 else "")
    weights = table + (", int8 linears" if c.linear_bits < 32 else "")
    serving = "two-stage serving (cluster centroids, then the probed clusters' members)" if c.two_stage else ""
    return "; ".join(x for x in (rank, weights.lstrip(", "), serving) if x) or "none"


def plan_job(c: Candidate, fmt: str) -> ExportJob:
    """The file a trial of the plan ships in `fmt`: the compressed student, or the float student as fp32."""
    if c.compressed:
        return ExportJob(f"model.compressed{SUFFIX[fmt]}", fmt, c.precision, "compressed", "compressed",
                         compressed_description(c))
    return ExportJob(f"model.fp32{SUFFIX[fmt]}", fmt, "fp32", "none", "float", QUANTIZATION[(fmt, "none")])


def export_jobs(c: Candidate, formats: tuple[str, ...], precisions: dict[str, list[str]]) -> list[ExportJob]:
    """Per format: the float student's exports that fit by estimate (`precisions`,
    toolkit.planning.estimate.float_precisions), then the plan's compressed student."""
    jobs = []
    for fmt in formats:
        for p in precisions[fmt]:
            method = "int8" if p == "int8" else "none"
            jobs.append(ExportJob(f"model.{p}{SUFFIX[fmt]}", fmt, p, method, "float", QUANTIZATION[(fmt, method)]))
        if c.compressed:
            jobs.append(plan_job(c, fmt))
    return jobs


def serving_graph(model, shipping: Shipping, compressed: bool, split_table: bool = False):
    """The graph an app calls (export/serving.py's contract) around `model`."""
    if compressed and shipping.two_stage is not None:
        from export.two_stage import TwoStageServing

        return TwoStageServing(model, shipping.candidates, *shipping.two_stage, allow_repeats=shipping.allow_repeats)
    from export.serving import ServingModel

    return ServingModel(model, shipping.candidates, split_table=split_table, allow_repeats=shipping.allow_repeats)


def export_job(job: ExportJob, model, shipping: Shipping, path: Path, max_history: int, calibration=None) -> Path:
    """Write one artifact: `model` behind its serving graph, in the job's format (int8 jobs quantized
    at export, with `calibration` histories for the .pte)."""
    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx

    int8 = job.method == "int8"
    serving = serving_graph(model, shipping, job.source == "compressed", split_table=int8)
    with quiet_exporters():
        if job.format == "executorch":
            export_executorch(serving, path, max_history, calibration if int8 else None)
        else:
            export_onnx(serving, path, max_history, int8=int8)
    return path


def calibration_histories(split, max_history: int):
    import torch

    return torch.from_numpy(pad_histories(split.train[:CALIBRATION_HISTORIES], max_history))


def write_references(out: Path, models: dict[str, object], shipping: Shipping, split, max_history: int) -> None:
    """reference.npz: each source model's PyTorch serving outputs on real test histories (every
    artifact's parity is against its own source)."""
    from toolkit.profiler.parity import write_reference

    history = pad_histories(split.history("test")[:PARITY_HISTORIES], max_history)
    write_reference(out / REFERENCE_FILE, history,
                    {source: reference_outputs(serving_graph(m, shipping, source == "compressed").eval(), history)
                     for source, m in models.items()})


def reference_outputs(serving, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch serving graph's (scores, items) for each padded history (R, L)."""
    import torch

    with torch.no_grad():
        rows = [serving(torch.from_numpy(h[None])) for h in history]
    return np.concatenate([r[0].numpy() for r in rows]), np.concatenate([r[1].numpy() for r in rows])


def check_artifacts(out: Path, jobs: list[ExportJob], models: dict[str, object], shipping: Shipping, split,
                    threads: int, k: int, float_metrics: Metrics, analytic: dict[str, float], log=print
                    ) -> list[ArtifactRecord]:
    """Every written job checked in its runtime: parity against its source's reference outputs and
    quality on test through the artifact."""
    artifacts = []
    for job in jobs:
        int8 = job.method == "int8"
        serving = serving_graph(models[job.source], shipping, job.source == "compressed", split_table=int8)
        # an int8 table's scores get activations quantized at run time too (ServingModel.int8_scores)
        quantized_at_export = int8 or getattr(serving, "int8_scores", False)
        parity_min = PARITY_MIN_AGREEMENT["quantized at export" if quantized_at_export else "same weights"]
        artifact = check_artifact(out / job.name, job, split, threads, k, float_metrics, parity_min)
        artifact.analytic_ms = analytic.get(f"{job.format}/{job.source}")
        log(f"  {job.name}: {format_bytes(artifact.bytes)}, test {artifact.metrics.text()} through {job.format}, "
            f"top-10 agreement {artifact.parity['top10_agreement']:.3f} with the {job.source} model")
        artifacts.append(artifact)
    return artifacts


def check_artifact(path: Path, job: ExportJob, split, threads: int, k: int, float_metrics: Metrics,
                   parity_min: float) -> ArtifactRecord:
    """Parity against the stored outputs of its source model and quality through the artifact's runtime."""
    from export.runtime import Predictor
    from toolkit.profiler.parity import load_reference, measure_parity
    from toolkit.training.evaluate import evaluate_topk

    predictor = Predictor(path, threads=threads)
    parity = measure_parity(predictor.predict, load_reference(path.parent / REFERENCE_FILE, job.source))
    metrics = evaluate_topk(predictor.predict, split, "test", predictor.max_history, k)
    data = path.read_bytes()
    return ArtifactRecord(format=job.format, precision=job.precision, path=path.name, bytes=len(data),
                          sha256=hashlib.sha256(data).hexdigest(), quantization=job.quantization,
                          source=job.source, metrics=metrics, float_metrics=float_metrics, parity=parity,
                          parity_min=parity_min)


@dataclass
class ExportedFile:
    """One file `toolkit.export` wrote."""

    path: Path
    format: str  # executorch | onnx
    precision: str  # fp32 | int8 (quantized at export) | compressed (the model's own integer weights)
    bytes: int
    sha256: str


def export_model(model, profile, out: Path, data=None, int8: bool = False, name: str = "model",
                 candidates: int | None = None) -> list[ExportedFile]:
    """`model` behind the serving graph in each format `profile` serves (the public `toolkit.export`):
    `candidates` answers (default the profile's top_k), seen items masked unless `data` allows repeats;
    with `data`, its item ids as items.json beside the files."""
    import json

    from toolkit.core.contract import ITEMS_FILE

    out.mkdir(parents=True, exist_ok=True)
    max_history = profile.serving.max_history
    compressed = _has_integer_weights(model)
    allow = bool(data is not None and data.split.allow_repeats)
    shipping = Shipping(candidates or profile.serving.top_k, allow)
    precision = "int8" if int8 else "compressed" if compressed else "fp32"
    calibration = calibration_histories(data.split, max_history) if int8 and data is not None else None
    files = []
    for fmt in profile.serving.formats:
        method = "int8" if int8 else "none"
        job = ExportJob(f"{name}{SUFFIX[fmt]}", fmt, precision, method, "compressed" if compressed else "float",
                        QUANTIZATION[(fmt, method)])
        path = export_job(job, model, shipping, out / job.name, max_history, calibration)
        blob = path.read_bytes()
        files.append(ExportedFile(path, fmt, precision, len(blob), hashlib.sha256(blob).hexdigest()))
    if data is not None:
        (out / ITEMS_FILE).write_text(json.dumps(data.item_ids, ensure_ascii=False))
    return files


def _has_integer_weights(model) -> bool:
    """Whether toolkit.compression left integer weights or codes in the model (its buffers)."""
    import torch

    return any(not b.dtype.is_floating_point and b.dtype != torch.bool for b in model.buffers())
