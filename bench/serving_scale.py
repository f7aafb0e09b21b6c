"""Serving at 10^6 items: product-quantized tables and two-stage top-K, measured in both runtimes.

    python bench/serving_scale.py                      # 1,000,000 items (about 25 min on 2 shared cores)
    python bench/serving_scale.py --items 50000 --out /tmp/s.json   # a smoke run (never committed)
    python bench/serving_scale.py --render             # re-judge the goals in the results, print the table

Writes bench/serving_scale.json (atomically) and prints a table. What it measures, in one run:

- a synthetic dim-32 SASRec (one block, random weights) whose item table is a mixture of Gaussians
  (`components` topics, each item a noisy copy of its topic's direction, norms log-normal: a
  popularity-like scale), so item vectors are clustered the way trained ones are and recall means
  something; users' histories are drawn from one to three topics;
- variants, each exported to ONNX Runtime and ExecuTorch (XNNPACK) and measured in a fresh process
  on ONE thread (toolkit.profiler.measure.time_calls, the project's timing loop; `quiet` = the least
  disturbed blocks, as the profiler judges): file bytes, p50/p95, peak RSS of load + serve, the ops
  outside XNNPACK (.pte), top-10 agreement with the PyTorch graph it was exported from:
    int4 exhaustive     QuantizedItemTable (int4 rows, fp16 scales), every item scored
    pq exhaustive       PQItemTable (8 uint8 codes an item), every item scored through the LUTs
    pq two-stage        IndexConfig's default balanced clusters (C = sqrt(N) when serving_scale.json
                        was measured, 4·sqrt(N) since), `probe` chosen on validation histories
    int4 two-stage      the same over the int4 table
    int4 exhaustive / two-stage, float unpack   a PROPOSAL, not in the toolkit: the int4 unpacking
                        done on floats (ExecuTorch delegates it to XNNPACK; see FloatUnpackInt4Table)
- for the two-stage variants: items scored per request (C + probe·S) as a fraction of N, recall@10
  against exhaustive scoring of the same model on held-out histories, in PyTorch and through each
  artifact (the probe is chosen on separate validation histories for recall VALID_TARGET);
- the goals: an artifact <= 20 MB; top-10 p50 <= 20 ms on one core in ONNX Runtime and ExecuTorch;
  two-stage scores >= 10x fewer items at recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_BYTES = 20_000_000
GOAL_P50_MS = 20.0
GOAL_FEWER = 10.0  # two-stage scores at least 10x fewer items...
GOAL_RECALL = 0.95  # ...at recall@10 >= 0.95 against exhaustive scoring
# the probe is chosen on validation histories for a little more than the goal, so it still holds on
# held-out ones: at exactly 0.95 on 300 validation users, the int4 table's probe gave 0.942 on test
VALID_TARGET = 0.96
MEASURE_TIMEOUT_S = 900


@dataclass
class ScaleConfig:
    items: int = 1_000_000  # real items (the table has items + 1 rows: row 0 is padding)
    dim: int = 32
    max_history: int = 50
    top_k: int = 10
    items_per_topic: int = 500  # mixture components = items / items_per_topic
    topic_noise: float = 0.5  # an item = its topic's unit direction + noise of this norm
    norm_spread: float = 0.25  # log-normal sigma of the item norms
    subspaces: int = 8  # PQ: bytes an item
    valid_users: int = 300  # histories the probe is chosen on
    test_users: int = 500  # held-out histories recall and parity are measured on
    seed: int = 0


# --- the synthetic model and its users -------------------------------------------------------

def synthetic_model(cfg: ScaleConfig):
    """A random one-block SASRec whose item table is a mixture of Gaussians; and each item's topic."""
    import torch

    from toolkit.models.sasrec import ModelConfig, SASRec

    rng = np.random.default_rng(cfg.seed)
    n, d = cfg.items + 1, cfg.dim
    topics = max(1, cfg.items // cfg.items_per_topic)
    directions = rng.normal(size=(topics, d)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    topic = rng.integers(0, topics, n)
    noise = rng.normal(size=(n, d)).astype(np.float32) * (cfg.topic_noise / np.sqrt(d))
    table = (directions[topic] + noise) * np.exp(cfg.norm_spread * rng.normal(size=(n, 1))).astype(np.float32)
    table[0] = 0.0
    torch.manual_seed(cfg.seed)
    model = SASRec(ModelConfig(num_items=n, dim=d, layers=1, heads=2, max_history=cfg.max_history, dropout=0.0))
    with torch.no_grad():
        model.items.embedding.weight.copy_(torch.from_numpy(table))
    topic[0] = -1
    return model.eval(), topic


def synthetic_histories(topic: np.ndarray, users: int, max_history: int, seed: int) -> np.ndarray:
    """(users, L) left-padded histories: each user follows 1-3 topics, 5..L distinct-ish items."""
    rng = np.random.default_rng(seed)
    order = np.argsort(topic, kind="stable")[1:]  # item indices grouped by topic (padding dropped)
    counts = np.bincount(topic[1:])
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.zeros((users, max_history), dtype=np.int64)
    for u in range(users):
        interests = rng.integers(0, len(counts), rng.integers(1, 4))
        length = int(rng.integers(5, max_history + 1))
        picks = rng.choice(interests, length)
        out[u, max_history - length:] = order[firsts[picks] + (rng.random(length) * counts[picks]).astype(np.int64)]
    return out


# --- measuring one artifact in a fresh process -----------------------------------------------

def measure_artifact(request: dict) -> dict:
    """Fresh-process worker: load one artifact on one thread, read its answers, time it, read its RSS."""
    from toolkit.profiler.host import LoadMonitor, memory_status, reset_peak
    from toolkit.profiler.measure import TimingConfig, time_calls

    before = memory_status()
    if request["format"] == "executorch":
        import executorch.kernels.quantized  # noqa: F401
        import torch

        torch.set_num_threads(1)
        from executorch.runtime import Runtime  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
    from export.runtime import Predictor

    after_runtime = memory_status()
    peak_reset = reset_peak()
    t0 = time.perf_counter()
    predictor = Predictor(Path(request["path"]), threads=1)
    load_s = time.perf_counter() - t0
    histories = np.load(request["histories"])
    items = np.stack([predictor.predict(h[None])[1][0] for h in histories])  # (B, K), also the warm-up
    peak = memory_status()
    with LoadMonitor() as monitor:
        timing = time_calls({"one thread": lambda h: predictor.predict(h[None])}, histories,
                            TimingConfig(**request["timing"]))["one thread"]
    return {"items": items.tolist(), "load_seconds": load_s, "timing": timing.to_dict(),
            "host_load": monitor.load.to_dict(), "peak_reset": peak_reset,
            "model_rss_bytes": max(peak.peak_bytes - after_runtime.rss_bytes, 0) if peak_reset else None,
            "runtime_rss_bytes": after_runtime.rss_bytes - before.rss_bytes}


def overlap(got: np.ndarray, reference: np.ndarray) -> float:
    from export.two_stage import overlap_at_k

    return overlap_at_k(np.asarray(got), np.asarray(reference))


# --- the run ---------------------------------------------------------------------------------

def build_variants(cfg: ScaleConfig, model, valid: np.ndarray, log) -> list[dict]:
    """Every variant's serving module, its exhaustive reference module and its index (if any)."""
    from export.serving import ServingModel
    from export.cluster_index import IndexConfig, build_index, permute_items_
    from export.two_stage import TwoStageServing, choose_probe
    from toolkit.compression import PQConfig, QuantConfig, pq_quantize_, quantize_

    t = time.perf_counter()
    int4 = quantize_(copy.deepcopy(model), QuantConfig(table_bits=4, linear_bits=32))
    log(f"int4 table: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    pq = pq_quantize_(copy.deepcopy(model), PQConfig(cfg.subspaces))
    log(f"pq table (faiss k-means, {cfg.subspaces} codebooks): {time.perf_counter() - t:.1f} s")
    variants = []
    for name, table_model in (("int4", int4), ("pq", pq)):
        variants.append({"name": f"{name} exhaustive", "table": name, "serving": ServingModel(table_model, cfg.top_k),
                         "reference": None, "index": None, "relabel": None})
    for name, table_model in (("pq", pq), ("int4", int4)):
        t = time.perf_counter()
        index = build_index(table_model.items.weight().detach(), IndexConfig())
        relabelled = permute_items_(copy.deepcopy(table_model), index.order)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        choice = choose_probe(relabelled, index, index.relabel(valid), candidates=cfg.top_k, target=VALID_TARGET)
        log(f"{name} index: C={index.clusters}, S={index.capacity}, sizes {index.sizes.min()}..{index.sizes.max()} "
            f"({build_s:.1f} s); probe {choice.probe} -> valid recall@10 {choice.recall:.3f}, "
            f"{choice.scored_fraction:.2%} of the items scored ({time.perf_counter() - t:.0f} s)")
        variants.append({"name": f"{name} two-stage", "table": name,
                         "serving": TwoStageServing(relabelled, cfg.top_k, index, choice.probe),
                         "reference": ServingModel(relabelled, cfg.top_k), "index": index, "relabel": index.relabel,
                         "choice": choice, "index_seconds": build_s})
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=ScaleConfig.items, help="real items in the catalogue")
    parser.add_argument("--out", default=str(ROOT / "bench" / "serving_scale.json"), help="the results file")
    parser.add_argument("--render", action="store_true", help="only re-judge the goals in --out and print the table")
    args = parser.parse_args(argv)
    if args.render:
        from toolkit.core.cache import write_json_atomic

        results = json.loads(Path(args.out).read_text())
        derive(results)
        write_json_atomic(Path(args.out), results)
        print(render_table(results))
        return 0
    cfg = ScaleConfig(items=args.items)

    import torch

    from bench.run import machine_info
    from export import quiet_exporters
    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.two_stage import top_items
    from toolkit.core.cache import write_json_atomic
    from toolkit.profiler.fresh import run_fresh
    from toolkit.profiler.measure import TimingConfig
    from toolkit.profiler.ops import inspect_pte

    torch.set_num_threads(1)
    log = print
    started = time.perf_counter()
    results: dict = {"config": asdict(cfg), "machine": machine_info(), "started": time.strftime("%Y-%m-%d %H:%M")}
    model, topic = synthetic_model(cfg)
    valid = synthetic_histories(topic, cfg.valid_users, cfg.max_history, cfg.seed + 1)
    test = synthetic_histories(topic, cfg.test_users, cfg.max_history, cfg.seed + 2)
    log(f"synthetic model: {cfg.items:,} items, dim {cfg.dim}, {max(1, cfg.items // cfg.items_per_topic):,} topics")
    variants = build_variants(cfg, model, valid, log)
    timing = TimingConfig(warmup_calls=5, block_calls=10, min_blocks=20, min_seconds=3.0, max_seconds=20.0)
    work = Path(tempfile.mkdtemp(prefix="serving_scale."))
    rows = []
    for v in variants:
        histories = v["relabel"](test) if v["relabel"] else test
        np.save(work / "histories.npy", histories)
        torch_items = top_items(v["serving"], histories, cfg.top_k)
        row = {"variant": v["name"], "table": v["table"], "items_scored": cfg.items, "scored_fraction": 1.0}
        if v["index"] is not None:
            exhaustive = top_items(v["reference"], histories, cfg.top_k)
            index, choice = v["index"], v["choice"]
            row.update({"clusters": index.clusters, "capacity": index.capacity, "probe": choice.probe,
                        "min_cluster": int(index.sizes.min()), "max_cluster": int(index.sizes.max()),
                        "items_scored": index.items_scored(choice.probe),
                        "scored_fraction": index.scored_fraction(choice.probe),
                        "fewer_items": 1.0 / index.scored_fraction(choice.probe),
                        "recall_at_10_valid": choice.recall, "recall_at_10_test": overlap(torch_items, exhaustive),
                        "probes_tried": {str(k): r for k, r in choice.recalls.items()},
                        "index_seconds": v["index_seconds"]})
        row["runtimes"] = {}
        for fmt, suffix in (("onnx", ".onnx"), ("executorch", ".pte")):
            path = work / f"{v['name'].replace(' ', '_').replace(',', '')}{suffix}"
            t = time.perf_counter()
            with quiet_exporters():
                if fmt == "executorch":
                    export_executorch(v["serving"], path, cfg.max_history)
                else:
                    export_onnx(v["serving"], path, cfg.max_history)
            export_s = time.perf_counter() - t
            got = run_fresh("bench.serving_scale:measure_artifact",
                            {"path": str(path), "format": fmt, "histories": str(work / "histories.npy"),
                             "timing": asdict(timing)}, timeout=MEASURE_TIMEOUT_S)
            items = np.asarray(got["items"])[:, :cfg.top_k]
            t_ = got["timing"]
            entry = {"bytes": path.stat().st_size, "export_seconds": export_s, "load_seconds": got["load_seconds"],
                     "p50_ms": t_["p50_ms"], "p95_ms": t_["p95_ms"], "quiet_p50_ms": t_["quiet_p50_ms"],
                     "quiet_p95_ms": t_["quiet_p95_ms"], "calls": t_["calls"], "host_load": got["host_load"],
                     "model_rss_bytes": got["model_rss_bytes"], "agreement_with_pytorch": overlap(items, torch_items)}
            if v["index"] is not None:
                entry["recall_at_10_test"] = overlap(items, exhaustive)
            if fmt == "executorch":
                ops = inspect_pte(path.read_bytes())
                entry["outside_xnnpack"] = ops["outside_xnnpack"]
                entry["xnnpack_nodes"] = ops["xnnpack_nodes"]
            row["runtimes"][fmt] = entry
            path.unlink()
            log(f"  {v['name']:<36} {fmt:<10} {entry['bytes'] / 1e6:6.2f} MB  p50 {entry['p50_ms']:8.2f} ms "
                f"(quiet {entry['quiet_p50_ms']:.2f})  p95 {entry['p95_ms']:8.2f} ms  agree {entry['agreement_with_pytorch']:.3f}")
        rows.append(row)
    results["variants"] = rows
    results["valid_target"] = VALID_TARGET
    derive(results)
    results["seconds"] = time.perf_counter() - started
    write_json_atomic(Path(args.out), results)
    print(render_table(results))
    log(f"wrote {args.out}")
    return 0


def derive(results: dict) -> None:
    """The figures derived from the measurements: the goals (with why a goal was missed) and how
    much slower the int4 tables run in ExecuTorch than in ONNX Runtime."""
    rows = results["variants"]
    results["goals"] = goals(rows, ScaleConfig(**results["config"]))
    results["int4_executorch_over_onnx_p50"] = {
        row["variant"]: row["runtimes"]["executorch"]["quiet_p50_ms"] / row["runtimes"]["onnx"]["quiet_p50_ms"]
        for row in rows if row["table"].startswith("int4")}


def goals(rows: list[dict], cfg: ScaleConfig) -> list[dict]:
    """Each goal, judged per variant; p50 judged on the quiet figure (the profiler's rule), the
    all-calls p50 next to it. A missed goal says why (the mechanism, with this run's figures)."""
    out = []
    for row in rows:
        r = row["runtimes"]
        size = max(e["bytes"] for e in r.values())
        p50 = {fmt: e["quiet_p50_ms"] for fmt, e in r.items()}
        checks = {
            "bytes <= 20 MB": {"measured": size, "met": size <= GOAL_BYTES},
            "p50 <= 20 ms, 1 thread, ONNX Runtime and ExecuTorch": {
                "measured": p50, "measured_all_calls": {fmt: e["p50_ms"] for fmt, e in r.items()},
                "met": all(v <= GOAL_P50_MS for v in p50.values())},
        }
        if "probe" in row:
            checks[">= 10x fewer items at recall@10 >= 0.95"] = {
                "measured": {"fewer_items": row["fewer_items"], "recall_at_10_test": row["recall_at_10_test"]},
                "met": row["fewer_items"] >= GOAL_FEWER and row["recall_at_10_test"] >= GOAL_RECALL}
        for name, check in checks.items():
            if not check["met"]:
                check["why"] = why_missed(name, row, cfg)
        out.append({"variant": row["variant"], "checks": checks, "all_met": all(c["met"] for c in checks.values())})
    return out


def why_missed(check: str, row: dict, cfg: ScaleConfig) -> str:
    """The reason a goal was missed, from the variant's mechanism and this run's figures."""
    r = row["runtimes"]
    if check.startswith("bytes"):
        return "the item table alone is larger than the budget"
    if check.startswith(">="):
        return (f"probe {row['probe']} reached recall@10 {row['recall_at_10_valid']:.3f} on the validation "
                f"histories but {row['recall_at_10_test']:.3f} on the held-out ones")
    slow = ", ".join(f"{fmt} {e['quiet_p50_ms']:.1f} ms" for fmt, e in r.items() if e["quiet_p50_ms"] > GOAL_P50_MS)
    n, d, m = cfg.items, cfg.dim, cfg.subspaces
    if "probe" not in row and row["table"] == "pq":
        return (f"{slow}: every request scores all {n:,} items, {n * m:,} LUT gathers and adds plus a cast of "
                f"as many codes; only two-stage serving removes that")
    if "probe" not in row:
        onnx_rss = r["onnx"]["model_rss_bytes"]
        return (f"{slow}: every request unpacks {n * d:,} int4 values and multiplies them in ExecuTorch (the "
                f"unpacked table is not a constant, so the matmul runs outside XNNPACK); ONNX Runtime folds "
                f"the unpacking into an fp32 table at load, fast but {onnx_rss / 1e6:.0f} MB resident")
    return (f"{slow}: the int4 unpacking of the {row['probe'] * row['capacity']:,} candidate rows (on floats, "
            f"in XNNPACK) and the gathers around it")


def render_table(results: dict) -> str:
    lines = [f"{'variant':<38} {'runtime':<10} {'MB':>6} {'p50 ms':>8} {'p95 ms':>8} {'quiet p50':>9} "
             f"{'RSS MB':>7} {'scored':>7} {'recall@10':>9}"]
    for row in results["variants"]:
        for fmt, e in row["runtimes"].items():
            rss = f"{e['model_rss_bytes'] / 1e6:7.0f}" if e["model_rss_bytes"] is not None else "      ?"
            recall = f"{e['recall_at_10_test']:9.3f}" if "recall_at_10_test" in e else "        -"
            lines.append(f"{row['variant']:<38} {fmt:<10} {e['bytes'] / 1e6:6.2f} {e['p50_ms']:8.2f} {e['p95_ms']:8.2f} "
                         f"{e['quiet_p50_ms']:9.2f} {rss} {row['scored_fraction']:7.2%} {recall}")
    lines.append("")
    for name, ratio in results["int4_executorch_over_onnx_p50"].items():
        lines.append(f"{name:<38} ExecuTorch / ONNX Runtime quiet p50: {ratio:.1f}x")
    lines.append("")
    for g in results["goals"]:
        lines.append(f"{g['variant']:<38} {'all goals met' if g['all_met'] else 'misses:'}")
        lines.extend(f"    {name}: {c['why']}" for name, c in g["checks"].items() if not c["met"])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
