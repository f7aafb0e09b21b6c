"""Training: full-softmax next-item cross-entropy on every position, AdamW, early stopping.

`fit` is the one training loop; the teacher uses it with plain cross-entropy, distillation
(`toolkit.distill`) passes a loss that also sees the teacher's logits. Training examples are
sliding windows over each user's training prefix: a window of `max_history + 1` items gives the
inputs (all but the last) and the next-item targets (all but the first) at every position.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.data import Split
from toolkit.errors import ToolkitError
from toolkit.evaluate import Metrics, evaluate_model, pad_histories

# torch is imported inside the functions: `import toolkit.pipeline` (the CLI's checks) stays light
# (logits (B, T, N), targets (B, T), inputs (B, T), rows (B,) indices into training_windows) -> loss
LossFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 0.01
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    min_epochs: int = 15  # never stop before: a factorized table can sit on a plateau for ~10 epochs
    window_stride: int = 0  # 0 means max_history: windows do not overlap, each target is seen once an epoch
    seed: int = 0
    threads: int = 0  # 0 = torch default

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: object  # the trained SASRec
    valid: Metrics
    epochs: int
    seconds: float


def training_windows(split: Split, max_history: int, stride: int) -> np.ndarray:
    """All windows of length max_history + 1 over the training prefixes, left-padded: (W, T+1)."""
    windows = []
    for seq in split.train:
        if len(seq) < 2:
            continue
        end = len(seq)
        while True:
            windows.append(seq[max(0, end - max_history - 1):end])
            if end - max_history - 1 <= 0:
                break
            end -= stride
    if not windows:
        raise ToolkitError("no user has 2 or more training interactions (4 or more in all: the last two are "
                           "validation and test), so there is nothing to train on")
    return pad_histories(windows, max_history + 1)


def window_stride(cfg, train_cfg: TrainConfig) -> int:
    return train_cfg.window_stride or cfg.max_history


def cross_entropy(logits, targets, inputs=None, rows=None):
    """Full-softmax next-item CE over positions whose target is a real item. logits (B, T, N)."""
    import torch.nn.functional as F

    valid = targets != 0
    return F.cross_entropy(logits[valid], targets[valid])


def fit(cfg, split: Split, train_cfg: TrainConfig, loss_fn: LossFn = cross_entropy, init=None,
        desc: str = "train") -> TrainResult:
    """Train a model (fresh from `cfg`, or continuing `init`) and keep its best validation state.

    A fine-tune (`init` given) keeps its starting weights when no epoch beats them on validation.
    Selection reads validation only (NDCG@10 over the full catalogue).
    """
    import torch
    from tqdm import tqdm

    from toolkit.models import SASRec

    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    model = init if init is not None else SASRec(cfg)
    for p in model.parameters():  # a model that served as a (frozen) teacher trains again
        p.requires_grad_(True)
    windows = torch.from_numpy(training_windows(split, cfg.max_history, window_stride(cfg, train_cfg)))
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    best, best_state, best_epoch, epoch = None, copy.deepcopy(model.state_dict()), 0, 0
    if init is not None:  # the starting point competes: a fine-tune that never beats it keeps it
        best = evaluate_model(model, split, "valid")
    start = time.perf_counter()
    bar = tqdm(range(1, train_cfg.epochs + 1), desc=desc, unit="epoch", leave=False, disable=None)
    for epoch in bar:
        model.train()
        order = torch.from_numpy(rng.permutation(len(windows)))
        total = 0.0
        for i in range(0, len(order), train_cfg.batch_size):
            rows = order[i:i + train_cfg.batch_size]
            batch = windows[rows]
            inputs, targets = batch[:, :-1], batch[:, 1:]
            loss = loss_fn(model(inputs), targets, inputs, rows)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        valid = evaluate_model(model, split, "valid")
        bar.set_postfix(loss=f"{total / len(windows):.3f}", val_ndcg10=f"{valid.ndcg:.4f}")
        if bar.disable:  # no terminal (a log file, CI): one line per epoch instead of a bar
            print(f"  {desc} epoch {epoch}: loss {total / len(windows):.3f}, valid NDCG@10 {valid.ndcg:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        if best is None or valid.ndcg > best.ndcg:
            best, best_state, best_epoch = valid, copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= train_cfg.patience and epoch >= train_cfg.min_epochs:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, valid=best, epochs=epoch, seconds=time.perf_counter() - start)
