"""The teacher's soft labels on the student's (fixed) training windows, computed once: full
log-probabilities (W, T, N) on a small catalogue, else its top-K per position (`teacher_top_k`, an
exact inner-product search for the toolkit's own models); a teacher that brings its own labels (a
scores file, a cached external module) answers itself (`soft_labels`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from toolkit.data import Split
from toolkit.training.distill.relational import relational_inputs
from toolkit.training.loop import TrainConfig, training_windows
from toolkit.training.losses import use_sampled

if TYPE_CHECKING:
    from toolkit.training.distill.config import DistillConfig

TEACHER_CACHE_MAX_BYTES = 2_000_000_000  # a full (W, T, N) fp16 cache above this: the top-K form
TEACHER_CACHE_BATCH = 256
SCORE_CHUNK_ELEMENTS = 1 << 24  # scores held at once when the catalogue is searched without faiss


def teacher_log_probs(teacher, windows, temperature: float):
    """The teacher's log-probabilities at `temperature` on every training window, once, in fp16: (W, T, N).

    The windows are the same every epoch (only their order changes), so the teacher runs once
    instead of once per epoch, and its softmax is taken once too: distillation then costs little
    more than plain training.
    """
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for i in range(0, len(windows), TEACHER_CACHE_BATCH):
            logits = teacher(windows[i:i + TEACHER_CACHE_BATCH, :-1])
            out.append(F.log_softmax(logits / temperature, dim=-1).to(torch.float16))
    return torch.cat(out)


def teacher_top_k(teacher, windows, temperature: float, k: int):
    """The teacher's k best items per position of every training window and their log-probabilities
    at `temperature`, renormalised over those k: (ids int32 (W, T, k), log-probabilities fp16 (W, T, k)),
    never a (W, T, N) tensor.

    A toolkit model (SASRec, Ensemble) needs one pass: the mean of its members' log-softmax differs
    from the mean of their raw scores by a per-position constant, which the renormalisation over the
    k items removes, so the top-k is an exact inner-product search of the concatenated member states
    against the concatenated member item tables (faiss when installed, else chunked matmuls). Any
    other teacher module is called on small batches and reduced at once.
    """
    import torch
    import torch.nn.functional as F

    ids, values = [], []
    with torch.no_grad():
        if hasattr(teacher, "member_states"):
            for i in range(0, len(windows), TEACHER_CACHE_BATCH):
                queries, table = teacher.member_states(windows[i:i + TEACHER_CACHE_BATCH, :-1])  # (B, T, E), (N, E)
                b, t, e = queries.shape
                v, x = top_inner_products(queries.reshape(b * t, e) / temperature, table, k)
                ids.append(x.reshape(b, t, k).to(torch.int32))
                values.append(F.log_softmax(v.reshape(b, t, k), dim=-1).to(torch.float16))
        else:
            t = windows.shape[1] - 1
            batch = max(1, TEACHER_CACHE_MAX_BYTES // 8 // max(1, t * teacher_items(teacher, windows)))
            for i in range(0, len(windows), batch):
                v, x = torch.topk(teacher(windows[i:i + batch, :-1]).float() / temperature, k, -1)
                ids.append(x.to(torch.int32))
                values.append(F.log_softmax(v, dim=-1).to(torch.float16))
    return torch.cat(ids), torch.cat(values)


def top_inner_products(queries, table, k: int):
    """Exact top-k of queries (Q, E) @ table (N, E).T without the (Q, N) matrix: faiss's flat
    inner-product search (blocked GEMM + heaps) when installed, else torch in row chunks. Row 0 of
    the table (padding) is never returned."""
    import torch

    table = table.clone()
    table[0] = 0.0
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None:
        index = faiss.IndexFlatIP(table.shape[1])
        index.add(table.float().contiguous().numpy())
        v, x = index.search(queries.float().contiguous().numpy(), k + 1)
        v, x = torch.from_numpy(v), torch.from_numpy(x).long()
    else:
        out_v, out_x = [], []
        rows = max(1, SCORE_CHUNK_ELEMENTS // max(1, table.shape[0]))
        for s in range(0, len(queries), rows):
            sv, sx = torch.topk(queries[s:s + rows] @ table.T, k + 1, dim=1)
            out_v.append(sv)
            out_x.append(sx)
        v, x = torch.cat(out_v), torch.cat(out_x)
    # drop padding wherever it landed (its score is 0, it can be among the best): keep k of k + 1
    keep = torch.argsort((x == 0).to(torch.int8), dim=1, stable=True)[:, :k]
    return torch.gather(v, 1, keep), torch.gather(x, 1, keep)


def teacher_items(teacher, windows) -> int:
    import torch

    with torch.no_grad():
        return int(teacher(windows[:1, :-1]).shape[-1])


@dataclass
class SoftLabels:
    """A teacher's answer on the fixed training windows, computed once (`soft_labels`) and shared by
    every distillation of a build (the plan's students, the compression fine-tunes).

    log_probs: full log-probabilities (W, T, N) fp16 (`ids` None), or the teacher's top-K per
    position (`ids` (W, T, K) int32, `log_probs` (W, T, K) fp16, -inf pads a shorter list);
    `covered` (W, T) bool marks the positions the teacher answered (None: all of them).
    `full`: the student's loss takes its whole softmax (small catalogue), else sampled negatives.
    `item_vectors` / `item_neighbours`: what the relational term needs (a teacher with item vectors
    and graph neighbours), else None.
    """

    log_probs: object  # torch.Tensor
    ids: object = None
    covered: object = None
    windows: object = None  # torch int64 (W, T + 1): the windows the labels are for
    temperature: float | None = None
    full: bool = True
    item_vectors: object = None  # (N, D') unit rows
    item_neighbours: object = None  # (N, C) item indices, 0-padded


def soft_labels(teacher, split: Split, max_history: int, train_cfg: TrainConfig, cfg: DistillConfig) -> SoftLabels:
    """The one way the student side gets a teacher's soft labels, whatever the teacher is, on the
    training windows a student of `max_history` trains on: a teacher with its own `soft_labels`
    (precomputed scores, a cached external module) answers; any other module is run on the windows,
    full (W, T, N) when the catalogue and the cache are small, else its top-K."""
    import torch

    if isinstance(teacher, SoftLabels):
        return teacher
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    stride = train_cfg.window_stride or max_history
    windows = torch.from_numpy(training_windows(split, max_history, stride))
    full = (not use_sampled(split.num_items, train_cfg)
            and windows.shape[0] * (windows.shape[1] - 1) * split.num_items * 2 <= TEACHER_CACHE_MAX_BYTES)
    if hasattr(teacher, "soft_labels"):
        labels = teacher.soft_labels(split, windows, max_history, stride, cfg.temperature, cfg.top_k, full)
    elif full:
        labels = SoftLabels(log_probs=teacher_log_probs(teacher, windows, cfg.temperature))
    else:
        ids, values = teacher_top_k(teacher, windows, cfg.temperature, cfg.top_k)
        labels = SoftLabels(log_probs=values, ids=ids)
    vectors, neighbours = relational_inputs(teacher, split, cfg)
    return replace(labels, windows=windows, temperature=cfg.temperature, full=full, item_vectors=vectors,
                   item_neighbours=neighbours)
