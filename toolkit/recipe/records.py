"""The typed records the recipe's stages hand each other (and `toolkit.build` returns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolkit.recipe.manifest import Manifest
from toolkit.data import Dataset, DataSummary, Split


@dataclass
class Data:
    """The build's data: the dataset, its leave-one-out split (test targets readable: seal it with
    `split.sealed()` wherever a choice is made), the key caches are found by, and its summary."""

    dataset: Dataset
    split: Split
    key: dict
    item_ids: list[str]  # items.json's order: the dataset's, or relabelled (two-stage: clusters contiguous)
    summary: DataSummary | None = None

    @property
    def sealed(self) -> Split:
        return self.split.sealed()


@dataclass
class Shipped:
    """What the student stage ships, whichever student it is (planned or your own): the float
    student with its metrics, the checked artifacts, how they serve, the manifest's `plan`, items.json."""

    student: object  # toolkit.training.trained.TrainedModel
    artifacts: list  # toolkit manifest ArtifactRecord
    serving: object  # ServingRecord
    plan: dict
    item_ids: list[str]


@dataclass
class ExportJob:
    """One artifact to write: which model, which format, how its weights are stored."""

    name: str  # file name, e.g. model.int8.pte
    format: str  # executorch | onnx
    precision: str
    method: str  # none | int8 (quantized at export) | compressed (weights already integer in the model)
    source: str  # float | compressed: the model it is exported from
    quantization: str  # how its weights became integers ("none" for float weights)


@dataclass
class Build:
    """A finished build: where it is, its manifest, and how long it took."""

    out: Path
    manifest: Manifest
    seconds: float

    @property
    def fits(self) -> bool:
        return (not self.manifest.plan.get("unfit_formats")
                and all(a.profile is not None and a.profile.fits for a in self.manifest.artifacts))

    def failures(self) -> str:
        unfit = [f"{fmt}: {why}" for fmt, why in self.manifest.plan.get("unfit_formats", {}).items()]
        return "; ".join(unfit + [f for a in self.manifest.artifacts if a.profile is not None
                                  for f in a.profile.failures()])
