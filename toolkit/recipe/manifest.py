"""The build's manifest: typed records that each stage returns, written once as manifest.json.

manifest.json is part of the artifact contract (shared/DESIGN.md): an app reads it, never file
names. Every metric carries its cutoff: {"k": 10, "hr": ..., "ndcg": ..., "users": ..., "undetermined": ...}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from toolkit.core.profiles import DeviceProfile
from toolkit.data.summary import DataSummary
from toolkit.profiler.recommend import Recommendation
from toolkit.profiler.records import ArtifactProfile
from toolkit.training.evaluate import Metrics
from toolkit.training.trained import ModelRecord  # noqa: F401  (part of the manifest's records)

PROTOCOL = ("leave-one-out by time; full ranking over all items, the user's whole history excluded; ties count "
            "against the model; test metrics unless named valid")
PROTOCOL_REPEATS = ("leave-one-out by time; full ranking over all items, the user's history included (repeats "
                    "allowed: a seen item is an answer and a hit); ties count against the model; test metrics "
                    "unless named valid")


def metrics_dict(metrics: dict[str, Metrics]) -> dict:
    return {phase: m.to_dict() for phase, m in metrics.items()}


@dataclass
class ServingRecord:
    """What the artifacts answer: `top_k` for the app, `candidates` returned so the app's own filtering
    of older history items still leaves `top_k` (sized on validation histories)."""

    max_history: int
    top_k: int
    candidates: int
    k: int  # the cutoff every metric is measured at
    how: str
    two_stage: dict | None = None  # the compressed artifacts score clusters first: index shape, probe, recall
    # "drop": the app drops every item the user has seen; "allow": seen items are answers, the app keeps them
    repeats: str = "drop"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ArtifactRecord:
    format: str  # "executorch" | "onnx"
    precision: str  # "fp32" | "int8" | "int4-table+int8" ...
    path: str  # relative to the build directory
    bytes: int
    sha256: str
    quantization: str  # how the weights became integers ("none" for fp32)
    source: str  # the model it was exported from: "float" (the distilled student) | "compressed" (the plan's)
    metrics: Metrics  # test, through the artifact's runtime, after the app's filtering
    float_metrics: Metrics  # test, the float student in PyTorch: the quality check's reference
    parity: dict  # top-10 agreement and max score error against the model it was exported from
    parity_min: float
    analytic_ms: float | None = None  # the plan's analytic latency estimate on the device
    profile: ArtifactProfile | None = None
    # where the artifact was run on another CPU (`python -m toolkit verify` adds entries: arch, cpu,
    # features, emulator, agreement); empty until verified
    verified: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {"format": self.format, "precision": self.precision, "path": self.path, "bytes": self.bytes,
             "sha256": self.sha256, "quantization": self.quantization, "source": self.source,
             "metrics": self.metrics.to_dict(), "float_metrics": self.float_metrics.to_dict(),
             "parity": self.parity, "parity_min": self.parity_min, "analytic_ms": self.analytic_ms,
             "verified": self.verified}
        if self.profile is not None:
            d["profile"], d["verdict"] = self.profile.figures(), self.profile.verdict()
            d["recommended_threads"] = self.profile.latency.threads
        return d


@dataclass
class Manifest:
    toolkit_version: str
    profile: DeviceProfile
    dataset: dict
    seed: int
    serving: ServingRecord
    popularity: dict[str, Metrics]
    teacher: ModelRecord
    student: ModelRecord
    plan: dict
    artifacts: list[ArtifactRecord]
    build_seconds: float
    steps_seconds: dict[str, float] = field(default_factory=dict)
    data: DataSummary | None = None  # what was read and kept: duplicates, repeats, unreachable test targets
    # format -> the artifact to ship (`recommend`), set once the artifacts are profiled
    recommended: dict[str, Recommendation] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what the build found worth a warning (log and report)

    def to_dict(self) -> dict:
        return {
            "toolkit_version": self.toolkit_version,
            "profile": self.profile.to_dict(),
            "dataset": self.dataset,
            "data": self.data.to_dict() if self.data is not None else None,
            "seed": self.seed,
            "protocol": PROTOCOL_REPEATS if self.serving.repeats == "allow" else PROTOCOL,
            "serving": self.serving.to_dict(),
            "popularity": metrics_dict(self.popularity),
            "teacher": self.teacher.to_dict(),
            "student": self.student.to_dict(),
            "plan": self.plan,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "recommended": {fmt: r.to_dict() for fmt, r in self.recommended.items()},
            "warnings": self.warnings,
            "build_seconds": self.build_seconds,
            "steps_seconds": self.steps_seconds,
        }
