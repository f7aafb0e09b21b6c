"""What runs in the profiler's fresh process (`measure`, through `toolkit.profiler.fresh.run_fresh`):
load the artifact in its runtime, read its memory, check parity against the reference outputs, time
it at each thread setting and, given `--data`, measure its quality on the data's test targets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.contract import ITEMS_FILE
from toolkit.core.errors import ToolkitError
from toolkit.profiler.build_files import read_reference
from toolkit.profiler.measure import TimingConfig
from toolkit.profiler.ops import inspect_ops
from toolkit.profiler.records import NO_PARITY, Quality, QualityData

if TYPE_CHECKING:  # numpy and the data readers stay out of `import toolkit.profiler.worker`
    from toolkit.data import Split

WARMUP_AFTER_LOAD = 10  # untimed calls after a (re)load, before a block is timed

SYNTHETIC_HISTORIES = 200  # timing inputs when neither reference histories nor data are given


def measure(request: dict) -> dict:
    """Load, check and time one artifact in this (fresh) process; see the module docstring."""
    import numpy  # noqa: F401  (every client has its arrays; the baseline holds them)

    from toolkit.profiler.host import LoadMonitor, memory_status, reset_peak
    from toolkit.profiler.measure import Contender, time_calls

    path = Path(request["path"])
    before_runtime = memory_status()
    _import_runtime(request["format"])
    from export.runtime import Predictor
    from toolkit.profiler.parity import measure_parity

    reference = read_reference(Path(request["reference"]), request["source"]) if request["reference"] else None
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
    ops = inspect_ops(Path(request["path"]), request["format"])
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
