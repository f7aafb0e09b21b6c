"""Training: next-item cross-entropy on every position, AdamW, early stopping on validation.

`fit` is the one training loop; the teacher uses it with plain cross-entropy, distillation
(`toolkit.training.distill`) passes a loss that also sees the teacher's outputs. Training examples are
windows over each user's training prefix: a window of `max_history + 1` items gives the inputs
(all but the last) and the next-item targets (all but the first) at every position.

The softmax over the catalogue (`next_item_loss`) is exact while it is cheap and sampled when it is
not, so a step's cost does not grow with the catalogue:
- full: logits over every item for every real target position, (P, N) floats;
- sampled: the target against `negatives` items shared by the batch, drawn from the training
  popularity^0.75, each logit corrected by -log(expected count) (logQ correction, Bengio & Senecal
  2008; Yi et al. 2019), accidental hits masked: (P, M) floats whatever N is.
Rule (`TrainConfig.loss = "auto"`): full up to `FULL_SOFTMAX_MAX_ITEMS` items, sampled above; the
measured quality cost of sampling is in bench/scale.json.

Every loop has a compute budget (`TrainConfig.budget`, multiply-adds), turned into a step count by
the loop's own cost per step (`loop_budget`): every position of a batch through the blocks, every
real target position scored against the items its loss reads (all N, or the sampled negatives),
backward (x2) and the optimizer's update of every parameter, plus the validation after each epoch
spread over the epoch's steps. A full-softmax step at 6,000 items costs ~3x one at MovieLens-100K's
1,682, so it gets a third of the steps: the budget bounds each loop's work, not its step count,
and is deterministic (no wall clock). It is sized not to bind on MovieLens-100K; a loop it stops
is `capped` (in the log; the teacher's and the priors' in the manifest too).

A loss function returns (sum over target positions, number of positions): the step divides, so
the same code averages correctly when positions are spread over processes. On several processes
(`world`, toolkit/training/distributed.py: torchrun + DistributedDataParallel) each rank takes its share of
every batch, the step divides by the global number of positions, rank 0 evaluates and decides.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from toolkit.data import Split
from toolkit.core.errors import ToolkitError
from toolkit.training.evaluate import Metrics, evaluate_model, pad_histories
from toolkit.training.losses import LossFn, full_softmax, next_item_loss, use_sampled

# torch is imported inside the functions: `import toolkit.recipe.build` (the CLI's checks) stays light
# (model, inputs (B, T), targets (B, T), rows (B,) indices into training_windows) -> (loss sum, positions)
# --- training budgets (see the module docstring): work in multiply-adds -----------------------------
BACKWARD_FACTOR = 3  # a step's forward + backward: the backward of a matmul costs two more of its forward
# a logit's own work beyond its dot product, in multiply-adds: writing it, the softmax, the loss and their
# gradients are passes over the (positions x items) logits whatever the width, and they dominate a step
# (CPU time of one step, one thread, 2-core host, dim 8/16/32/64: MovieLens-100K 123/115/128/165 ms,
# 6,000 items 337/318/341/432 ms; dims 32 -> 64 fit 118-170). The sampled softmax also gathers, masks and
# concatenates its negatives: at 50,000 items (2,049 scored) a step took 233 ms, 1.8x MovieLens's 128 ms
# for 1.1x its logits
LOGIT_WORK = 150
SAMPLED_LOGIT_WORK = 300
# AdamW's update of one parameter (dense: the item table's every row, each step), in multiply-adds of
# the host's matmuls: one step over 1.6M parameters took as long as 23-40 multiply-adds a parameter in
# a (5000 x 32) x (32 x 50000) matmul (2-core host, one thread, 3 runs)
OPTIMIZER_WORK_PER_PARAMETER = 30
# the work of one step of a MovieLens-100K dim-32 member (1,682 items, 2,412 windows of 50, ~40 targets
# each, 19 steps an epoch): what the budgets below are counted in (`loop_budget` measures it; a test checks it)
MOVIELENS_MEMBER_STEP = 5.1e9
# a model trained from scratch (a teacher member, a prior's proxy, the student, the plan's candidate):
# 1,200 MovieLens member steps, 63 epochs, 2.6x what seed 0's first member takes there (24 epochs: best
# at 19 + patience 5; 650-900 steps the most seen); a dim-8 proxy there gets 77 epochs, a dim-64 one 47.
# Issue 26's logs: 6,000 items / 133,508 interactions (full softmax, 3.0x MovieLens's step) ~400 steps,
# 14 epochs (their members had run 36-56); 50,000 items / 1M (sampled, 1.9x) ~600 steps, ~3 epochs
MEMBER_BUDGET = 1_200 * MOVIELENS_MEMBER_STEP


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 5e-3
    weight_decay: float = 0.01
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    # never stop before this many optimizer steps: 15 epochs of MovieLens-100K (2,412 windows, 19 steps an
    # epoch), where early quality plateaus; a large log reaches it within an epoch or two
    min_steps: int = 270
    # compute budget of the loop, multiply-adds (`loop_budget` turns it into steps from the loop's own
    # step cost; it stops at that step, the best validation state kept); 0 = none
    budget: float = MEMBER_BUDGET
    max_steps: int = 0  # an explicit cap on optimizer steps besides the budget (benchmarks); 0 = none
    window_stride: int = 0  # 0 means max_history: windows do not overlap, each target is seen once an epoch
    seed: int = 0
    threads: int = 0  # 0 = torch default
    loss: str = "auto"  # "full" | "sampled" | "auto" (full up to FULL_SOFTMAX_MAX_ITEMS items)
    negatives: int = 2048  # sampled softmax: negatives shared by one batch
    eval_users: int = 5_000  # early stopping reads at most this many validation users (a fixed sample); 0 = all

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoopBudget:
    """One loop's compute budget as optimizer steps, from its own cost per step (module docstring)."""

    work: float  # the budget, multiply-adds (0: none)
    step_work: float  # one step's multiply-adds: forward, backward, update, and its share of validation
    steps: int  # the most optimizer steps the budget allows (0: no cap)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: object  # the trained SASRec
    valid: Metrics
    epochs: int
    seconds: float
    step_seconds: float = 0.0  # in the optimisation steps only (validation excluded): what throughput is read from
    steps: int = 0  # optimizer steps taken
    capped: bool = False  # stopped by its budget (or `TrainConfig.max_steps`), not by early stopping
    budget: LoopBudget | None = None  # what it was allowed
    best_epoch: int = 0  # the epoch whose state was kept (0: a fine-tune that kept its starting weights)
    best_seconds: float = 0.0  # from the first step to the end of that epoch's validation

    @property
    def work(self) -> float:
        """Multiply-adds spent (its steps at the loop's cost per step)."""
        return self.steps * self.budget.step_work if self.budget else 0.0


def loop_budget(cfg, windows: np.ndarray, validation_users: int, parameters: int, train_cfg: TrainConfig) -> LoopBudget:
    """The steps `train_cfg.budget` allows a loop training a model of `cfg` (a ModelConfig) on
    `windows` (W, T+1), validated on `validation_users` after each epoch, with `parameters`
    trained parameters; the explicit `train_cfg.max_steps` applies as well."""
    sampled = use_sampled(cfg.num_items, train_cfg)
    scored, logit = (train_cfg.negatives + 1, SAMPLED_LOGIT_WORK) if sampled else (cfg.num_items, LOGIT_WORK)
    d, t = cfg.dim, cfg.max_history
    steps_per_epoch = -(-len(windows) // train_cfg.batch_size)
    block = cfg.layers * (4 * d * d + 2 * d * cfg.hidden + 2 * t * d)  # one position through the blocks
    score = cfg.embedding_rank or d  # a factorized table scores through its rank
    targets = int(np.count_nonzero(windows[:, 1:]))
    epoch = (BACKWARD_FACTOR * (windows.shape[0] * t * block + targets * scored * (score + logit))
             + steps_per_epoch * OPTIMIZER_WORK_PER_PARAMETER * parameters
             + validation_users * (t * block + (cfg.num_items - 1) * (score + LOGIT_WORK)))  # validation: every item
    step_work = epoch / steps_per_epoch
    caps = ([int(train_cfg.budget // step_work)] if train_cfg.budget else []) + (
        [train_cfg.max_steps] if train_cfg.max_steps else [])
    return LoopBudget(work=train_cfg.budget, step_work=step_work, steps=max(1, min(caps)) if caps else 0)


def fit_budget(cfg, split: Split, train_cfg: TrainConfig, parameters: int | None = None) -> LoopBudget:
    """The budget `fit` gives a loop training `cfg` (a ModelConfig; `parameters` trained, default a
    fresh SASRec's) on `split` with `train_cfg`: what a caller can read before training."""
    if parameters is None:
        from toolkit.models.sasrec import SASRec

        parameters = sum(p.numel() for p in SASRec(cfg).parameters())
    selection = split.evaluated_on(train_cfg.eval_users, train_cfg.seed)
    validated = len(selection.train) if selection.eval_rows is None else len(selection.eval_rows)
    return loop_budget(cfg, training_windows(split, cfg.max_history, window_stride(cfg, train_cfg)), validated,
                       parameters, train_cfg)


def module_loop_budget(model, windows: np.ndarray, validation_users: int, train_cfg: TrainConfig) -> LoopBudget:
    """`loop_budget` for a user's module (toolkit.models.user_model.UserModel), whose shape the toolkit
    does not know: one window's forward multiply-adds are counted on real windows (torch's FLOP
    counter, multiply-adds = FLOPs / 2; they include its scores over every item), then the same terms
    as `loop_budget` (backward, the logits' own work, the optimizer, validation). Its loss is always the
    full softmax (the module scores every item anyway)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    probe = torch.from_numpy(windows[:min(len(windows), 8), :-1])
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(probe)
    model.train(was_training)
    window = counter.get_total_flops() / 2 / len(probe)  # one window's forward, multiply-adds
    n = model.cfg.num_items
    parameters = sum(p.numel() for p in model.parameters())
    steps_per_epoch = -(-len(windows) // train_cfg.batch_size)
    targets = int(np.count_nonzero(windows[:, 1:]))
    epoch = (BACKWARD_FACTOR * (windows.shape[0] * window + targets * n * LOGIT_WORK)
             + steps_per_epoch * OPTIMIZER_WORK_PER_PARAMETER * parameters
             + validation_users * (window + (n - 1) * LOGIT_WORK))
    step_work = epoch / steps_per_epoch
    caps = ([int(train_cfg.budget // step_work)] if train_cfg.budget else []) + (
        [train_cfg.max_steps] if train_cfg.max_steps else [])
    return LoopBudget(work=train_cfg.budget, step_work=step_work, steps=max(1, min(caps)) if caps else 0)


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


def fit(cfg, split: Split, train_cfg: TrainConfig, loss_fn: LossFn | None = None, init=None,
        desc: str = "train", world=None) -> TrainResult:
    """Train a model (fresh from `cfg`, or continuing `init`) and keep its best validation state.

    A fine-tune (`init` given) keeps its starting weights when no epoch beats them on validation.
    Selection reads validation only (NDCG@10 over the full catalogue).

    `world` (toolkit.training.distributed.World; default one process): on several ranks each takes every
    size-th window of each batch and DistributedDataParallel averages the gradients. The batch is
    global (`train_cfg.batch_size` windows whatever the world size), so the result does not depend
    on the world size, up to float summation order and dropout masks. Every rank returns the same
    model, on the CPU.
    """
    import torch
    from tqdm import tqdm

    from toolkit.training.distributed import SINGLE
    from toolkit.models.sasrec import SASRec
    from toolkit.models.user_model import is_user_model

    world = world or SINGLE
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    model = init if init is not None else SASRec(cfg)
    for p in model.parameters():  # a model that served as a (frozen) teacher trains again
        p.requires_grad_(True)
    if world.distributed:  # same initial weights everywhere; the ranks' rows differ, so must their dropout masks
        model.to(world.device)
        torch.manual_seed(world.rank_seed(train_cfg.seed))
    user = is_user_model(model)  # a user's module: the generic path (full softmax through model(history))
    loss_fn = loss_fn or (full_softmax if user else next_item_loss(split, train_cfg))
    windows = torch.from_numpy(training_windows(split, cfg.max_history, window_stride(cfg, train_cfg)))
    selection = split.evaluated_on(train_cfg.eval_users, train_cfg.seed)  # what early stopping reads
    step = world.data_parallel(model, loss_fn)  # (inputs, targets, rows) -> this rank's (loss sum, positions)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)

    def validate():  # rank 0 evaluates; every rank gets its figures, so all take the same decisions
        return world.broadcast(evaluate_model(world.on_host(model), selection, "valid") if world.is_main else None)

    best, best_state, best_epoch, epoch, capped = None, copy.deepcopy(model.state_dict()), 0, 0, False
    best_seconds = 0.0
    if init is not None:  # the starting point competes: a fine-tune that never beats it keeps it
        best = validate()
    if user:
        validated = len(selection.train) if selection.eval_rows is None else len(selection.eval_rows)
        budget = module_loop_budget(model, windows.numpy(), validated, train_cfg)
    else:
        budget = fit_budget(cfg, split, train_cfg, sum(p.numel() for p in model.parameters()))
    steps_per_epoch = -(-len(windows) // train_cfg.batch_size)
    steps, start, step_seconds = 0, time.perf_counter(), 0.0
    bar = tqdm(range(1, train_cfg.epochs + 1), desc=desc, unit="epoch", leave=False,
               disable=None if world.is_main else True)
    for epoch in bar:
        model.train()
        order = torch.from_numpy(rng.permutation(len(windows)))
        total = 0.0
        steps_start = time.perf_counter()
        for i in range(0, len(order), train_cfg.batch_size):
            chosen = order[i:i + train_cfg.batch_size]
            rows = world.shard(chosen)  # this rank's share of the batch (all of it on one process)
            batch = windows[rows].to(world.device)
            inputs, targets = batch[:, :-1], batch[:, 1:]
            loss_sum, positions = step(inputs, targets, rows)
            summed, positions = world.sum(loss_sum, positions)  # the global batch's, over the ranks
            # the mean over the global batch's positions; DDP averages the ranks' gradients, hence x size
            loss = loss_sum / (max(positions, 1) / world.size)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += (summed / max(positions, 1)).item() * len(chosen)
            steps += 1
            if steps == budget.steps:  # the budget is spent: validate what it bought, then stop
                break
        step_seconds += time.perf_counter() - steps_start
        valid = validate()
        bar.set_postfix(loss=f"{total / len(windows):.3f}", val_ndcg10=f"{valid.ndcg:.4f}")
        if bar.disable and world.is_main:  # no terminal (a log file, CI): one line per epoch instead of a bar
            print(f"  {desc} epoch {epoch}: loss {total / len(windows):.3f}, valid NDCG@10 {valid.ndcg:.4f} "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        if best is None or valid.ndcg > best.ndcg:
            best, best_state, best_epoch = valid, copy.deepcopy(model.state_dict()), epoch
            best_seconds = time.perf_counter() - start
        elif epoch - best_epoch >= train_cfg.patience and epoch * steps_per_epoch >= train_cfg.min_steps:
            break
        if steps == budget.steps:
            capped = True
            if world.is_main:
                print(f"  {desc}: capped at {steps:,} steps ({epoch} epochs of {steps_per_epoch}) by its budget of "
                      f"{budget.work:.3g} multiply-adds ({budget.step_work:.3g} a step; TrainConfig.budget)",
                      file=sys.stderr, flush=True)
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model.cpu(), valid=best, epochs=epoch, seconds=time.perf_counter() - start,
                       step_seconds=step_seconds, steps=steps, capped=capped, budget=budget,
                       best_epoch=best_epoch, best_seconds=best_seconds)
