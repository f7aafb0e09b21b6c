"""Teacher training throughput: 1 process x 1 thread against 2 processes x 1 thread (torchrun +
DistributedDataParallel, gloo) on MovieLens-100K, with the validation NDCG@10 of both.

    python bench/distributed.py                      # writes bench/distributed.json and bench/DISTRIBUTED.md
    python bench/distributed.py --epochs 10 --repeats 1   # quicker

Both sides train the same thing: one teacher member (`TeacherConfig` defaults, the mobile-arm
profile's history), `--epochs` epochs exactly (no early stopping), seeds 0..repeats-1, the global
batch the same (`TrainConfig.batch_size`: each of 2 ranks takes half). Each run is a fresh process
tree: `python bench/distributed.py --worker` for 1 x 1, `torchrun --standalone --nproc_per_node=2
bench/distributed.py --worker` for 2 x 1, OMP_NUM_THREADS=1 and `TrainConfig.threads=1` on both.

Throughput = training windows x epochs / seconds inside the optimisation steps (`fit`'s
`step_seconds`): validation is excluded (rank 0 evaluates alone while the other waits), and is in
the wall seconds. NDCG@10: the kept (best-epoch) state, full ranking over every item, all users.
The host's load over each run is recorded (`toolkit.profiler.host.LoadMonitor`): the speed-up means
something on a quiet machine only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LAYOUTS = {"1x1": 1, "2x1": 2}  # processes x 1 thread each
GOAL_SPEEDUP = 1.7  # issue 14: 2 x 1 reaches at least this multiple of 1 x 1's windows/s on 2 cores


@dataclass
class BenchConfig:
    epochs: int = 20
    repeats: int = 3  # seeds 0..repeats-1, each on both layouts (alternating); the seeds' spread is the noise
    profile: str = "mobile-arm"  # its max_history shapes the windows
    timeout_s: int = 1800  # one run, both layouts


def worker(epochs: int, seed: int, profile_name: str, result: Path) -> None:
    """One training run in this process (rank of a torchrun, or alone); rank 0 writes `result`."""
    from toolkit.data import load_dataset, split_leave_one_out
    from toolkit.training.distributed import DistributedConfig, join
    from toolkit.core.profiles import load_profile
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.loop import fit, training_windows, window_stride

    teacher = TeacherConfig()
    train_cfg = replace(teacher.train, epochs=epochs, min_steps=10**9, patience=epochs, threads=1, seed=seed)
    split = split_leave_one_out(load_dataset()).sealed()
    member = teacher.member_config(split.num_items, load_profile(profile_name).serving.max_history)
    with join(DistributedConfig()) as world:
        start = time.perf_counter()
        trained = fit(member, split, train_cfg, desc=f"{world.size}x1 seed {seed}", world=world)
        wall = time.perf_counter() - start
    if world.is_main:
        windows = len(training_windows(split, member.max_history, window_stride(member, train_cfg)))
        result.write_text(json.dumps({
            "processes": world.size, "backend": world.backend, "seed": seed, "epochs": trained.epochs,
            "windows_per_epoch": windows, "step_seconds": trained.step_seconds, "wall_seconds": wall,
            "windows_per_s": windows * trained.epochs / trained.step_seconds,
            "valid_ndcg10": trained.valid.ndcg, "valid_users": trained.valid.users,
            "train_config": train_cfg.to_dict(), "model_config": member.to_dict()}))


def run(layout: str, seed: int, cfg: BenchConfig) -> dict:
    """One fresh run of `layout`, with the host's load over it."""
    from toolkit.profiler.host import LoadMonitor

    processes = LAYOUTS[layout]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        args = [str(Path(__file__).resolve()), "--worker", "--epochs", str(cfg.epochs), "--seed", str(seed),
                "--profile", cfg.profile, "--result", str(result)]
        launcher = [sys.executable] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        with LoadMonitor() as monitor:
            done = subprocess.run(launcher + args, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=cfg.timeout_s)
        if done.returncode != 0 or not result.is_file():
            raise SystemExit(f"{layout} seed {seed} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        figures = json.loads(result.read_text())
    figures.update(layout=layout, load=monitor.load.to_dict(), load_text=monitor.load.text())
    print(f"  {layout} seed {seed}: {figures['windows_per_s']:.0f} windows/s, valid NDCG@10 "
          f"{figures['valid_ndcg10']:.4f} ({monitor.load.text()})", flush=True)
    return figures


def summarise(runs: list[dict]) -> dict:
    by = {layout: [r for r in runs if r["layout"] == layout] for layout in LAYOUTS}
    speedups = [two["windows_per_s"] / one["windows_per_s"] for one, two in zip(by["1x1"], by["2x1"])]
    busy = [r["load"]["others_busy_fraction"] for r in runs if r["load"]["others_busy_fraction"] is not None]
    ndcg = {k: [r["valid_ndcg10"] for r in v] for k, v in by.items()}
    sd = {k: statistics.stdev(v) if len(v) > 1 else None for k, v in ndcg.items()}
    difference = statistics.mean(ndcg["2x1"]) - statistics.mean(ndcg["1x1"])
    # the noise of that difference: the seeds' spread on each side (standard error of a difference of means)
    noise = (None if None in sd.values() else
             (sd["1x1"] ** 2 / len(ndcg["1x1"]) + sd["2x1"] ** 2 / len(ndcg["2x1"])) ** 0.5)
    return {
        "windows_per_s": {k: statistics.median(r["windows_per_s"] for r in v) for k, v in by.items()},
        "speedup_2x1_over_1x1": statistics.median(speedups),
        "speedups_per_seed": speedups,
        "goal_speedup": GOAL_SPEEDUP,
        "valid_ndcg10": ndcg,
        "valid_ndcg10_mean": {k: statistics.mean(v) for k, v in ndcg.items()},
        "valid_ndcg10_sd_over_seeds": sd,
        "valid_ndcg10_difference_2x1_minus_1x1": difference,
        "valid_ndcg10_difference_standard_error": noise,
        "valid_ndcg10_within_noise": None if noise is None else abs(difference) <= 2 * noise,
        "others_busy_fraction_max": max(busy) if busy else None,
    }


def write(out_dir: Path, cfg: BenchConfig, runs: list[dict], summary: dict) -> None:
    import torch

    machine = {"cpus": os.cpu_count(), "machine": platform.machine(), "processor": platform.processor(),
               "python": platform.python_version(), "torch": torch.__version__}
    (out_dir / "distributed.json").write_text(json.dumps(
        {"config": asdict(cfg), "machine": machine, "summary": summary, "runs": runs,
         "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    w, n = summary["windows_per_s"], summary["valid_ndcg10"]
    busy = summary["others_busy_fraction_max"]
    lines = [
        "# Teacher training on 2 processes (torchrun + DDP, gloo) against 1",
        "",
        f"MovieLens-100K, one teacher member (TeacherConfig defaults), {cfg.epochs} epochs exactly, "
        f"seeds 0..{cfg.repeats - 1}, each process 1 thread, on {machine['cpus']} CPUs (torch {machine['torch']}). "
        "Throughput: training windows / second inside the optimisation steps (validation excluded); "
        "NDCG@10: validation, full ranking, all users, the kept state. Made by `python bench/distributed.py`.",
        "",
        "| layout | windows/s (median) | valid NDCG@10 per seed |",
        "|---|---|---|",
        *(f"| {k} | {w[k]:.0f} | {', '.join(f'{x:.4f}' for x in n[k])} |" for k in LAYOUTS),
        "",
        f"Speed-up 2x1 over 1x1: **{summary['speedup_2x1_over_1x1']:.2f}x** (per seed: "
        f"{', '.join(f'{s:.2f}' for s in summary['speedups_per_seed'])}; goal {GOAL_SPEEDUP}x).",
        "",
        f"Valid NDCG@10, 2x1 minus 1x1: {summary['valid_ndcg10_difference_2x1_minus_1x1']:+.4f}"
        + ("" if summary["valid_ndcg10_difference_standard_error"] is None else
           f" (standard error from the seeds' spread {summary['valid_ndcg10_difference_standard_error']:.4f}: "
           + ("within" if summary["valid_ndcg10_within_noise"] else "OUTSIDE") + " noise, |difference| <= 2 SE)"),
        "",
        "Host load while measuring: other processes used up to "
        + ("an unknown share" if busy is None else f"{busy:.0%}") + " of the CPUs (per run in distributed.json, "
        "`toolkit.profiler.host.LoadMonitor`)."
        + (" Throughput measured next to other work is not the machine's, and the speed-up is biased upward "
           "there (two runnable processes get a larger share of contended CPUs than one): re-run on a quiet "
           "machine before quoting it." if busy is None or busy > 0.05 else " The machine was quiet.")
        + (" A speed-up above 2x on 2 cores says one process with one thread uses its core less efficiently "
           "than two half-batch processes use theirs (not investigated; smaller per-rank batches are one "
           "candidate)." if summary["speedup_2x1_over_1x1"] > 2 else ""),
        "",
    ]
    (out_dir / "DISTRIBUTED.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--profile")
    parser.add_argument("--out", type=Path, default=HERE, help="where distributed.json and DISTRIBUTED.md go")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = replace(BenchConfig(), **{k: getattr(args, k) for k in ("epochs", "repeats", "profile")
                                    if getattr(args, k) is not None})
    if args.worker:
        worker(cfg.epochs, args.seed, cfg.profile, args.result)
        return 0
    runs = []
    for seed in range(cfg.repeats):
        for layout in LAYOUTS:  # alternating: a change in the host's load hits both
            runs.append(run(layout, seed, cfg))
    summary = summarise(runs)
    write(args.out, cfg, runs, summary)
    print(f"2x1 / 1x1 windows/s: {summary['speedup_2x1_over_1x1']:.2f}x; valid NDCG@10 "
          f"{summary['valid_ndcg10_mean']['1x1']:.4f} vs {summary['valid_ndcg10_mean']['2x1']:.4f}; "
          f"written to {args.out}/distributed.json and DISTRIBUTED.md")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
