"""Benchmark: the numbers that prove the toolkit works, measured side by side in one run.

    python bench/run.py            # full: MovieLens-100K, 3 seeds (≈ 45 min on 2 cores)
    python bench/run.py --quick    # smoke run on a slice (a few minutes)

Writes bench/results.json and bench/RESULTS.md (quoted by the README) and bench/frontier.png.
What it measures:
- build cost: wall time and peak RSS of `python -m toolkit build --profile mobile-arm`, cold (empty
  cache: the teacher is trained) and warm (teacher cached), each in a fresh process;
- quality, over seeds (mean ± std): popularity, teacher, the student trained from scratch and the
  distilled student (same architecture), and every exported artifact through its runtime;
- size: the teacher's fp32 .pte/.onnx against each student artifact;
- latency: batch 1, one thread, the same real histories, all contenders interleaved round by round,
  ≥ 1,000 timed calls each after warm-up; medians and p95;
- the quality-per-byte frontier: best NDCG@10 through an artifact within 25 KB, 60 KB, 250 KB, 1 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FRONTIER_BYTES = (25_000, 60_000, 250_000, 1_000_000)
LATENCY_ROUNDS = 25
LATENCY_CALLS_PER_ROUND = 50  # 25 × 50 = 1,250 timed calls per contender
LATENCY_WARMUP = 100
PROFILE = "mobile-arm"
COMPRESSED_PROFILES = ("smartwatch", "web-widget")  # binding budgets: a 60 KB and a 25 KB model


def machine_info() -> dict:
    import executorch.version
    import onnxruntime
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "executorch": executorch.version.__version__, "onnxruntime": onnxruntime.__version__,
            "platform": platform.platform()}


def timed_build(args: list[str], cache: Path, out: Path) -> dict:
    """Run the real CLI build in a fresh process; wall time and that process tree's peak RSS."""
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "r = subprocess.run([sys.executable, '-m', 'toolkit', 'build', *sys.argv[1:]])\n"
               "print('BENCH', r.returncode, time.perf_counter() - t,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n")
    env = {**os.environ, "TOOLKIT_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", wrapper, "--profile", PROFILE, "--out", str(out), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("BENCH ")][-1].split()
    code, seconds, rss = int(line[1]), float(line[2]), int(line[3])
    if code not in (0, 1):
        raise RuntimeError(f"build failed with exit {code}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return {"exit_code": code, "seconds": seconds, "peak_rss_bytes": rss, "log": result.stdout}


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def latency(contenders: dict[str, callable], histories: np.ndarray) -> dict[str, dict]:
    """Interleave the contenders round by round on the same inputs; per-call microseconds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        for i in range(LATENCY_WARMUP):
            fn(histories[i % len(histories)][None])
    for r in range(LATENCY_ROUNDS):
        for name, fn in contenders.items():
            for i in range(LATENCY_CALLS_PER_ROUND):
                row = histories[(r * LATENCY_CALLS_PER_ROUND + i) % len(histories)][None]
                t = time.perf_counter_ns()
                fn(row)
                times[name].append((time.perf_counter_ns() - t) / 1000)
    return {name: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "calls": len(v)}
            for name, v in times.items()}


def export_compressed(model, precision: str, profile, split, folder: Path) -> list:
    """A compressed model through every format of the profile, checked in its runtime (parity
    against the compressed model itself)."""
    from toolkit.pipeline import export_artifacts

    return export_artifacts(model, profile, split, folder, lambda *_: None,
                            precisions={fmt: [] for fmt in profile.serving.formats}, compressed=(model, precision))


def run_compressed(name: str, teacher, split, seeds: list[int], quick: bool, work: Path, log) -> dict:
    """The plan's student for profile `name` (seed 0, distilled), then the same candidate trained
    with and without the teacher for every seed, each exported and measured through its runtimes."""
    from toolkit.plan import PlanConfig, plan_student, train_candidate
    from toolkit.profiles import load_profile

    small = load_profile(name)
    plan_cfg = PlanConfig(epochs=3) if quick else PlanConfig()
    log(f"plan for {name} ({small.budget.model_bytes:,} B)…")
    plan = plan_student(teacher, split, small, seed=0, log=log, cfg=plan_cfg)
    c = plan.candidate
    entry = {"profile": name, "budget_bytes": small.budget.model_bytes, "candidate": c.to_dict(),
             "steps": [st.to_dict() for st in plan.steps],
             "plan_candidates_tried": [r.to_dict() for r in plan.candidates if r.tried],
             "runs": {"distilled": [], "scratch": []}}
    for seed in seeds:
        for kind in ("distilled", "scratch"):
            if kind == "distilled" and seed == 0:
                model = plan.model  # the plan's own training run
            else:
                model, _, _, _ = train_candidate(c, teacher if kind == "distilled" else None, split,
                                                 small.serving.max_history, seed, plan_cfg, log)
            folder = work / f"{name}-{kind}-{seed}"
            folder.mkdir()
            artifacts = export_compressed(model, c.precision, small, split, folder)
            entry["runs"][kind].append([{"format": a.format, "bytes": a.bytes, "ndcg10": a.metrics["ndcg10"],
                                         "hr10": a.metrics["hr10"]} for a in artifacts])
            log(f"  {name} {kind} seed {seed}: " + ", ".join(
                f"{a.format} {a.bytes:,} B NDCG@10 {a.metrics['ndcg10']:.4f}" for a in artifacts))
    return entry


def compressed_student_rows(entries: list[dict]) -> list[dict]:
    """One `students` row per profile, kind and format: mean ± std over seeds, bytes mean and max."""
    rows = []
    for entry in entries:
        c = entry["candidate"]
        arch = f"dim {c['dim']}, {c['layers']} block(s), rank {c['embedding_rank'] or 'full'}"
        for kind, per_seed in entry["runs"].items():
            for i, first in enumerate(per_seed[0]):
                same = [run[i] for run in per_seed]
                nd, hr = [x["ndcg10"] for x in same], [x["hr10"] for x in same]
                rows.append({"name": f"student {kind} for {entry['profile']} ({arch}) {first['format']}",
                             "distilled": kind == "distilled", "format": first["format"],
                             "precision": c["precision"], "bytes": int(np.mean([x["bytes"] for x in same])),
                             "max_bytes": max(x["bytes"] for x in same), "ndcg10": mean_std(nd)[0],
                             "ndcg10_std": mean_std(nd)[1], "hr10": mean_std(hr)[0], "hr10_std": mean_std(hr)[1],
                             "seeds": len(same), "profile": entry["profile"]})
    return rows


def frontier(students: list[dict]) -> dict:
    """The best NDCG@10 through an artifact within each size (largest file over seeds counts)."""
    measured = [(s.get("max_bytes", s["bytes"]), s["ndcg10"], s["name"]) for s in students if s["bytes"]]
    best = {}
    for limit in FRONTIER_BYTES:
        fits = [m for m in measured if m[0] <= limit]
        best[str(limit)] = max(f[1] for f in fits) if fits else None
    return {"frontier": best,
            "frontier_artifacts": [{"bytes": b, "ndcg10": n, "name": name} for b, n, name in sorted(measured)]}


def measure_techniques(model, teacher, split, quick: bool, log) -> list[dict]:
    """Each technique of toolkit.compress alone on the same distilled student, then all combined:
    weight bytes and validation NDCG@10 before/after (from the recipe's own step reports) and the
    test NDCG@10 of the result."""
    from toolkit.compress import CompressConfig, LowRankConfig, PruneConfig, QuantConfig, compress, model_bytes
    from toolkit.evaluate import evaluate_model

    tune = {"finetune_epochs": 2 if quick else 15}
    configs = {
        "prune: half the FFN channels": CompressConfig(prune=PruneConfig(keep_ffn=model.cfg.hidden // 2), **tune),
        "prune: cold item rows (< 3 training interactions)": CompressConfig(prune=PruneConfig(min_item_count=3), **tune),
        "low-rank: item table rank dim/2": CompressConfig(low_rank=LowRankConfig(table_rank=model.cfg.dim // 2), **tune),
        "quantize: int8 table + int8 linears": CompressConfig(quant=QuantConfig(table_bits=8, linear_bits=8), **tune),
        "quantize: int4 table + int8 linears": CompressConfig(quant=QuantConfig(table_bits=4, linear_bits=8), **tune),
        "combined: prune FFN -> low-rank table -> int4/int8": CompressConfig(
            prune=PruneConfig(keep_ffn=model.cfg.hidden // 2), low_rank=LowRankConfig(table_rank=model.cfg.dim // 2),
            quant=QuantConfig(table_bits=4, linear_bits=8), **tune),
    }
    before_test = evaluate_model(model, split, "test").ndcg10
    rows = []
    for name, cfg in configs.items():
        log(f"technique: {name}…")
        result = compress(model, teacher, split, cfg, seed=0, log=log)
        rows.append({"technique": name, "config": cfg.to_dict(), "bytes_before": model_bytes(model),
                     "bytes_after": model_bytes(result.model), "valid_ndcg10_before": result.steps[0].ndcg_before,
                     "valid_ndcg10_after": evaluate_model(result.model, split, "valid").ndcg10,
                     "test_ndcg10_before": before_test,
                     "test_ndcg10_after": evaluate_model(result.model, split, "test").ndcg10,
                     "steps": [st.to_dict() for st in result.steps]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a slice of the data")
    parser.add_argument("--out", default=str(ROOT / "bench"), help="where results.json and RESULTS.md go")
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from results.json in --out")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds for the quality comparison (default 3)")
    parser.add_argument("--redo-compressed", metavar="PROFILE", action="append", choices=COMPRESSED_PROFILES,
                        help="only re-run the compressed-student section for PROFILE and merge it into the "
                             "results.json in --out (its latency rows are dropped: they need a whole run)")
    parser.add_argument("--cache", help="with --redo-compressed: the cache dir holding that run's teacher")
    args = parser.parse_args(argv)
    if args.redo_compressed:
        return redo_compressed(args)
    if args.render:  # derived figures (ratios), RESULTS.md and the plot from the measurements in results.json
        results = json.loads((Path(args.out) / "results.json").read_text())
        results["ratios"] = ratios(results)
        (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (Path(args.out) / "RESULTS.md").write_text(render_markdown(results))
        plot_frontier(results, Path(args.out) / "frontier.png")
        return 0

    import torch

    from export.executorch import export_executorch
    from export.onnx import export_onnx
    from export.runtime import Predictor
    from export.serving import ServingModel
    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.evaluate import evaluate_popularity, pad_histories
    from toolkit.pipeline import (first_users, export_artifacts, quiet_exporters,
                                  train_student, train_teacher_for)
    from toolkit.profiles import load_profile

    quick_args = ["--max-users", "200", "--epochs", "3", "--teacher-members", "2", "--teacher-dim", "32"]
    build_args = quick_args if args.quick else []
    seeds = list(range(args.seeds))
    out_dir = Path(args.out)
    work = Path(tempfile.mkdtemp(prefix="bench."))
    cache = work / "cache"
    results: dict = {"mode": "quick" if args.quick else "full", "machine": machine_info(), "profile": PROFILE}
    log = print

    # --- build cost: cold (teacher trained), then warm (teacher cached) -------------------------
    log("build (cold)…")
    cold = timed_build(build_args, cache, work / "cold")
    log(f"  {cold['seconds']:.0f} s, peak RSS {cold['peak_rss_bytes'] / 1e6:.0f} MB")
    log("build (warm)…")
    warm = timed_build(build_args, cache, work / "warm")
    log(f"  {warm['seconds']:.0f} s, peak RSS {warm['peak_rss_bytes'] / 1e6:.0f} MB")
    results["build_seconds"] = {"cold": cold["seconds"], "warm": warm["seconds"]}
    results["peak_rss_bytes"] = max(cold["peak_rss_bytes"], warm["peak_rss_bytes"])
    results["build_peak_rss_bytes"] = {"cold": cold["peak_rss_bytes"], "warm": warm["peak_rss_bytes"]}
    results["build_exit_codes"] = {"cold": cold["exit_code"], "warm": warm["exit_code"]}

    # --- quality over seeds: same teacher (from the cold build's cache), students per seed -------
    os.environ["TOOLKIT_CACHE_DIR"] = str(cache)
    cfg = bench_config(args.quick)
    profile = load_profile(PROFILE)
    dataset = load_dataset()
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    split = split_leave_one_out(dataset)
    max_history, top_k = profile.serving.max_history, profile.serving.top_k
    torch.set_num_threads(os.cpu_count() or 1)
    teacher = train_teacher_for(cfg, split, dataset, max_history, log)
    assert teacher.cached, "the teacher should come from the cold build's cache"
    pop = evaluate_popularity(split, "test")
    results["popularity"] = {"ndcg10": pop.ndcg10, "hr10": pop.hr10, "users": pop.users}

    runs: dict[str, list] = {"distilled": [], "scratch": []}
    for seed in seeds:
        for kind in ("distilled", "scratch"):
            student = train_student(cfg.student, teacher.model if kind == "distilled" else None, split,
                                    max_history, seed, log)
            folder = work / f"{kind}-{seed}"
            folder.mkdir()
            artifacts = export_artifacts(student.model, profile, split, folder, log)
            runs[kind].append({"seed": seed, "student": student, "artifacts": artifacts, "folder": folder})

    # --- compressed students at the frontier sizes: the plan's choice, distilled vs scratch -------
    results["compressed"] = [run_compressed(name, teacher.model, split, seeds, args.quick, work, log)
                             for name in COMPRESSED_PROFILES]

    # --- each compression technique alone (and combined) on the seed-0 distilled default student --
    results["techniques"] = measure_techniques(runs["distilled"][0]["student"].model, teacher.model, split,
                                               quick=args.quick, log=log)

    # --- teacher artifacts (fp32) for size and latency ------------------------------------------
    teacher_serving = ServingModel(teacher.model, top_k)
    with quiet_exporters():
        export_executorch(teacher_serving, work / "teacher.fp32.pte", max_history)
        export_onnx(teacher_serving, work / "teacher.fp32.onnx", max_history)
    results["teacher"] = {
        "ndcg10": teacher.metrics["test"].ndcg10, "hr10": teacher.metrics["test"].hr10,
        "parameters": teacher.parameters, "config": teacher.config,
        "fp32_pte_bytes": (work / "teacher.fp32.pte").stat().st_size,
        "fp32_onnx_bytes": (work / "teacher.fp32.onnx").stat().st_size,
        "seeds": 1,
    }

    students = []
    for kind, rows in runs.items():
        eager = [r["student"].metrics["test"] for r in rows]
        students.append({"name": f"student {kind} (PyTorch eager)", "distilled": kind == "distilled", "format": "pytorch",
                         "precision": "fp32", "bytes": None, "parameters": rows[0]["student"].parameters,
                         "ndcg10": mean_std([m.ndcg10 for m in eager])[0], "ndcg10_std": mean_std([m.ndcg10 for m in eager])[1],
                         "hr10": mean_std([m.hr10 for m in eager])[0], "hr10_std": mean_std([m.hr10 for m in eager])[1],
                         "seeds": len(rows)})
        for i, a in enumerate(rows[0]["artifacts"]):
            same = [r["artifacts"][i] for r in rows]
            nd, hr = [x.metrics["ndcg10"] for x in same], [x.metrics["hr10"] for x in same]
            students.append({"name": f"student {kind} {a.format} {a.precision}", "distilled": kind == "distilled",
                             "format": a.format, "precision": a.precision, "bytes": int(np.mean([x.bytes for x in same])),
                             "ndcg10": mean_std(nd)[0], "ndcg10_std": mean_std(nd)[1],
                             "hr10": mean_std(hr)[0], "hr10_std": mean_std(hr)[1],
                             "top10_agreement": float(np.mean([x.parity["top10_agreement"] for x in same])),
                             "seeds": len(rows)})
    results["students"] = students + compressed_student_rows(results["compressed"])
    results.update(frontier(results["students"]))

    # --- latency: one thread, same inputs, interleaved -------------------------------------------
    torch.set_num_threads(1)
    histories = pad_histories(split.history("test"), max_history)[:500]
    seed0 = runs["distilled"][0]
    by_kind = {(a.format, a.precision): seed0["folder"] / a.path for a in seed0["artifacts"]}
    student_serving = ServingModel(seed0["student"].model, top_k).eval()
    predictors = {
        "student_pte_fp32": Predictor(by_kind[("executorch", "fp32")], threads=1),
        "student_pte_int8": Predictor(by_kind[("executorch", "int8")], threads=1),
        "student_onnx_fp32": Predictor(by_kind[("onnx", "fp32")], threads=1),
        "student_onnx_int8": Predictor(by_kind[("onnx", "int8")], threads=1),
        "teacher_pte_fp32": Predictor(work / "teacher.fp32.pte", threads=1),
        "teacher_onnx_fp32": Predictor(work / "teacher.fp32.onnx", threads=1),
    }

    def eager(module):
        def call(history):
            with torch.no_grad():
                return module(torch.from_numpy(history))
        return call

    for name in COMPRESSED_PROFILES:  # the plan's compressed students (seed 0, distilled)
        for path in sorted((work / f"{name}-distilled-0").glob("model.compressed.*")):
            kind = "pte" if path.suffix == ".pte" else "onnx"
            predictors[f"compressed_{name.replace('-', '_')}_{kind}"] = Predictor(path, threads=1)
    contenders = {"teacher_eager": eager(teacher_serving.eval()), "student_eager": eager(student_serving)}
    contenders.update({name: p.predict for name, p in predictors.items()})
    log("latency (1 thread, interleaved)…")
    lat = latency(contenders, histories)
    results["latency_us"] = {f"{k}_{q}": v[q] for k, v in lat.items() for q in ("p50", "p95")}
    results["latency_calls"] = min(v["calls"] for v in lat.values())
    results["ratios"] = ratios(results)
    for k, v in results["ratios"].items():
        log(f"  {k}: {v:.2f}")

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(render_markdown(results))
    plot_frontier(results, out_dir / "frontier.png")
    log(f"wrote {out_dir / 'results.json'}, {out_dir / 'RESULTS.md'}, {out_dir / 'frontier.png'}")
    return 0


def ratios(results: dict) -> dict:
    """Size and speed ratios from the measured figures: against the teacher in eager PyTorch, and
    ExecuTorch against ONNX Runtime for the same student (default and each compressed one)."""
    lat = {k[:-4]: v for k, v in results["latency_us"].items() if k.endswith("_p50")}
    t = lat["teacher_eager"]
    default_pte = [s["bytes"] for s in results["students"] if s["format"] == "executorch" and "profile" not in s]
    any_pte = [s["max_bytes"] for s in results["students"] if s["format"] == "executorch" and "profile" in s]
    out = {"teacher_fp32_pte_bytes_over_best_student_pte": results["teacher"]["fp32_pte_bytes"] / min(default_pte)}
    if any_pte:
        out["teacher_fp32_pte_bytes_over_smallest_compressed_pte"] = results["teacher"]["fp32_pte_bytes"] / min(any_pte)
    for name in ("student_pte_fp32", "student_pte_int8", "student_onnx_fp32", "student_onnx_int8"):
        out[f"speedup_{name}_vs_teacher_eager"] = t / lat[name]
    out["executorch_over_onnxruntime_fp32"] = lat["student_pte_fp32"] / lat["student_onnx_fp32"]
    out["executorch_over_onnxruntime_int8"] = lat["student_pte_int8"] / lat["student_onnx_int8"]
    for key in sorted(lat):
        if key.startswith("compressed_") and key.endswith("_pte") and key[:-4] + "_onnx" in lat:
            profile = key[len("compressed_"):-4]
            out[f"speedup_compressed_{profile}_pte_vs_teacher_eager"] = t / lat[key]
            out[f"speedup_compressed_{profile}_onnx_vs_teacher_eager"] = t / lat[key[:-4] + "_onnx"]
            out[f"executorch_over_onnxruntime_compressed_{profile}"] = lat[key] / lat[key[:-4] + "_onnx"]
    return out


def bench_config(quick: bool):
    """The build configuration the benchmark's in-process training uses (the same as `build`'s;
    quick: a 200-user slice, a 2-member dim-32 teacher and 3 epochs)."""
    from toolkit.pipeline import BuildConfig

    cfg = BuildConfig(profile=PROFILE)
    if quick:
        cfg = replace(cfg, max_users=200, teacher=replace(cfg.teacher, members=2, dim=32,
                                                          train=replace(cfg.teacher.train, epochs=3)),
                      student=replace(cfg.student, train=replace(cfg.student.train, epochs=3)))
    return cfg


def redo_compressed(args) -> int:
    """Re-run the compressed section for some profiles and merge it into an existing results.json."""
    import torch

    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.pipeline import first_users, train_teacher_for
    from toolkit.profiles import load_profile

    out_dir = Path(args.out)
    results = json.loads((out_dir / "results.json").read_text())
    if args.cache:
        os.environ["TOOLKIT_CACHE_DIR"] = args.cache
    quick = results["mode"] == "quick"
    cfg = bench_config(quick)
    dataset = load_dataset()
    if cfg.max_users:
        dataset = first_users(dataset, cfg.max_users)
    split = split_leave_one_out(dataset)
    torch.set_num_threads(os.cpu_count() or 1)
    teacher = train_teacher_for(cfg, split, dataset, load_profile(PROFILE).serving.max_history, print)
    work = Path(tempfile.mkdtemp(prefix="bench."))
    seeds = list(range(args.seeds))
    for name in args.redo_compressed:
        entry = run_compressed(name, teacher.model, split, seeds, quick, work, print)
        results["compressed"] = [entry if e["profile"] == name else e for e in results["compressed"]]
        stale = f"compressed_{name.replace('-', '_')}_"
        results["latency_us"] = {k: v for k, v in results["latency_us"].items() if not k.startswith(stale)}
        results.setdefault("reruns", []).append({"profile": name, "when": time.strftime("%Y-%m-%d %H:%M"),
                                                 "teacher_cached": teacher.cached})
    results["students"] = [s for s in results["students"] if "profile" not in s] + compressed_student_rows(
        results["compressed"])
    results.update(frontier(results["students"]))
    results["ratios"] = ratios(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(render_markdown(results))
    plot_frontier(results, out_dir / "frontier.png")
    return 0


def goals(r: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each figure the benchmark is held to."""
    f, ra, b = r["frontier"], r["ratios"], r["build_seconds"]
    rows = []
    for limit, target in (("60000", 0.10), ("25000", 0.095)):
        got = f.get(limit)
        rows.append((f"NDCG@10 ≥ {target} within {int(limit):,} B", "-" if got is None else f"{got:.4f}",
                     got is not None and got >= target))
    rows.append(("teacher NDCG@10 ≥ 0.10", f"{r['teacher']['ndcg10']:.4f}", r["teacher"]["ndcg10"] >= 0.10))
    for e in r.get("compressed", []):
        d = np.mean([run[0]["ndcg10"] for run in e["runs"]["distilled"]])
        sc = np.mean([run[0]["ndcg10"] for run in e["runs"]["scratch"]])
        rows.append((f"distilled beats scratch at {e['budget_bytes']:,} B ({e['profile']}, mean of "
                     f"{len(e['runs']['distilled'])} seeds)", f"{d:.4f} vs {sc:.4f}", d > sc))
    best = max(v for k, v in ra.items() if k.startswith("speedup_student_"))
    rows.append(("student artifact ≥ 50× faster than the teacher in eager PyTorch", f"{best:.1f}×", best >= 50))
    et = max(ra["executorch_over_onnxruntime_fp32"], ra["executorch_over_onnxruntime_int8"])
    rows.append(("ExecuTorch student ≤ 1.2× the ONNX Runtime student (fp32 and int8)", f"{et:.2f}×", et <= 1.2))
    for k, v in ra.items():
        if k.startswith("executorch_over_onnxruntime_compressed_"):
            rows.append((f"… the same for the compressed {k.rsplit('compressed_', 1)[1]} student", f"{v:.2f}×", v <= 1.2))
    rows.append(("cold build ≤ 600 s", f"{b['cold']:.0f} s", b["cold"] <= 600))
    rows.append(("warm build ≤ 180 s", f"{b['warm']:.0f} s", b["warm"] <= 180))
    return rows


def render_markdown(r: dict) -> str:
    m, lat = r["machine"], r["latency_us"]
    lines = [
        f"# Benchmark results ({r['mode']} mode)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, "
        f"ExecuTorch {m['executorch']}, ONNX Runtime {m['onnxruntime']}. Written by `python bench/run.py`.",
        "MovieLens-100K, leave-one-out by time, full ranking over all items with the user's history excluded, "
        f"test users: {r['popularity']['users']}.",
        "",
        "## Quality and size",
        "",
        f"Students: mean ± std over {r['students'][0]['seeds']} seed(s) (no std from one seed); the teacher is one "
        "trained ensemble (1 seed).",
        "",
        "| model | format | precision | bytes | NDCG@10 | HR@10 |",
        "|---|---|---|---:|---:|---:|",
        f"| most popular | - | - | - | {r['popularity']['ndcg10']:.4f} | {r['popularity']['hr10']:.4f} |",
        f"| teacher ({r['teacher']['parameters']:,} params) | ExecuTorch / ONNX | fp32 | "
        f"{r['teacher']['fp32_pte_bytes']:,} / {r['teacher']['fp32_onnx_bytes']:,} | {r['teacher']['ndcg10']:.4f} | "
        f"{r['teacher']['hr10']:.4f} |",
    ]
    for s in r["students"]:
        size = f"{s['bytes']:,}" if s["bytes"] else f"({s.get('parameters', 0):,} params)"
        spread = (lambda key: f" ± {s[key]:.4f}") if s["seeds"] > 1 else (lambda key: "")  # no std from one seed
        lines.append(f"| {s['name']} | {s['format']} | {s['precision']} | {size} | "
                     f"{s['ndcg10']:.4f}{spread('ndcg10_std')} | {s['hr10']:.4f}{spread('hr10_std')} |")
    if r.get("compressed"):
        lines += ["", "## Compressed students at the frontier sizes (the plan's choice; distilled vs scratch)", "",
                  f"Per profile, `plan_student` chose the architecture and compression (seed 0, distilled); the same "
                  f"candidate was then trained with and without the teacher, {len(r['compressed'][0]['runs']['distilled'])} "
                  "seed(s) each, and measured through each runtime (mean ± std; bytes: largest over seeds).", "",
                  "| profile (budget) | candidate | format | distilled NDCG@10 | scratch NDCG@10 | bytes | fits |",
                  "|---|---|---|---:|---:|---:|---|"]
        for e in r["compressed"]:
            c = e["candidate"]
            arch = f"dim {c['dim']}, {c['layers']} block, rank {c['embedding_rank'] or 'full'}, {c['precision']}"
            for i, first in enumerate(e["runs"]["distilled"][0]):
                d = [run[i]["ndcg10"] for run in e["runs"]["distilled"]]
                sc = [run[i]["ndcg10"] for run in e["runs"]["scratch"]]
                size = max(run[i]["bytes"] for kind in e["runs"].values() for run in kind)
                lines.append(f"| {e['profile']} ({e['budget_bytes']:,} B) | {arch} | {first['format']} | "
                             f"{np.mean(d):.4f} ± {np.std(d, ddof=1) if len(d) > 1 else 0:.4f} | "
                             f"{np.mean(sc):.4f} ± {np.std(sc, ddof=1) if len(sc) > 1 else 0:.4f} | {size:,} | "
                             f"{'yes' if size <= e['budget_bytes'] else 'no'} |")
        for rerun in r.get("reruns", []):
            lines.append(f"\nThe {rerun['profile']} rows come from `--redo-compressed {rerun['profile']}` "
                         f"({rerun['when']}), merged into this run; its compressed latency is not measured.")
    if r.get("techniques"):
        lines += ["", "## Each compression technique (on the seed-0 distilled default student, fine-tuned with "
                  "distillation after each step)", "",
                  "| technique | weight bytes before → after | valid NDCG@10 before → after | test NDCG@10 before → after |",
                  "|---|---|---|---|"]
        for t in r["techniques"]:
            lines.append(f"| {t['technique']} | {t['bytes_before']:,} → {t['bytes_after']:,} | "
                         f"{t['valid_ndcg10_before']:.4f} → {t['valid_ndcg10_after']:.4f} | "
                         f"{t['test_ndcg10_before']:.4f} → {t['test_ndcg10_after']:.4f} |")
    lines += ["", "## Frontier: best NDCG@10 through an artifact within a size", "",
              "| within | NDCG@10 |", "|---:|---:|"]
    for k, v in r["frontier"].items():
        lines.append(f"| {int(k):,} B | {'-' if v is None else f'{v:.4f}'} |")
    lines += ["", "## Latency (batch 1, 1 thread, interleaved, "
              f"{r['latency_calls']} calls each after warm-up)", "", "| contender | p50 µs | p95 µs |", "|---|---:|---:|"]
    names = sorted({k.rsplit("_", 1)[0] for k in lat})
    for n in names:
        lines.append(f"| {n} | {lat[n + '_p50']:.1f} | {lat[n + '_p95']:.1f} |")
    lines += ["", "## Goals (issue 6), measured", "", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} |" for g, m, ok in goals(r)]
    lines += ["", "## Ratios", "", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in r["ratios"].items()]
    b = r["build_seconds"]
    lines += ["", "## Build cost (`python -m toolkit build --profile mobile-arm`)", "",
              "| build | wall s | peak RSS MB | exit |", "|---|---:|---:|---:|",
              f"| cold (teacher trained) | {b['cold']:.0f} | {r['build_peak_rss_bytes']['cold'] / 1e6:.0f} | "
              f"{r['build_exit_codes']['cold']} |",
              f"| warm (teacher cached) | {b['warm']:.0f} | {r['build_peak_rss_bytes']['warm'] / 1e6:.0f} | "
              f"{r['build_exit_codes']['warm']} |", ""]
    return "\n".join(lines)


def plot_frontier(r: dict, path: Path) -> None:
    """NDCG@10 against bytes for every student artifact; teacher and popularity as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, color in (("distilled", "tab:blue"), ("scratch", "tab:orange")):
        pts = [p for p in r["frontier_artifacts"] if f" {kind} " in p["name"]]
        ax.scatter([p["bytes"] / 1000 for p in pts], [p["ndcg10"] for p in pts], color=color,
                   label=f"student artifacts, {kind} (mean over seeds)")
    ax.axhline(r["teacher"]["ndcg10"], color="tab:green", linestyle="--", label="teacher")
    ax.axhline(r["popularity"]["ndcg10"], color="tab:red", linestyle=":", label="most popular")
    for limit in FRONTIER_BYTES:
        ax.axvline(limit / 1000, color="grey", linewidth=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("artifact size (KB, log scale)")
    ax.set_ylabel("test NDCG@10 (through the runtime)")
    ax.set_title("Quality per byte, MovieLens-100K")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
