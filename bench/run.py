"""Benchmark: the numbers that prove the toolkit works, measured side by side in one run.

    python bench/run.py            # full: MovieLens-100K, 3 seeds (about an hour on 2 cores)
    python bench/run.py --quick    # smoke run (a few minutes; never committed)
    python bench/run.py --render   # only rewrite RESULTS.md and the plot from results.json

Writes bench/results.json (atomically), bench/RESULTS.md (quoted by the README) and
bench/frontier.png. What it measures, all in this one run of the code:
- build cost: wall time and peak RSS of `python -m toolkit build --profile mobile-arm`, cold (empty
  cache: teacher and priors trained) and warm (cached), each in a fresh process; only exit 0 counts;
- one teacher; for each profile in PROFILES, what the build ships: the plan's student (chosen on
  validation, seed 0), distilled, then the same candidate distilled with seeds 1..n-1, each exported
  as the build exports it and measured through its runtimes (test, after the app's filtering);
  the same candidate trained from scratch is the control, never the headline;
- each compression technique alone on the mobile-arm student (valid and test);
- latency: batch 1, one thread, real histories, all contenders interleaved in blocks
  (toolkit.profiler.measure.time_calls, the profiler's loop);
- the quality-per-byte frontier of the shipped (distilled, planned) artifacts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import toolkit  # noqa: E402  (the public API: light, heavy libraries load inside its functions)

FRONTIER_BYTES = (25_000, 60_000, 250_000, 1_000_000)
PROFILES = ("mobile-arm", "smartwatch", "web-widget")  # 4 MB, 60 KB, 25 KB budgets
BUILD_PROFILE = "mobile-arm"
LATENCY_HISTORIES = 500


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
    """Run the real CLI build in a fresh process tree (toolkit.profiler.fresh.run_timed); only exit 0 (built
    and fits) is a success."""
    from toolkit.profiler.fresh import run_timed

    run = run_timed([sys.executable, "-m", "toolkit", "build", "--profile", BUILD_PROFILE, "--out", str(out), *args],
                    env={"TOOLKIT_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    if run.exit_code != 0:
        raise RuntimeError(f"build exited {run.exit_code}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return {"exit_code": run.exit_code, "seconds": run.seconds, "peak_rss_bytes": run.peak_rss_bytes, "log": run.stdout}


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def bench_config(quick: bool):
    """The build configuration of the benchmark's in-process training (the same as `build`'s;
    quick: 300 users, a 1-member teacher and 3 epochs)."""
    cfg = toolkit.BuildConfig(profile=BUILD_PROFILE)
    if quick:
        cfg = replace(cfg.with_epochs(3), max_users=300, teacher=replace(cfg.teacher, members=1))
    return cfg


def run_profile(name: str, teacher, priors, data, seeds: list[int], cfg, work: Path, log) -> dict:
    """The plan for profile `name` (seed 0, distilled: what the build ships), the same candidate
    distilled and from scratch for every seed, each shipped and measured through its runtimes
    (toolkit.plan, toolkit.train_plan, toolkit.train_trial, toolkit.ship)."""
    from toolkit.training.evaluate import cutoff_for, evaluate_model

    profile = toolkit.load_profile(name)
    k = cutoff_for(profile.serving.top_k)
    log(f"plan for {name} ({profile.budget.model_bytes:,} B)…")
    plan = toolkit.plan(profile, data, priors, cfg.plan, log)
    planned = toolkit.train_plan(plan, teacher, data, work / f"{name}-trials", cfg.student, seed=0, log=log)
    chosen = planned.chosen
    c = chosen.trial.candidate
    entry = {"profile": name, "budget_bytes": profile.budget.model_bytes, "candidate": c.to_dict(),
             "steps": [st.to_dict() for st in chosen.steps],
             "plan_candidates_tried": [r.to_dict() for r in plan.records if r.tried],
             "runs": {"distilled": [], "scratch": []}}
    for seed in seeds:
        for kind in ("distilled", "scratch"):
            if kind == "distilled" and seed == 0:
                this = chosen  # the plan's own training run: what `build` ships
            else:
                this = toolkit.train_trial(plan, chosen.trial, teacher if kind == "distilled" else None, data,
                                           work / f"{name}-{kind}-{seed}-trial", cfg.student, seed=seed, log=log)
            folder = work / f"{name}-{kind}-{seed}"
            artifacts = toolkit.ship(this, profile, folder)
            split = this.data.split
            entry["runs"][kind].append({
                "seed": seed, "float_test": evaluate_model(this.float_model, split, "test", k).to_dict(),
                "float_valid": evaluate_model(this.float_model, split, "valid", k).to_dict(),
                "artifacts": [{"path": a.path, "format": a.format, "precision": a.precision, "source": a.source,
                               "bytes": a.bytes, "ndcg": a.metrics.ndcg, "hr": a.metrics.hr, "k": a.metrics.k,
                               "undetermined": a.metrics.undetermined,
                               "top10_agreement": a.parity["top10_agreement"]} for a in artifacts]})
            log(f"  {name} {kind} seed {seed}: " + ", ".join(
                f"{a.path} {a.bytes:,} B NDCG@{a.metrics.k} {a.metrics.ndcg:.4f}" for a in artifacts))
            if kind == "distilled" and seed == 0:
                entry["shipped_folder"] = str(folder)
                entry["_plan"] = chosen
    return entry


def student_rows(entries: list[dict]) -> list[dict]:
    """One row per profile, kind and artifact: mean ± std over seeds, bytes mean and max."""
    rows = []
    for entry in entries:
        for kind, runs in entry["runs"].items():
            for i, first in enumerate(runs[0]["artifacts"]):
                same = [run["artifacts"][i] for run in runs]
                nd, hr = [x["ndcg"] for x in same], [x["hr"] for x in same]
                rows.append({"profile": entry["profile"], "kind": kind, "path": first["path"], "format": first["format"],
                             "precision": first["precision"], "source": first["source"], "k": first["k"],
                             "bytes": int(np.mean([x["bytes"] for x in same])), "max_bytes": max(x["bytes"] for x in same),
                             "ndcg": mean_std(nd)[0], "ndcg_std": mean_std(nd)[1], "ndcg_per_seed": nd,
                             "hr": mean_std(hr)[0], "hr_std": mean_std(hr)[1], "seeds": len(same),
                             "fits_budget": max(x["bytes"] for x in same) <= entry["budget_bytes"]})
    return rows


def frontier(rows: list[dict]) -> dict:
    """The best NDCG@10 through a shipped artifact (the distilled, planned student) within each size;
    the largest file over seeds counts."""
    shipped = [r for r in rows if r["kind"] == "distilled" and r["k"] == 10]
    best = {}
    for limit in FRONTIER_BYTES:
        fits = [r["ndcg"] for r in shipped if r["max_bytes"] <= limit]
        best[str(limit)] = max(fits) if fits else None
    return {"frontier": best, "frontier_artifacts": [
        {"bytes": r["max_bytes"], "ndcg": r["ndcg"], "name": f"{r['profile']} {r['path']}", "kind": r["kind"]}
        for r in sorted(rows, key=lambda r: r["max_bytes"]) if r["k"] == 10]}


def measure_techniques(model, teacher, data, quick: bool, log) -> list[dict]:
    """Each technique of toolkit.compression alone on the same distilled student, then all combined:
    weight bytes and NDCG@10 before/after on validation (what chose) and test (what is reported)."""
    from toolkit.compression import CompressConfig, LowRankConfig, PruneConfig, QuantConfig, model_bytes
    from toolkit.training.evaluate import evaluate_model

    split = data.split
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
    before_test = evaluate_model(model, split, "test").ndcg
    rows = []
    for name, cfg in configs.items():
        log(f"technique: {name}…")
        result = toolkit.compress(model, teacher, data, cfg, seed=0, log=log)
        rows.append({"technique": name, "config": cfg.to_dict(), "bytes_before": model_bytes(model),
                     "bytes_after": model_bytes(result.model), "valid_ndcg10_before": result.steps[0].ndcg_before,
                     "valid_ndcg10_after": evaluate_model(result.model, split, "valid").ndcg,
                     "test_ndcg10_before": before_test, "test_ndcg10_after": evaluate_model(result.model, split, "test").ndcg,
                     "steps": [st.to_dict() for st in result.steps]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a slice of the data")
    parser.add_argument("--out", default=str(ROOT / "bench"), help="where results.json and RESULTS.md go")
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from results.json in --out")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds for every comparison (default 3)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    if args.render:  # derived figures, RESULTS.md and the plot from the measurements in results.json
        results = json.loads((out_dir / "results.json").read_text())
        write_results(results, out_dir)
        return 0

    import torch

    from export.runtime import Predictor
    from export.serving import ServingModel
    from toolkit.training.evaluate import evaluate_model, evaluate_popularity, pad_histories
    from toolkit.profiler.measure import TimingConfig, time_calls

    cfg = bench_config(args.quick)
    build_args = ["--max-users", "300", "--epochs", "3", "--teacher-members", "1"] if args.quick else []
    seeds = list(range(args.seeds))
    work = Path(tempfile.mkdtemp(prefix="bench."))
    cache = work / "cache"
    results: dict = {"mode": "quick" if args.quick else "full", "machine": machine_info(), "profile": BUILD_PROFILE,
                     "started": time.strftime("%Y-%m-%d %H:%M"), "seeds": len(seeds)}
    log = print

    # --- build cost: cold (teacher and priors trained), then warm (cached) -----------------------
    log("build (cold)…")
    cold = timed_build(build_args, cache, work / "cold")
    log(f"  {cold['seconds']:.0f} s, peak RSS {cold['peak_rss_bytes'] / 1e6:.0f} MB")
    log("build (warm)…")
    warm = timed_build(build_args, cache, work / "warm")
    log(f"  {warm['seconds']:.0f} s, peak RSS {warm['peak_rss_bytes'] / 1e6:.0f} MB")
    results["build"] = {"cold": {k: cold[k] for k in ("exit_code", "seconds", "peak_rss_bytes")},
                        "warm": {k: warm[k] for k in ("exit_code", "seconds", "peak_rss_bytes")},
                        "manifest": json.loads((work / "warm" / "manifest.json").read_text())["steps_seconds"]}

    # --- one teacher (from the cold build's cache) and the priors --------------------------------
    os.environ["TOOLKIT_CACHE_DIR"] = str(cache)
    data = toolkit.load_dataset(max_users=cfg.max_users, seed=cfg.seed)
    split = data.split
    torch.set_num_threads(os.cpu_count() or 1)
    max_history = 50
    teacher = toolkit.train_teacher(data, cfg.teacher, max_history=max_history, seed=cfg.seed, log=log)
    assert teacher.cached, "the teacher should come from the cold build's cache"
    priors = toolkit.measure_priors(data, cfg.priors, plan=cfg.plan, teacher=teacher, teacher_config=cfg.teacher,
                                    max_history=max_history, seed=cfg.seed, log=log)
    pop = evaluate_popularity(split, "test")
    results["popularity"] = pop.to_dict()
    results["teacher"] = {"test": evaluate_model(teacher.model, split, "test").to_dict(),
                          "valid": evaluate_model(teacher.model, split, "valid").to_dict(),
                          "parameters": teacher.parameters, "config": teacher.config, "seeds": 1}
    results["priors"] = priors.to_dict()

    # --- what the build ships for each profile, distilled vs scratch over seeds ------------------
    entries = [run_profile(name, teacher, priors, data, seeds, cfg, work, log) for name in PROFILES]
    plans = {e["profile"]: e.pop("_plan") for e in entries}
    results["profiles"] = entries
    results["students"] = student_rows(entries)

    # --- each compression technique alone (and combined) on the mobile-arm float student ---------
    results["techniques"] = measure_techniques(plans[BUILD_PROFILE].float_model, teacher, data, args.quick, log)

    # --- the teacher's fp32 artifacts: size and latency ------------------------------------------
    teacher_serving = ServingModel(teacher.model, 20)
    base = toolkit.load_profile(BUILD_PROFILE)  # the teacher behind a 20-candidate graph, in both formats
    twenty = replace(base, serving=replace(base.serving, top_k=20, formats=("executorch", "onnx"),
                                           max_history=max_history))
    teacher_files = toolkit.export(teacher.model, twenty, work / "teacher", name="teacher.fp32")
    by_format = {f.format: f for f in teacher_files}
    results["teacher"].update({"fp32_pte_bytes": by_format["executorch"].bytes,
                               "fp32_onnx_bytes": by_format["onnx"].bytes})

    # --- latency: one thread, the same real histories, interleaved blocks -------------------------
    torch.set_num_threads(1)
    histories = pad_histories(split.history("test"), max_history)[:LATENCY_HISTORIES]
    contenders = {}

    def eager(module):
        def call(history):
            with torch.no_grad():
                return module(torch.from_numpy(history[None]))
        return call

    contenders["teacher_eager"] = eager(teacher_serving.eval())
    contenders["student_eager"] = eager(ServingModel(plans[BUILD_PROFILE].float_model, 20).eval())
    for path in ("teacher.fp32.pte", "teacher.fp32.onnx"):
        p = Predictor(work / "teacher" / path, threads=1)
        contenders[path.replace(".", "_")] = (lambda pr: lambda h: pr.predict(h[None]))(p)
    for e in entries:
        for a in e["runs"]["distilled"][0]["artifacts"]:
            p = Predictor(Path(e["shipped_folder"]) / a["path"], threads=1)
            contenders[f"{e['profile']}/{a['path']}"] = (lambda pr: lambda h: pr.predict(h[None]))(p)
    log("latency (1 thread, interleaved)…")
    timings = time_calls(contenders, histories, TimingConfig(min_blocks=60, min_seconds=5.0, max_seconds=600.0))
    results["latency_us"] = {name: {"p50": t.p50_ms * 1e3, "p95": t.p95_ms * 1e3, "quiet_p50": t.quiet_p50_ms * 1e3,
                                    "calls": t.calls} for name, t in timings.items()}
    write_results(results, out_dir)
    log(f"wrote {out_dir / 'results.json'}, {out_dir / 'RESULTS.md'}, {out_dir / 'frontier.png'}")
    return 0


def write_results(results: dict, out_dir: Path) -> None:
    """Derived figures (frontier, ratios, goals), then results.json (atomically), RESULTS.md and the plot."""
    from toolkit.core.cache import write_json_atomic

    results.update(frontier(results["students"]))
    teachers = out_dir / "teachers.json"  # the teachers' comparison is its own run: bench/teachers.py
    if teachers.is_file():
        t = json.loads(teachers.read_text())
        results["teachers"], results["kg_students"] = t["teachers"], t["kg_students"]
        results["teachers_source"] = f"bench/teachers.py, run started {t['started']}, {t['seeds']} seeds"
    results["ratios"] = ratios(results)
    results["goals"] = [{"goal": g, "measured": m, "met": ok} for g, m, ok in goals(results)]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "results.json", results)
    (out_dir / "RESULTS.md").write_text(render_markdown(results))
    plot_frontier(results, out_dir / "frontier.png")


def _row(r: dict, profile: str, kind: str, path: str) -> dict | None:
    return next((s for s in r["students"] if s["profile"] == profile and s["kind"] == kind and s["path"] == path), None)


def ratios(r: dict) -> dict:
    """Size and speed ratios from the measured figures: against the teacher in eager PyTorch, and
    ExecuTorch against ONNX Runtime for the same student."""
    lat = {k: v["p50"] for k, v in r["latency_us"].items()}
    t = lat["teacher_eager"]
    out = {}
    shipped = [s for s in r["students"] if s["kind"] == "distilled"]
    pte = [s["max_bytes"] for s in shipped if s["format"] == "executorch"]
    if pte:
        out["teacher_fp32_pte_bytes_over_smallest_student_pte"] = r["teacher"]["fp32_pte_bytes"] / min(pte)
    for name, v in lat.items():
        if "/" in name:
            out[f"speedup_{name}_vs_teacher_eager"] = t / v
    for profile in PROFILES:
        for stem in ("model.fp32", "model.int8", "model.compressed"):
            a, b = lat.get(f"{profile}/{stem}.pte"), lat.get(f"{profile}/{stem}.onnx")
            if a and b:
                out[f"executorch_over_onnxruntime_{profile}_{stem.split('.')[1]}"] = a / b
    return out


def goals(r: dict) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each figure the benchmark is held to; every figure is the shipped
    (planned, distilled) model's, scratch only as the control."""
    rows = []
    f = r["frontier"]
    for limit, target in (("60000", 0.10), ("25000", 0.095)):
        got = f.get(limit)
        rows.append((f"shipped NDCG@10 ≥ {target} within {int(limit):,} B", "-" if got is None else f"{got:.4f}",
                     got is not None and got >= target))
    rows.append(("teacher NDCG@10 ≥ 0.10", f"{r['teacher']['test']['ndcg']:.4f}", r["teacher"]["test"]["ndcg"] >= 0.10))
    for e in r["profiles"]:
        # what is shipped: the smallest artifact of the plan, through its runtime (a profile's float students
        # can coincide: smartwatch and web-widget both start from the dim-16 student before compression)
        path = min(e["runs"]["distilled"][0]["artifacts"], key=lambda a: a["bytes"])["path"]

        def shipped(kind: str) -> list[float]:
            return [next(a["ndcg"] for a in run["artifacts"] if a["path"] == path) for run in e["runs"][kind]]

        d, s = shipped("distilled"), shipped("scratch")
        spread = max(np.std(d, ddof=1), np.std(s, ddof=1)) if len(d) > 1 else 0.0
        rows.append((f"distilled beats scratch by more than the seeds' spread at {e['budget_bytes']:,} B "
                     f"({e['profile']}, {path}; mean of {len(d)} seeds, through the artifact, test)",
                     f"{np.mean(d):.4f} vs {np.mean(s):.4f} (seed spread {spread:.4f})",
                     bool(float(np.mean(d)) - float(np.mean(s)) > spread)))
    b = r["build"]
    rows.append(("cold build ≤ 600 s", f"{b['cold']['seconds']:.0f} s", b["cold"]["seconds"] <= 600))
    rows.append(("warm build ≤ 180 s", f"{b['warm']['seconds']:.0f} s", b["warm"]["seconds"] <= 180))
    return rows


def render_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# Benchmark results ({r['mode']} mode)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, "
        f"ExecuTorch {m['executorch']}, ONNX Runtime {m['onnxruntime']}. Written by `python bench/run.py` "
        f"(started {r.get('started', '?')}), one run of the code.",
        "MovieLens-100K, leave-one-out by time, full ranking over all items with the user's whole history excluded, "
        f"ties counted against the model, test users: {r['popularity']['users']}. Every choice (plan, epochs, "
        "compression) was made on validation; the figures here are test.",
        "",
        "## What the build ships, per profile (distilled, planned; the same candidate from scratch as the control)",
        "",
        f"Per profile the plan chose the student on validation (seed 0); the same candidate was then trained "
        f"with and without the teacher for {r['seeds']} seeds and exported as the build exports it. NDCG@10 "
        "through each artifact's runtime after the app's filtering (mean ± std over seeds).",
        "",
        "| profile (budget) | candidate | artifact | bytes | shipped (distilled) NDCG@10 | scratch NDCG@10 | fits |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for e in r["profiles"]:
        c = e["candidate"]
        arch = f"dim {c['dim']}, {c['layers']} block, rank {c['embedding_rank'] or 'full'}, {c['precision']}"
        for a in e["runs"]["distilled"][0]["artifacts"]:
            d, s = _row(r, e["profile"], "distilled", a["path"]), _row(r, e["profile"], "scratch", a["path"])
            lines.append(f"| {e['profile']} ({e['budget_bytes']:,} B) | {arch} | {a['path']} | {d['max_bytes']:,} | "
                         f"{d['ndcg']:.4f} ± {d['ndcg_std']:.4f} | {s['ndcg']:.4f} ± {s['ndcg_std']:.4f} | "
                         f"{'yes' if d['fits_budget'] else 'no'} |")
    t, p = r["teacher"], r["popularity"]
    lines += ["", f"Teacher (one ensemble, {t['parameters']:,} parameters): test NDCG@10 {t['test']['ndcg']:.4f}, "
              f"HR@10 {t['test']['hr']:.4f}; fp32 `.pte` {t['fp32_pte_bytes']:,} B, `.onnx` {t['fp32_onnx_bytes']:,} B. "
              f"Most popular: NDCG@10 {p['ndcg']:.4f}, HR@10 {p['hr']:.4f}.", "",
              "Float students in PyTorch (test NDCG@10 per seed):", "",
              "| profile | distilled | scratch |", "|---|---|---|"]
    for e in r["profiles"]:
        d = ", ".join(f"{run['float_test']['ndcg']:.4f}" for run in e["runs"]["distilled"])
        s = ", ".join(f"{run['float_test']['ndcg']:.4f}" for run in e["runs"]["scratch"])
        lines.append(f"| {e['profile']} | {d} | {s} |")
    if r.get("techniques"):
        lines += ["", "## Each compression technique (on the mobile-arm float student, fine-tuned with distillation)",
                  "", "| technique | weight bytes before → after | valid NDCG@10 before → after | test NDCG@10 before → after |",
                  "|---|---|---|---|"]
        for x in r["techniques"]:
            lines.append(f"| {x['technique']} | {x['bytes_before']:,} → {x['bytes_after']:,} | "
                         f"{x['valid_ndcg10_before']:.4f} → {x['valid_ndcg10_after']:.4f} | "
                         f"{x['test_ndcg10_before']:.4f} → {x['test_ndcg10_after']:.4f} |")
    lines += ["", "## Frontier: best shipped NDCG@10 within a size", "", "| within | NDCG@10 |", "|---:|---:|"]
    for k, v in r["frontier"].items():
        lines.append(f"| {int(k):,} B | {'-' if v is None else f'{v:.4f}'} |")
    lines += ["", "## Latency (batch 1, 1 thread, interleaved blocks)", "",
              "| contender | calls | p50 µs | p95 µs | quiet p50 µs |", "|---|---:|---:|---:|---:|"]
    for n, v in r["latency_us"].items():
        lines.append(f"| {n} | {v['calls']} | {v['p50']:.1f} | {v['p95']:.1f} | {v['quiet_p50']:.1f} |")
    lines += ["", "## Goals, measured", "", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |" for g in r["goals"]]
    lines += ["", "## Ratios", "", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in r["ratios"].items()]
    b = r["build"]
    lines += ["", "## Build cost (`python -m toolkit build --profile mobile-arm`, exit 0 required)", "",
              "| build | wall s | peak RSS MB |", "|---|---:|---:|",
              f"| cold (teacher and priors trained) | {b['cold']['seconds']:.0f} | {b['cold']['peak_rss_bytes'] / 1e6:.0f} |",
              f"| warm (cached) | {b['warm']['seconds']:.0f} | {b['warm']['peak_rss_bytes'] / 1e6:.0f} |", "",
              "Warm build by step (s): " + ", ".join(f"{k} {v:.0f}" for k, v in b["manifest"].items()), ""]
    if r.get("notes"):
        lines += ["", "## Notes on this run", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines)


def plot_frontier(r: dict, path: Path) -> None:
    """NDCG@10 against bytes for every artifact; shipped (distilled) and scratch; teacher and popularity as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, color, label in (("distilled", "tab:blue", "shipped (planned, distilled)"),
                               ("scratch", "tab:orange", "control: same candidate from scratch")):
        pts = [p for p in r["frontier_artifacts"] if p["kind"] == kind]
        ax.scatter([p["bytes"] / 1000 for p in pts], [p["ndcg"] for p in pts], color=color, label=label, s=18)
    ax.axhline(r["teacher"]["test"]["ndcg"], color="tab:green", linestyle="--", label="teacher")
    ax.axhline(r["popularity"]["ndcg"], color="tab:red", linestyle=":", label="most popular")
    for limit in FRONTIER_BYTES:
        ax.axvline(limit / 1000, color="grey", linewidth=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("artifact size (KB, log scale; largest over seeds)")
    ax.set_ylabel("test NDCG@10 (through the runtime, mean over seeds)")
    ax.set_title("Quality per byte, MovieLens-100K")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
