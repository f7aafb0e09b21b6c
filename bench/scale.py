"""Scaling benchmark: large synthetic catalogues (bench/synthetic.py), measured in one run.

    python bench/scale.py            # 20k and 50k items end to end, full vs sampled at 20k (3 seeds), 1M serving
    python bench/scale.py --quick    # the same at small sizes (a smoke run; never committed)
    python bench/scale.py --render   # rewrite SCALE.md and scale.png from scale.json
    python bench/scale.py --only shapes --merge   # only the second generator setting's builds, into scale.json

What it measures:
- `build --profile mobile-arm --data FILE`, cold (empty cache: teacher, priors, plan, exports,
  profiling), in a fresh process tree: wall time, peak RSS, exit code, the shipped artifacts' bytes
  and one-thread latency (the profiler's figures), NDCG@10 through the best shipped artifact and
  the popularity baseline (test, the build's user sample);
- the same cold build on logs of another shape (bench/synthetic.py's `series` setting: ~67
  interactions a user, 300 topics, mostly series continuation), at about MovieLens-100K's size
  (6,000 items, 133,508 interactions, 2,000 users) and at 50,000 items (1M, 15,000 users): the
  training budgets (toolkit/training/loop.py) must hold there too, not only on bench's own log (section
  `shapes`; each loop's steps and whether its budget capped it from the manifest);
- at 20,000 items, where full softmax is still affordable: the same student trained with the full
  and with the sampled softmax, 3 seeds (from labels only, so the loss is the only difference),
  for the same optimizer steps; and each softmax as a build trains it (its step budget and early
  stopping; sections `sampled-as-built`, `full-as-built`);
- at 1,000,000 items: a student trained with the sampled softmax, compressed to a product-quantized
  table, exported exhaustive and two-stage (bench/serving.py's measurement), served in ONNX Runtime
  and ExecuTorch on one thread, recall@10 of two-stage against exhaustive scoring of the same model.
Writes bench/scale.json (the schema of the issue), bench/SCALE.md and bench/scale.png (time and
memory against catalogue size).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

BUILDS = ((20_000, 400_000), (50_000, 1_000_000))  # (items, interactions) built end to end
QUICK_BUILDS = ((3_000, 60_000),)
# (shape, items, interactions): issue 26's logs, where the build had not finished in 30 and 45 minutes
SHAPED_BUILDS = (("series", 6_000, 133_508), ("series", 50_000, 1_000_000))
QUICK_SHAPED_BUILDS = (("series", 2_000, 40_000),)
SERVE = (1_000_000, 5_000_000)  # trained, exported and served
QUICK_SERVE = (60_000, 300_000)
LOSS_SEEDS = 3
# full vs sampled: both trained for the same optimizer steps (~10 epochs at 20k items; a build's own
# loops stop at their compute budget, TrainConfig.budget): full softmax costs ~50 s an epoch there on
# 2 cores, 7x sampled
LOSS_STEPS = 1_000


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.platform()}"


def commit() -> str | None:
    """The code's git commit (entries measured by separate runs say which code measured them)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() + ("+dirty" if subprocess.run(
                                  ["git", "status", "--porcelain", "--untracked-files=no", "--", "toolkit", "export", "bench/*.py"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def run_build(items: int, interactions: int, work: Path, log, shape: str = "bench") -> dict:
    """One cold `build --profile mobile-arm --data FILE` of a synthetic log (generator setting
    `shape`, bench/synthetic.py's SHAPES), in a fresh process tree."""
    from synthetic import shaped, write

    from toolkit.profiler.fresh import run_timed

    name = f"{items}" if shape == "bench" else f"{shape}-{items}"
    data = write(shaped(shape, items, interactions), work / f"log-{name}.parquet")
    out, cache = work / f"build-{name}", work / f"cache-{name}"
    log(f"build at {items:,} items, {interactions:,} interactions, {shape} shape (cold)…")
    run = run_timed([sys.executable, "-m", "toolkit", "build", "--profile", "mobile-arm", "--data", str(data),
                     "--out", str(out)], env={"TOOLKIT_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    log(f"  exit {run.exit_code} in {run.seconds:.0f} s, peak RSS {run.peak_rss_bytes / 1e9:.2f} GB")
    entry = {"items": items, "interactions": interactions, "shape": shape, "build_seconds": run.seconds,
             "peak_rss_bytes": run.peak_rss_bytes, "exit_code": run.exit_code, "ndcg10": None,
             "popularity_ndcg10": None, "full_softmax_ndcg10": None, "artifacts": [], "two_stage": None}
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        entry["error"] = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return entry
    manifest = json.loads(manifest_path.read_text())
    entry["catalogue_items"] = manifest["dataset"]["items"]  # the ids that occur in the log: the model's catalogue
    entry["steps_seconds"] = manifest["steps_seconds"]
    entry["popularity_ndcg10"] = manifest["popularity"]["test"]["ndcg"]
    entry["student_ndcg10"] = manifest["student"]["metrics"]["test"]["ndcg"]
    entry["teacher_ndcg10"] = manifest["teacher"]["metrics"]["test"]["ndcg"]
    entry["teacher_members"] = manifest["teacher"].get("members")
    entry["users"] = manifest["dataset"].get("users")
    # what each loop took under its budget (toolkit/training/loop.py): the teacher's members, the priors' proxies
    entry["budgets"] = {"teacher_steps": manifest["teacher"].get("member_steps"),
                        "teacher_capped": manifest["teacher"].get("member_capped"),
                        "prior_steps": manifest["plan"].get("priors", {}).get("steps"),
                        "prior_capped": manifest["plan"].get("priors", {}).get("capped")}
    entry["evaluated_users"] = manifest["popularity"]["test"]["users"]
    entry["plan"] = manifest["plan"]["candidate"]
    for a in manifest["artifacts"]:
        timings = a["profile"]["latency"]["timings"]
        one = timings.get("native/1") or timings["1"]  # one thread; a .pte in the native client
        entry["artifacts"].append({"format": a["format"], "path": a["path"], "bytes": a["bytes"],
                                   "ndcg10": a["metrics"]["ndcg"], "p50_ms": one["p50_ms"], "p95_ms": one["p95_ms"],
                                   "fits": a["verdict"]["fits"]})
    entry["ndcg10"] = max(a["ndcg10"] for a in entry["artifacts"])
    return entry


def loss_split(items: int, interactions: int, work: Path):
    """The loss sections' data (the 20k build's log, written once per run) and its split."""
    from synthetic import SyntheticConfig, write

    from toolkit.data import read_interactions, split_leave_one_out

    data = work / f"log-{items}.parquet"
    if not data.is_file():
        write(SyntheticConfig(items=items, interactions=interactions), data)
    return split_leave_one_out(read_interactions(data)).evaluated_on(10_000)


def full_vs_sampled(items: int, interactions: int, work: Path, seeds: int, log) -> dict:
    """The same student (dim 32, labels only) trained with the full and the sampled softmax."""
    from toolkit.training.evaluate import evaluate_model
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig, fit

    split = loss_split(items, interactions, work)
    out = {"items": items, "max_steps": LOSS_STEPS, "full": [], "sampled": [], "full_seconds": [],
           "sampled_seconds": [], "full_steps": [], "sampled_steps": []}
    for seed in range(seeds):
        for loss in ("full", "sampled"):
            log(f"  {items:,} items, {loss} softmax, seed {seed}…")
            start = time.perf_counter()
            result = fit(ModelConfig(num_items=split.num_items, dim=32, max_history=50), split.sealed(),
                         TrainConfig(seed=seed, loss=loss, max_steps=LOSS_STEPS, budget=0), desc=f"{loss} {seed}")
            out[f"{loss}_seconds"].append(time.perf_counter() - start)
            out[f"{loss}_steps"].append(result.steps)
            out[loss].append(evaluate_model(result.model, split, "test").ndcg)
            log(f"    test NDCG@10 {out[loss][-1]:.4f} in {out[f'{loss}_seconds'][-1]:.0f} s")
    out["relative_loss"] = 1 - float(np.mean(out["sampled"])) / float(np.mean(out["full"]))
    return out


def as_built(items: int, interactions: int, work: Path, seeds: int, log, loss: str, save=None) -> dict:
    """One softmax as a build trains it (TrainConfig's step budget and early stopping), on the loss
    comparison's data and student: sections `sampled-as-built` and `full-as-built`, run apart
    (the full softmax to its own early stop costs ~35 min a seed); `save(out)` after every seed."""
    from toolkit.training.evaluate import evaluate_model
    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig, fit

    split = loss_split(items, interactions, work)
    out: dict = {"items": items, "loss": loss, "budget": TrainConfig().budget, "ndcg10": [], "seconds": [],
                 "steps": [], "capped": [], "seeds": seeds}
    for seed in range(seeds):
        log(f"  {items:,} items, {loss} softmax as a build trains it, seed {seed}…")
        start = time.perf_counter()
        result = fit(ModelConfig(num_items=split.num_items, dim=32, max_history=50), split.sealed(),
                     TrainConfig(seed=seed, loss=loss), desc=f"{loss} {seed}")
        out["seconds"].append(time.perf_counter() - start)
        out["steps"].append(result.steps)
        out["capped"].append(result.capped)
        out["ndcg10"].append(evaluate_model(result.model, split, "test").ndcg)
        log(f"    test NDCG@10 {out['ndcg10'][-1]:.4f} in {out['seconds'][-1]:.0f} s, {result.steps} steps")
        if save:
            save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench"))
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--only", choices=("builds", "shapes", "loss", "sampled-as-built", "full-as-built", "serve"),
                        action="append",
                        help="run only these sections")
    parser.add_argument("--items", type=int, action="append", help="only the builds of these catalogue sizes")
    parser.add_argument("--merge", action="store_true", help="add to the scale.json in --out (each entry says "
                        "when it was measured) instead of starting a new one")
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    if args.render:
        write_results(json.loads((out_dir / "scale.json").read_text()), out_dir)
        return 0
    sections = set(args.only or ("builds", "shapes", "loss", "sampled-as-built", "full-as-built", "serve"))
    work = Path(tempfile.mkdtemp(prefix="scale."))
    log = print
    results: dict = {"machine": machine(), "mode": "quick" if args.quick else "full",
                     "started": time.strftime("%Y-%m-%d %H:%M"), "catalogs": []}
    if args.merge and (out_dir / "scale.json").is_file():
        results = json.loads((out_dir / "scale.json").read_text())
    builds = QUICK_BUILDS if args.quick else BUILDS
    if "builds" in sections:
        for items, n in builds:
            if args.items and items not in args.items:
                continue
            entry = {**run_build(items, n, work, log), "measured": time.strftime("%Y-%m-%d %H:%M"), "commit": commit()}
            if results.get("loss_comparison", {}).get("items") == items:  # measured by the loss section
                entry["full_softmax_ndcg10"] = float(np.mean(results["loss_comparison"]["full"]))
            results["catalogs"] = [c for c in results["catalogs"] if c["items"] != items] + [entry]
            results["catalogs"].sort(key=lambda c: c["items"])
            write_results({**results, "complete": False}, out_dir)  # a section at a time: a later crash loses less
    if "shapes" in sections:
        for shape, items, n in QUICK_SHAPED_BUILDS if args.quick else SHAPED_BUILDS:
            if args.items and items not in args.items:
                continue
            entry = {**run_build(items, n, work, log, shape), "measured": time.strftime("%Y-%m-%d %H:%M"),
                     "commit": commit()}
            results["shapes"] = sorted([c for c in results.get("shapes", []) if (c["shape"], c["items"]) != (shape, items)]
                                       + [entry], key=lambda c: (c["shape"], c["items"]))
            write_results({**results, "complete": False}, out_dir)
    if "loss" in sections:
        items, n = builds[0]
        results["loss_comparison"] = {**full_vs_sampled(items, n, work, 2 if args.quick else LOSS_SEEDS, log),
                                      "measured": time.strftime("%Y-%m-%d %H:%M"), "commit": commit()}
        for entry in results["catalogs"]:
            if entry["items"] == items:
                entry["full_softmax_ndcg10"] = float(np.mean(results["loss_comparison"]["full"]))
        write_results({**results, "complete": False}, out_dir)
    for loss in ("sampled", "full"):
        if f"{loss}-as-built" in sections:
            items, n = builds[0]
            key = f"{loss}_as_built"

            def save(out: dict, key: str = key) -> None:  # every seed as it ends: a later crash loses less
                results[key] = {**out, "measured": time.strftime("%Y-%m-%d %H:%M"), "commit": commit()}
                write_results({**results, "complete": False}, out_dir)

            save(as_built(items, n, work, 2 if args.quick else LOSS_SEEDS, log, loss, save))
    if "serve" in sections:
        from serving import serve_large_catalog

        items, n = QUICK_SERVE if args.quick else SERVE
        entry = {**serve_large_catalog(items, n, work, log), "measured": time.strftime("%Y-%m-%d %H:%M"),
                 "commit": commit()}
        results["catalogs"] = sorted([c for c in results["catalogs"] if c["items"] != items] + [entry],
                                     key=lambda c: c["items"])
    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    have = {c["items"] for c in results["catalogs"]}
    shapes = {(c["shape"], c["items"]) for c in results.get("shapes", [])}
    results["complete"] = all(i in have for i, _ in builds) and "loss_comparison" in results and all(
        (shape, i) in shapes for shape, i, _ in (QUICK_SHAPED_BUILDS if args.quick else SHAPED_BUILDS)) and all(
        len(results.get(f"{loss}_as_built", {}).get("ndcg10", ())) == (2 if args.quick else LOSS_SEEDS)
        for loss in ("sampled", "full")) and (
        (QUICK_SERVE if args.quick else SERVE)[0] in have)
    write_results(results, out_dir)
    log(f"wrote {out_dir / 'scale.json'}")
    return 0


def write_results(results: dict, out_dir: Path) -> None:
    from toolkit.core.cache import write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "scale.json", results)
    (out_dir / "SCALE.md").write_text(render(results))
    plot(results, out_dir / "scale.png")


def render(r: dict) -> str:
    commits = {c.get("commit") for c in r["catalogs"]} | {
        r[k].get("commit") for k in ("loss_comparison", "sampled_as_built") if r.get(k)}
    lines = [f"# Scaling benchmark ({r['mode']} mode)", "",
             f"Machine: {r['machine']}. Written by `python bench/scale.py` (started {r['started']}); "
             + (f"one run of the code at commit {commits.pop()}." if len(commits) == 1 else
                "sections measured by separate `--merge` runs, each with its commit (below)."),
             "Synthetic logs (bench/synthetic.py: Zipf popularity, topics, item successors; string ids).", "",
             "Items: the ids the generator draws from; where the log holds fewer (a Zipf tail), the model's "
             "catalogue, as read, is given after them.", "",
             "| items | interactions | build s | peak RSS GB | exit | NDCG@10 (best artifact) | popularity | full softmax | "
             "artifacts (bytes, 1-thread p50/p95 ms) | two-stage |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for c in r["catalogs"]:
        arts = "; ".join(f"{a['path'] if 'path' in a else a['format'] + ' ' + a.get('serving', '')} {a['bytes']:,} B "
                         f"{a['p50_ms']:.2f}/{a['p95_ms']:.2f}"
                         for a in c["artifacts"])
        ts = c.get("two_stage")
        two = (f"recall@10 {ts['recall10']:.3f}, scores {ts['items_scored_fraction']:.1%} of items, p50 "
               + ", ".join(f"{k} {v:.2f} ms" for k, v in ts["p50_ms"].items())) if ts else "-"
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        held = c.get("catalogue_items")
        items = f"{c['items']:,}" + (f" ({held:,} in the log)" if held and held != c["items"] else "")
        lines.append(f"| {items} | {c['interactions']:,} | {fmt(c['build_seconds'], '.0f')} | "
                     f"{fmt(c['peak_rss_bytes'] and c['peak_rss_bytes'] / 1e9, '.2f')} | {c.get('exit_code', '-')} | "
                     f"{fmt(c['ndcg10'], '.4f')} | {fmt(c['popularity_ndcg10'], '.4f')} | "
                     f"{fmt(c['full_softmax_ndcg10'], '.4f')} | {arts} | {two} |")
    if r.get("shapes"):
        lines += ["", "The same cold build on logs of another shape (bench/synthetic.py's `series` setting): each "
                  "loop's optimizer steps under its compute budget (toolkit/training/loop.py), * where the budget stopped it.", "",
                  "| shape | items | interactions | users | build s | peak RSS GB | exit | NDCG@10 (best artifact) | "
                  "popularity | teacher members' steps | proxies' steps (dim: steps) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for c in r["shapes"]:
            b = c.get("budgets") or {}
            teacher = ", ".join(f"{n:,}" + ("*" if k else "") for n, k in zip(b.get("teacher_steps") or [],
                                                                              b.get("teacher_capped") or []))
            proxies = ", ".join(f"{d}: {n:,}" + ("*" if int(d) in (b.get("prior_capped") or []) else "")
                                for d, n in (b.get("prior_steps") or {}).items())
            fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
            lines.append(f"| {c['shape']} | {c['items']:,} | {c['interactions']:,} | {fmt(c.get('users'), ',')} | "
                         f"{fmt(c['build_seconds'], '.0f')} | {fmt(c['peak_rss_bytes'] and c['peak_rss_bytes'] / 1e9, '.2f')} | "
                         f"{c.get('exit_code', '-')} | {fmt(c['ndcg10'], '.4f')} | {fmt(c['popularity_ndcg10'], '.4f')} | "
                         f"{teacher or '-'} | {proxies or '-'} |")
    if r.get("loss_comparison"):
        lc = r["loss_comparison"]
        lines += ["", f"Full vs sampled softmax at {lc['items']:,} items (the same dim-32 student from labels, "
                  f"{len(lc['full'])} seeds, each trained for the same {lc.get('max_steps', 0):,} optimizer steps at most, "
                  f"the best validation state kept; test NDCG@10): full {np.mean(lc['full']):.4f} "
                  f"({', '.join(f'{v:.4f}' for v in lc['full'])}), sampled {np.mean(lc['sampled']):.4f} "
                  f"({', '.join(f'{v:.4f}' for v in lc['sampled'])}): sampled loses {lc['relative_loss']:.1%}; "
                  f"training time {np.mean(lc['full_seconds']):.0f} s vs {np.mean(lc['sampled_seconds']):.0f} s."
                  + (f" Note: {lc['notes']}." if lc.get("notes") else "")]
    if r.get("sampled_as_built") and r.get("loss_comparison"):
        sb, lc = r["sampled_as_built"], r["loss_comparison"]
        cap = (f"{sb['max_steps']:,} steps at most" if sb.get("max_steps") else
               f"its compute budget, {sb.get('budget', 0):.3g} multiply-adds")
        lines += ["", f"The sampled softmax as a build trains it ({cap}, early stopping; "
                  f"same data and student, {len(sb['ndcg10'])} seeds): {_seeds(sb)}: "
                  f"{np.mean(sb['ndcg10']) / np.mean(lc['full']) - 1:+.1%} against the full softmax above "
                  f"({lc.get('max_steps', 0):,} steps, {np.median(lc['full_seconds']):.0f} s a run, median). Measured "
                  f"{sb.get('measured', '?')} ({sb.get('commit') or 'commit not recorded'})."]
    if r.get("full_as_built") and r.get("sampled_as_built"):
        fb, sb = r["full_as_built"], r["sampled_as_built"]
        done = len(fb["ndcg10"])
        lines += ["", f"The full softmax as a build would train it (the same budget and early stopping): {_seeds(fb)}"
                  + (f" ({done} of {fb['seeds']} seeds measured)" if done < fb.get("seeds", done) else "")
                  + f". Sampled against full, both as built: {np.mean(sb['ndcg10']) / np.mean(fb['ndcg10']) - 1:+.1%}"
                  + (f" ({'seed 0' if done == 1 else f'seeds 0-{done - 1}'} only: {np.mean(sb['ndcg10'][:done]) / np.mean(fb['ndcg10']) - 1:+.1%})"
                     if done < len(sb["ndcg10"]) else "")
                  + f". Measured {fb.get('measured', '?')} ({fb.get('commit') or 'commit not recorded'})."]
    if not r.get("complete", True) and not any(c["items"] >= SERVE[0] for c in r["catalogs"]):
        lines += ["", f"Not measured in this file: the {SERVE[0]:,}-item section (trained, exported and served). "
                  "Serving at that size is measured on a synthetic model in bench/serving_scale.json."]
    lines += ["", "Measured (each entry, and the loss comparison, by which code): " + "; ".join(
        f"{c['items']:,} items {c.get('measured', '?')} ({c.get('commit') or 'commit not recorded'})"
        for c in r["catalogs"]) + (f"; loss comparison {r['loss_comparison'].get('measured', '?')} "
                                   f"({r['loss_comparison'].get('commit') or 'commit not recorded'})"
                                   if r.get("loss_comparison") else "") + "."]
    for c in r["catalogs"]:
        if c.get("steps_seconds"):
            lines += ["", f"{c['items']:,} items, build time by step (s): "
                      + ", ".join(f"{k} {v:.0f}" for k, v in c["steps_seconds"].items())
                      + f"; teacher {c.get('teacher_members')} member(s), test NDCG@10 {c['teacher_ndcg10']:.4f}; "
                      f"student in PyTorch {c['student_ndcg10']:.4f}; plan {c.get('plan')}"]
        if c.get("notes"):
            lines += ["", f"{c['items']:,} items: {c['notes']}"]
    return "\n".join(lines) + "\n"


def _seeds(section: dict) -> str:
    """'mean (per seed) after N steps and S s on average' for an as-built section."""
    return (f"{np.mean(section['ndcg10']):.4f} ({', '.join(f'{v:.4f}' for v in section['ndcg10'])}) after "
            f"{np.mean(section['steps']):.0f} steps and {np.mean(section['seconds']):.0f} s on average")


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = [c for c in r["catalogs"] if c.get("build_seconds")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [c["items"] for c in built]
    a.plot(xs, [c["build_seconds"] / 60 for c in built], "o-")
    for c in built:  # which code measured it, and how it ended
        a.annotate(f"exit {c.get('exit_code')}" + (f", {c['commit']}" if c.get("commit") else ""),
                   (c["items"], c["build_seconds"] / 60), textcoords="offset points", xytext=(4, 6), fontsize=8)
    a.set_ylim(0, max((c["build_seconds"] for c in built), default=60) / 60 * 1.3)
    a.set_xlabel("items")
    a.set_ylabel("cold build, minutes")
    a.set_title("Build time against catalogue size", fontsize=10)
    mem = [c for c in r["catalogs"] if c.get("peak_rss_bytes")]
    b.plot([c["items"] for c in mem], [c["peak_rss_bytes"] / 1e9 for c in mem], "o-")
    if len(mem) >= 2:  # a line through the origin and the smallest point: linear growth would follow it
        x0, y0 = mem[0]["items"], mem[0]["peak_rss_bytes"] / 1e9
        xm = max(c["items"] for c in mem)
        line = np.geomspace(x0, xm, 20)
        b.plot(line, y0 / x0 * line, "--", color="grey", label="linear from the smallest")
        b.legend(fontsize=8)
    b.set_xscale("log")
    b.set_ylim(bottom=0)
    b.set_xlabel("items (log)")
    b.set_ylabel("peak RSS, GB")
    b.set_title("Peak memory against catalogue size", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
