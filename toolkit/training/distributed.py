"""Training on several processes or machines with PyTorch's own engine: torchrun + DistributedDataParallel.

`python -m toolkit train-teacher` runs under `torchrun`; `join` reads this process's place from the
environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT), starts the process
group (gloo on CPU, NCCL when CUDA is present: one code path) and tears it down. A `World` is then
passed to `toolkit.training.loop.fit`, whose one training loop reads the same on one process (`SINGLE`:
every method below is the identity there) and on many:

- sharding: every rank draws the same epoch order (same seed) and takes every size-th row of each
  global batch (what DistributedSampler does, without its padding). The global batch is the
  one-process batch: `TrainConfig.batch_size` windows a step whatever the world size, so a teacher
  trained on 2 ranks is the same teacher config (the cache key leaves the world size out). Every
  rank runs the same steps; shards differ by at most one row, never by a step, so nothing waits on
  a rank that has finished (a rank whose share of the last batch is empty still joins the step).
- gradients: DDP averages them over the ranks. A rank's loss is its sum over target positions
  divided by the GLOBAL number of positions (one all-reduce) times the world size, so the average
  is exactly the one-process gradient of the batch. The sampled softmax's negatives come from a
  generator seeded alike on every rank, drawn once a step: the same negatives everywhere.
- rank 0 evaluates, logs and writes the cache; its validation figures are broadcast and every rank
  applies the same early-stopping rule to them, so all stop at the same epoch with the same state.
- failure: a rank that dies closes its connections and the others' next collective fails at once;
  a rank that hangs is given up after `DistributedConfig.timeout_s`. `join` turns either into a
  `RankLostError` with one line, after tearing the process group down (exiting without that aborts).

torch is imported inside the functions: importing this module is light (the CLI reads
`DistributedConfig` for its --help).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from toolkit.core.errors import ToolkitError

# the environment torchrun sets for every worker (launching by hand: set them the same way)
LAUNCH_VARIABLES = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class DistributedConfig:
    # a collective waits this long for the other ranks: longer than rank 0 alone takes to evaluate an
    # epoch (the others wait for its figures) and than its cache check at the start
    timeout_s: float = 600.0


class RankLostError(Exception):
    """Another rank died or stopped answering: this one gives up (one line, see `join`)."""


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one training run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # its index on its own machine (which GPU it drives)
    backend: str | None = None  # "gloo" | "nccl"; None on one process
    device: str = "cpu"  # where its model trains: "cpu", or "cuda:<local_rank>" with NCCL

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: evaluates, decides, logs and writes."""
        return self.rank == 0

    def trained_with(self) -> dict:
        """What a model trained here records (the teacher cache, the manifest)."""
        return {"world_size": self.size, "backend": self.backend}

    def shard(self, rows):
        """This rank's rows of a global batch (B,): every size-th one, starting at its rank."""
        return rows[self.rank::self.size] if self.distributed else rows

    def rank_seed(self, seed: int) -> int:
        """A seed of its own for each rank (its dropout masks), from the run's seed."""
        import numpy as np

        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def data_parallel(self, model, loss_fn):
        """`(inputs, targets, rows) -> (loss sum, positions)` of `loss_fn` on `model`: on several ranks
        through DistributedDataParallel, which averages the gradients of `model` over them."""
        if not self.distributed:
            return lambda inputs, targets, rows: loss_fn(model, inputs, targets, rows)
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(_loss_module(model, loss_fn), device_ids=device_ids)

    def sum(self, loss_sum, positions: int) -> tuple[object, int]:
        """(loss sum, positions) of the global batch: summed over the ranks (one all-reduce)."""
        if not self.distributed:
            return loss_sum.detach(), positions
        import torch
        import torch.distributed as dist

        both = torch.tensor([float(loss_sum.detach()), float(positions)], dtype=torch.float64, device=self.device)
        dist.all_reduce(both)
        return both[0], int(both[1].item())

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (any picklable object; the others pass anything)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, value, what: str) -> None:
        """Every rank must hold the same `value` (e.g. the teacher key: data, settings and code): a
        ToolkitError on every rank otherwise, naming the ranks that differ from rank 0."""
        if not self.distributed:
            return
        import torch.distributed as dist

        values = [None] * self.size
        dist.all_gather_object(values, value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise ToolkitError(f"rank(s) {', '.join(map(str, differ))} of {self.size} have another {what} than "
                               "rank 0: every rank must read the same data file, flags and toolkit code")

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first, the others after it (a first download into the cache)."""
        if not self.is_main:
            self._barrier()
        yield
        if self.is_main:
            self._barrier()

    def on_host(self, model):
        """`model` where numpy-fed code (evaluation) can run it: itself on CPU, a CPU copy otherwise."""
        if self.device == "cpu":
            return model
        import copy

        return copy.deepcopy(model).cpu()

    def _barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(device_ids=[self.local_rank] if self.backend == "nccl" else None)


SINGLE = World()


def _loss_module(model, loss_fn):
    """`loss_fn` on `model` as a module whose forward is the loss: DDP arms its gradient hooks in
    forward, and the loss functions call the model's parts (encode, the item table), not its forward.
    `model` is its only submodule, so only the trained model is synchronised: a loss that holds a
    (frozen) teacher keeps it outside DDP."""
    from torch import nn

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, inputs, targets, rows):
            return loss_fn(self.model, inputs, targets, rows)

    return Loss()


def world_from_environment(cfg: DistributedConfig) -> World:
    """This process's world as torchrun describes it; the process group is started when it has
    more than one rank. Backend from the device: NCCL when CUDA is present, gloo otherwise."""
    size = _env_int("WORLD_SIZE", 1)
    if size == 1:
        return SINGLE
    missing = [v for v in LAUNCH_VARIABLES if v not in os.environ]
    if missing:
        raise ToolkitError(f"WORLD_SIZE={size} but {', '.join(missing)} not set: launch with torchrun "
                           "(torchrun --standalone --nproc_per_node=N -m toolkit train-teacher ...)")
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if not 0 <= rank < size:
        raise ToolkitError(f"RANK={rank} is not in 0..{size - 1} (WORLD_SIZE={size})")
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ToolkitError(f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPU(s): "
                               "start at most that many processes per machine (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", f"cuda:{local_rank}"
    else:
        backend, device = "gloo", "cpu"
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=size,
                            timeout=timedelta(seconds=cfg.timeout_s))
    return World(rank=rank, size=size, local_rank=local_rank, backend=backend, device=device)


@contextlib.contextmanager
def join(cfg: DistributedConfig) -> Iterator[World]:
    """`with join(cfg) as world:` this process's world for the block, the process group torn down
    after it. A rank that died or did not answer within `cfg.timeout_s` raises RankLostError."""
    world = world_from_environment(cfg)
    try:
        yield world
    except RuntimeError as e:  # the collectives' errors (gloo raises plain RuntimeError, NCCL DistError)
        if world.distributed and is_peer_failure(e):
            raise RankLostError(f"rank {world.rank} of {world.size} lost another rank ({_first_sentence(e)}): a rank "
                                f"died or did not answer within {cfg.timeout_s:.0f} s; the rank that failed first "
                                "says why in its own output (torchrun's summary names it)") from e
        raise
    finally:
        if world.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def is_peer_failure(error: BaseException) -> bool:
    """An error raised by a collective because another rank failed (closed, reset, timed out)."""
    import torch.distributed as dist

    return isinstance(error, dist.DistError) or "gloo" in str(error).lower()


def _first_sentence(error: BaseException) -> str:
    """"Connection closed by peer [127.0.0.1]:8117" from gloo's "[.../pair.cc:553] Connection closed by
    peer [127.0.0.1]:8117. This is typically caused by ..."."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(error).split()))  # its source location
    return text.split(". ")[0][:200]


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ToolkitError(f"environment variable {name}={text!r}: expected an integer") from None
