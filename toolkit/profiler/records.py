"""The profiler's records: what a profiling run is asked (`ProfileRequest`, `QualityData`) and what it
finds for one artifact (`ArtifactProfile`: its `Memory`, `Latency`, `Download`, `Quality` and the
judged `Check`s). Plain dataclasses; the judging is toolkit/profiler/judge.py, the measuring
toolkit/profiler/run.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.profiler.host import HostLoad
from toolkit.profiler.measure import Timing


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
