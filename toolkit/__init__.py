"""Edge recommender toolkit: distil a large recommender into a small one that fits a device.

The public Python API is `__all__` (the functions live in toolkit/api.py; see the README's "Python
API"): `prepare`, `build`, `load_profile`, `list_profiles`, `load_dataset`, `train_teacher`, `measure_priors`,
`plan`, `distill`, `compress`, `export`, `profile_artifact`, and the typed configs and results they take
and return. Names are imported on first use, so `import toolkit` and `python -m toolkit --help` stay
fast (torch, executorch and onnxruntime load only inside the functions that need them).
"""

from toolkit.core.errors import DoesNotFitError, ToolkitError

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first use: PEP 562)
_LAZY = {
    **dict.fromkeys(("prepare", "build", "list_profiles", "load_profile", "load_dataset", "train_teacher",
                     "measure_priors", "plan", "distill", "compress", "export", "profile_artifact", "train_plan",
                     "train_trial", "ship"), "toolkit.api"),
    "BuildConfig": "toolkit.recipe.config", "StudentConfig": "toolkit.recipe.config",
    "Build": "toolkit.recipe.records", "Data": "toolkit.recipe.records", "TrainedModel": "toolkit.training.trained",
    "ExportedFile": "toolkit.recipe.artifacts",
    "DeviceProfile": "toolkit.core.profiles",
    "TeacherConfig": "toolkit.teachers.ensemble",
    "TrainConfig": "toolkit.training.loop", "DistillConfig": "toolkit.training.distill",
    "PriorConfig": "toolkit.training.priors",
    "Candidate": "toolkit.planning.candidates", "PlanConfig": "toolkit.planning.candidates",
    "Plan": "toolkit.planning.search",
    "CompressConfig": "toolkit.compression",
    "ArtifactProfile": "toolkit.profiler.records",
}

__all__ = ["DoesNotFitError", "ToolkitError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
