"""A million-item catalogue trained, exported and served, through the build's own functions.

Called by bench/scale.py (`serve_large_catalog`). A synthetic log (bench/synthetic.py) at 10^6
items in which every item occurs (`every_item`: with its Zipf tail alone, 5M interactions reach
only 743,604 of the 10^6 ids, and the model's catalogue is what the log holds); a dim-32 student trained from labels with the sampled softmax; the plan's large-catalogue
candidate (`toolkit.distill` then `toolkit.compress`: a product-quantized item table + int8 linears,
fine-tuned); the two-stage index (`toolkit.recipe.serving.cluster_index_`, `choose_two_stage`: faiss
k-means, capacity-balanced clusters, the smallest probe with recall@10 >= 0.95 on validation);
then the same student exported exhaustive and two-stage in both formats (`toolkit.recipe.artifacts.export_job`, `check_artifacts`) and
profiled in its runtime on one thread (`toolkit.profiler.run.profile_artifact`: a `.pte` in the native
C++ client), judged against the `mobile-arm-catalog` profile (20 MB).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

PROFILE = "mobile-arm-catalog"
EVAL_USERS = 2_000  # test users evaluated through each artifact (one request each)
RECALL_HISTORIES = 500  # test histories on which two-stage and exhaustive artifacts are compared


def serve_large_catalog(items: int, interactions: int, work: Path, log, epochs: int = 8) -> dict:
    """A scale.json catalogue entry for a trained, exported and served `items`-item student."""
    from synthetic import SyntheticConfig, write

    import toolkit
    from toolkit.data import read_interactions, split_leave_one_out
    from toolkit.planning.estimate import analytic_latency
    from toolkit.profiler.host import memory_status
    from toolkit.recipe.artifacts import Shipping, check_artifacts, plan_job, write_references, export_job
    from toolkit.recipe.records import Data
    from toolkit.recipe.serving import choose_two_stage, cluster_index_, serving_record
    from toolkit.training.evaluate import cutoff_for, evaluate_model, evaluate_popularity, pad_histories

    profile = toolkit.load_profile(PROFILE)
    k = cutoff_for(profile.serving.top_k)
    start = time.perf_counter()
    data = write(SyntheticConfig(items=items, interactions=interactions, every_item=True),
                 work / f"log-{items}.parquet")
    dataset = read_interactions(data)
    split = split_leave_one_out(dataset).evaluated_on(EVAL_USERS)
    log(f"{items:,} items: {len(dataset.user_ids):,} users, {dataset.num_interactions:,} interactions")
    candidate = toolkit.Candidate(32, pq_subspaces=8, linear_bits=8, two_stage=True)
    student_cfg = toolkit.StudentConfig(train=toolkit.TrainConfig(epochs=epochs, patience=2))
    t0 = time.perf_counter()
    d = Data(dataset=dataset, split=split, key=dataset.key(), item_ids=list(dataset.item_ids))
    float_student = toolkit.distill(None, candidate, d, student_cfg, max_history=profile.serving.max_history)
    model = toolkit.compress(float_student.model, None, d, candidate, student=student_cfg, log=log).model
    train_seconds = time.perf_counter() - t0
    popularity = evaluate_popularity(split, "test", k)
    index, d = cluster_index_(model, float_student.model, d, log)
    split, item_ids = d.split, d.item_ids
    serving = serving_record(float_student.model, split.sealed(), profile, k)
    serving.two_stage = choose_two_stage(model, index, split.sealed(), serving.candidates, log)
    student_test = evaluate_model(model, split, "test", k)
    log(f"student (PQ, exhaustive, PyTorch): test {student_test.text()}")
    compressed_jobs = [plan_job(candidate, fmt) for fmt in profile.serving.formats]
    entry = {"items": items, "catalogue_items": dataset.num_items - 1, "every_item": True,
             "interactions": dataset.num_interactions, "build_seconds": None,
             "train_seconds": train_seconds, "peak_rss_bytes": None, "ndcg10": None,
             "popularity_ndcg10": popularity.ndcg, "full_softmax_ndcg10": None,
             "student_pytorch_ndcg10": student_test.ndcg, "artifacts": [], "two_stage": None,
             "notes": ("trained, exported and served (not a whole build: a teacher ensemble at 10^6 items does not "
                       "fit this benchmark's time); the artifacts are the plan's large-catalogue candidate "
                       f"{candidate.name()}, judged against {PROFILE}; NDCG@10 on {EVAL_USERS:,} test users")}
    analytic = analytic_latency(candidate, profile, split.num_items, profile.serving.formats)
    results = {}
    for kind, two_stage in (("exhaustive", None), ("two-stage", (index, serving.two_stage["probe"]))):
        folder = work / f"serve-{items}-{kind}"
        folder.mkdir(parents=True)
        (folder / "items.json").write_text(__import__("json").dumps(item_ids))
        shipping = Shipping(serving.candidates, split.allow_repeats, two_stage)
        for job in compressed_jobs:
            export_job(job, model, shipping, folder / job.name, profile.serving.max_history)
        write_references(folder, {"compressed": model}, shipping, split, profile.serving.max_history)
        artifacts = check_artifacts(folder, compressed_jobs, {"compressed": model}, shipping, split,
                                    profile.hardware.threads, k, student_test, analytic, log)
        results[kind] = {a.format: (folder / a.path, a) for a in artifacts}
    for kind, by_format in results.items():
        for fmt, (path, a) in by_format.items():
            timing = profile_one_thread(path, a, profile, popularity.ndcg, log)
            entry["artifacts"].append({"format": fmt, "serving": kind, "bytes": a.bytes, "ndcg10": a.metrics.ndcg,
                                       **timing})
    entry["ndcg10"] = max(a["ndcg10"] for a in entry["artifacts"] if a["serving"] == "two-stage")
    recall = artifact_recall(results, pad_histories(split.history("test")[:RECALL_HISTORIES], 50))
    two = serving.two_stage
    entry["two_stage"] = {"recall10": recall, "recall10_validation_pytorch": two["recall"],
                          "items_scored_fraction": two["scored_fraction"], "probe": two["probe"],
                          "clusters": two["clusters"], "capacity": two["capacity"],
                          "p50_ms": {a["format"]: a["p50_ms"] for a in entry["artifacts"] if a["serving"] == "two-stage"}}
    entry["peak_rss_bytes"] = memory_status().peak_bytes  # this process: training, export and checks
    entry["seconds"] = time.perf_counter() - start
    return entry


def profile_one_thread(path: Path, a, profile, popularity_ndcg: float, log) -> dict:
    """The profiler's one-thread figures for an artifact (a .pte in the native client)."""
    from dataclasses import replace

    from toolkit.profiler.calibrate import CalibrationCache
    from toolkit.recipe.profiling import native_client
    from toolkit.profiler.records import ProfileRequest, Quality
    from toolkit.profiler.run import profile_artifact

    one = replace(profile, hardware=replace(profile.hardware, threads=1))
    quality = Quality(k=a.metrics.k, ndcg=a.metrics.ndcg, hr=a.metrics.hr, float_ndcg=a.float_metrics.ndcg,
                      popularity_ndcg=popularity_ndcg)
    known = ProfileRequest(precision=a.precision, source=a.source, parity_min=a.parity_min, quality=quality,
                           reference=path.parent / "reference.npz")  # its own build's (profile_artifact never guesses)
    native = native_client(log) if a.format == "executorch" else None
    r = profile_artifact(path, one, CalibrationCache(), known=known, native=native)
    t = r.latency.timings.get("native/1") or r.latency.timings["1"]
    log(f"  {path.name} ({path.parent.name}): {a.bytes:,} B, p50 {t.p50_ms:.2f} ms, p95 {t.p95_ms:.2f} ms on one thread, "
        f"memory {r.memory.verdict_bytes / 1e6 if r.memory.verdict_bytes else float('nan'):.1f} MB ({r.memory.basis})")
    return {"p50_ms": t.p50_ms, "p95_ms": t.p95_ms, "quiet_p50_ms": t.quiet_p50_ms,
            "memory_bytes": r.memory.verdict_bytes, "memory_basis": r.memory.basis,
            "fits": r.fits, "failed": [c.budget for c in r.checks if not c.passed]}


def artifact_recall(results: dict, histories: np.ndarray) -> float:
    """Top-10 overlap of the two-stage artifacts with the exhaustive ones (same format, same model),
    through the runtimes, on real test histories: recall@10 against exhaustive scoring."""
    from export.runtime import Predictor

    overlaps = []
    for fmt, (path, _) in results["two-stage"].items():
        two, full = Predictor(path), Predictor(results["exhaustive"][fmt][0])
        for h in histories:
            a = set(two.predict(h[None])[1][0, :10].tolist())
            b = set(full.predict(h[None])[1][0, :10].tolist())
            overlaps.append(len(a & b) / 10)
    return float(np.mean(overlaps))
