"""Benchmark: the toolkit's SASRec against RecBole's, side by side (issue 26, part 6).

    python3.11 -m venv .peers && .peers/bin/pip install torch==2.13.0 recbole==1.2.1 \
        "numpy<2" "pandas<3" "scipy<1.14" "pyarrow<22" tqdm    # RecBole 1.2.1 needs NumPy 1.x
    .peers/bin/python bench/peers.py     # 3 seeds; writes bench/peers.json + bench/PEERS.md
    .peers/bin/python bench/peers.py --seeds 1      # one seed (a preliminary figure, never committed)
    python bench/peers.py --render       # only rewrite PEERS.md from peers.json
    python bench/peers.py --quick --out /tmp/peers   # 100 users, 2 epochs each: a smoke run (never committed)

RecBole 1.2.1 (`recbole.model.sequential_recommender.SASRec`, trained by its own `Trainer`) and the
toolkit's teacher member (`toolkit.training.loop.fit` on `TeacherConfig().member_config`), on the same
MovieLens-100K split and evaluation, with the same architecture (dim 32, 1 block, 1 head, FFN 128,
GELU, dropout 0.2, 50 items of history, full-softmax cross-entropy), each with its own optimiser
settings and early stopping (RecBole's defaults: Adam lr 1e-3, 2,048 sequences a batch, 10
evaluations without a better NDCG@10; the toolkit's: AdamW lr 5e-3, 128 windows a batch, patience
5), on the same 2 threads, seed by seed in one run (toolkit then RecBole, so load hits both alike).

- Same split: RecBole reads an atomic file written from the toolkit's own split, each user's
  interactions stamped 0, 1, 2, ... in the toolkit's order, so RecBole's leave-one-out by time
  ('LS' valid_and_test, order 'TO') gives the same training prefix, validation and test item.
- Same evaluation for the final figure: both trained models are scored by `toolkit.training.evaluate`
  (full ranking over every item, history excluded) on test; each model's selection is its own
  framework's validation NDCG@10 (full ranking).
- `windows_per_s`: training sequences a second in the optimisation steps alone. A toolkit window
  is up to 50 items long and trains every position's next item; a RecBole sequence is one prefix
  and trains its last position only (RecBole augments each user's history into every prefix), so
  the targets each second are also reported in PEERS.md.
- `seconds_to_best`: wall time from the first step to the end of the validation that found the
  model finally kept (training + validation), `test_ndcg10`: that model on test.

Writes bench/peers.json: {"peers": [{"name": "recbole-sasrec"|"toolkit", "dim": int,
"windows_per_s": [per seed], "seconds_to_best": [...], "test_ndcg10": [...]}]} and PEERS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREADS = 2
DIM = 32
MAX_HISTORY = 50
RECBOLE_DATASET = "peers-ml100k"


@dataclass
class Run:
    """One trainer on one seed."""

    windows_per_s: float
    targets_per_s: float
    seconds_to_best: float
    seconds: float  # the whole run, early stopping included
    epochs: int
    best_epoch: int
    valid_ndcg10: float  # its own framework's selection figure
    test_ndcg10: float  # toolkit.training.evaluate, the same for both


@dataclass
class Peer:
    name: str
    dim: int
    runs: list[Run] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "dim": self.dim, "windows_per_s": [r.windows_per_s for r in self.runs],
                "seconds_to_best": [r.seconds_to_best for r in self.runs],
                "test_ndcg10": [r.test_ndcg10 for r in self.runs]}


def toolkit_run(split, seed: int, log, epochs: int = 0) -> Run:
    """The teacher's member recipe (toolkit.teachers.ensemble.TeacherConfig), trained once with `seed`."""
    from dataclasses import replace

    from toolkit.training.evaluate import evaluate_model
    from toolkit.teachers.ensemble import TeacherConfig
    from toolkit.training.loop import fit, training_windows, window_stride

    cfg = TeacherConfig()
    member = cfg.member_config(split.num_items, MAX_HISTORY)
    train_cfg = replace(cfg.train, seed=seed, threads=THREADS, **({"epochs": epochs} if epochs else {}))
    result = fit(member, split.sealed(), train_cfg, desc=f"toolkit seed {seed}")
    windows = training_windows(split, MAX_HISTORY, window_stride(member, train_cfg))
    targets = int((windows[:, 1:] != 0).sum())
    test = evaluate_model(result.model, split, "test").ndcg
    run = Run(windows_per_s=len(windows) * result.epochs / result.step_seconds,
              targets_per_s=targets * result.epochs / result.step_seconds, seconds_to_best=result.best_seconds,
              seconds=result.seconds, epochs=result.epochs, best_epoch=result.best_epoch,
              valid_ndcg10=result.valid.ndcg, test_ndcg10=test)
    log(f"toolkit seed {seed}: {run}")
    return run


def write_recbole_dataset(split, folder: Path) -> None:
    """The split as a RecBole atomic file: user u's items in the toolkit's order, stamped 0, 1, 2, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(len(split.train)):
        items = list(split.train[u]) + [split.valid_target[u], split.test_target_[u]]
        lines += [f"u{u}\t{int(i)}\t{t}" for t, i in enumerate(items)]
    (folder / f"{RECBOLE_DATASET}.inter").write_text("\n".join(lines) + "\n")


def recbole_config(folder: Path, seed: int, epochs: int = 0) -> dict:
    return {**({"epochs": epochs} if epochs else {}),
        "data_path": str(folder.parent), "checkpoint_dir": str(folder / "saved"), "seed": seed,
        "reproducibility": True, "use_gpu": False, "device": "cpu", "show_progress": False, "worker": 0,
        "state": "WARNING", "log_wandb": False,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": MAX_HISTORY,
        # the toolkit member's architecture (toolkit/models/sasrec.py: pre-norm aside, the same block)
        "hidden_size": DIM, "inner_size": 4 * DIM, "n_layers": 1, "n_heads": 1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "loss_type": "CE", "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
    }


def recbole_run(split, seed: int, work: Path, log, epochs: int = 0) -> Run:
    """RecBole's SASRec trained by RecBole's Trainer; test measured by toolkit.training.evaluate."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    from toolkit.training.evaluate import evaluate_scores

    folder = work / RECBOLE_DATASET
    write_recbole_dataset(split, folder)
    config = Config(model="SASRec", dataset=RECBOLE_DATASET, config_dict=recbole_config(folder, seed, epochs))
    init_seed(config["seed"], config["reproducibility"])
    torch.set_num_threads(THREADS)
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = SASRec(config, train_data._dataset).to("cpu")
    # RecBole's Trainer writes its TensorBoard events and checkpoint relative to the working directory,
    # lazily (a writer thread): the whole run stays in `work`
    with contextlib.chdir(work):
        trainer = Trainer(config, model)

        clock = {"train": 0.0, "evals": []}  # training time in its optimisation steps; (time, score) per validation
        start = time.perf_counter()
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed_train(*args, **kwargs):
            t = time.perf_counter()
            out = train_epoch(*args, **kwargs)
            clock["train"] += time.perf_counter() - t
            return out

        def timed_valid(*args, **kwargs):
            score, result = valid_epoch(*args, **kwargs)
            clock["evals"].append((time.perf_counter() - start, float(score)))
            return score, result

        trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        seconds = time.perf_counter() - start
        scores = [s for _, s in clock["evals"]]
        best = int(np.argmax(scores))  # RecBole keeps the first best (a later equal score does not replace it)
        checkpoint = torch.load(trainer.saved_model_file, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()

    # RecBole numbers the items itself: our index i is its id rb[i]; its sequences are left-aligned
    tokens = dataset.field2token_id["item_id"]
    rb = np.zeros(split.num_items, dtype=np.int64)
    for i in range(1, split.num_items):
        rb[i] = tokens.get(str(i), 0)

    def score(batch: np.ndarray) -> np.ndarray:  # (B, L) left-padded toolkit indices -> (B, N) in our order
        lengths = (batch != 0).sum(1)
        aligned = np.zeros_like(batch)
        for r, (row, n) in enumerate(zip(batch, lengths)):
            aligned[r, :n] = rb[row[len(row) - n:]]
        with torch.no_grad():
            out = model.forward(torch.from_numpy(aligned), torch.from_numpy(np.maximum(lengths, 1)))
            scores = (out @ model.item_embedding.weight.T).numpy()
        ours = scores[:, rb]
        ours[:, rb == 0] = -np.inf  # an item RecBole never read (only on a slice of the users) is never ranked
        return ours

    test = evaluate_scores(score, split, "test", MAX_HISTORY, 10).ndcg
    sequences = len(train_data._dataset)
    epochs = len(scores)
    run = Run(windows_per_s=sequences * epochs / clock["train"], targets_per_s=sequences * epochs / clock["train"],
              seconds_to_best=clock["evals"][best][0], seconds=seconds, epochs=epochs, best_epoch=best + 1,
              valid_ndcg10=scores[best], test_ndcg10=test)
    log(f"recbole seed {seed}: {run}")
    return run


def mean(values: list[float]) -> float:
    return float(np.mean(values))


def epochs_text(run: dict) -> str:
    return f"{run['best_epoch']} ({run['epochs']})"


def render(results: dict) -> str:
    peers = {p["name"]: p for p in results["peers"]}
    extra = {p["name"]: p for p in results["runs"]}
    tk, rb = peers["toolkit"], peers["recbole-sasrec"]
    speed = mean(rb["seconds_to_best"]) / mean(tk["seconds_to_best"])
    lines = ["# Peers: the toolkit's SASRec and RecBole's, side by side", "",
             f"Machine: {results['machine']}; {THREADS} threads; started {results['started']}; commit "
             f"{results['commit']}. Written by `python bench/peers.py` (its docstring says what is compared and "
             "how).", "",
             "MovieLens-100K, the toolkit's leave-one-out split; dim 32, 1 block, 1 head, 50 items of history, "
             "full softmax; test NDCG@10 by `toolkit.training.evaluate` (full ranking) for both; mean over seeds "
             f"{results['seeds']}.", "",
             "| | sequences / s | targets / s | seconds to best | epochs to best (of run) | valid NDCG@10 | "
             "test NDCG@10 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("toolkit", "recbole-sasrec"):
        p, runs = peers[name], extra[name]["runs"]
        lines.append(f"| {name} | {mean(p['windows_per_s']):,.0f} | {mean([r['targets_per_s'] for r in runs]):,.0f} | "
                     f"{mean(p['seconds_to_best']):.1f} | "
                     f"{', '.join(epochs_text(r) for r in runs)} | "
                     f"{mean([r['valid_ndcg10'] for r in runs]):.4f} | {mean(p['test_ndcg10']):.4f} "
                     f"({', '.join(f'{x:.4f}' for x in p['test_ndcg10'])}) |")
    ok = speed >= 2 and mean(tk["test_ndcg10"]) >= mean(rb["test_ndcg10"])
    lines += ["", f"Goal: the toolkit reaches its best ≥ 2× faster to an equal or better test NDCG@10: "
              f"{'MET' if ok else 'MISSED'} ({speed:.1f}× faster to its best; test NDCG@10 "
              f"{mean(tk['test_ndcg10']):.4f} vs {mean(rb['test_ndcg10']):.4f}).", "",
              "A toolkit window trains every position's next item; a RecBole sequence (one prefix of a user's "
              "history) trains its last position only, so sequences / s are not the same unit: targets / s is.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import platform
    import subprocess

    import torch

    from toolkit.data import first_users, load_dataset, split_leave_one_out

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--render", action="store_true", help="only rewrite PEERS.md from peers.json")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--quick", action="store_true", help="100 users, 2 epochs each (a smoke run)")
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads((args.out / "peers.json").read_text())
        (args.out / "PEERS.md").write_text(render(results))
        return 0
    torch.set_num_threads(THREADS)
    dataset = load_dataset()
    split = split_leave_one_out(first_users(dataset, 100) if args.quick else dataset)
    epochs = 2 if args.quick else 0
    peers = {"toolkit": Peer("toolkit", DIM), "recbole-sasrec": Peer("recbole-sasrec", DIM)}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="peers.") as work:
        for seed in range(args.seeds):
            peers["toolkit"].runs.append(toolkit_run(split, seed, print, epochs))
            peers["recbole-sasrec"].runs.append(recbole_run(split, seed, Path(work) / f"seed{seed}", print, epochs))
    results = {"peers": [p.to_dict() for p in peers.values()],
               "runs": [{"name": p.name, "runs": [r.__dict__ for r in p.runs]} for p in peers.values()],
               "seeds": list(range(args.seeds)), "commit": commit.strip(), "started": started,
               "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "PEERS.md").write_text(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
