"""Knowledge distillation: the student learns from the labels and from the teacher's soft outputs.

    L = (1 - α) · CE(student, next item) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

on every position whose target is a real item. T² keeps the soft term's gradients on the same
scale as the hard term's when T changes (Hinton et al., 2015). The teacher's outputs on the
(fixed) training windows are computed once, before the first epoch, in one of two forms:

- full (the catalogue's softmax is exact, `toolkit.train.use_sampled` is False, and the cache fits
  `TEACHER_CACHE_MAX_BYTES`): log-probabilities over every item, fp16, (W, T, N); KL over all N.
- top-K (large catalogues): the teacher's `top_k` best items and their log-probabilities per
  position, int32 ids + fp16, (W, T, K): memory O(windows x K), not O(windows x items). The
  student's distribution is taken over those K items plus the batch's sampled negatives (logQ
  corrected, those already among the K masked); the teacher's over its K items, renormalised. The
  hard term is the sampled softmax of toolkit/train.py with the same negatives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from toolkit.data import Split
from toolkit.train import TrainConfig, TrainResult, fit, training_windows, use_sampled, window_stride

TEACHER_CACHE_MAX_BYTES = 2_000_000_000  # a full (W, T, N) fp16 cache above this: the top-K form
TEACHER_CACHE_BATCH = 256
SCORE_CHUNK_ELEMENTS = 1 << 24  # scores held at once when the catalogue is searched without faiss


@dataclass
class DistillConfig:
    alpha: float = 0.5  # weight of the teacher term
    temperature: float = 1.0  # measured, dim-16 student, 2 seeds: T=1 valid NDCG@10 0.124, T=2 0.123, scratch 0.117
    top_k: int = 64  # top-K form: the teacher's items kept per position

    def to_dict(self) -> dict:
        return asdict(self)


def distillation_loss(student_logits, teacher_log_probs, targets, cfg: DistillConfig):
    """Full form, summed over positions: student logits (P, N), the teacher's log-probabilities at
    `cfg.temperature` (P, N), targets (P,)."""
    import torch.nn.functional as F

    t = teacher_log_probs.float()
    temp = cfg.temperature
    log_p = F.log_softmax(student_logits, dim=-1)
    hard = F.nll_loss(log_p, targets, reduction="sum")
    log_q = log_p if temp == 1.0 else F.log_softmax(student_logits / temp, dim=-1)  # T = 1: one softmax serves both
    soft = F.kl_div(log_q, t, reduction="sum", log_target=True)
    return (1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft


def topk_distillation_loss(student_top, student_negatives, teacher_top, targets_logits, cfg: DistillConfig):
    """Top-K form, summed over positions.

    student_top (P, K): the student's logits of the teacher's K items; student_negatives (P, M): its
    corrected logits of the sampled negatives (-inf where masked); teacher_top (P, K): the teacher's
    log-probabilities of its K items at `cfg.temperature`; targets_logits (P, 1 + M): the sampled
    softmax logits with the target first (the hard term)."""
    import torch
    import torch.nn.functional as F

    temp = cfg.temperature
    hard = F.cross_entropy(targets_logits, torch.zeros(len(targets_logits), dtype=torch.long), reduction="sum")
    student = F.log_softmax(torch.cat([student_top, student_negatives], dim=1) / temp, dim=1)[:, : student_top.shape[1]]
    teacher = F.log_softmax(teacher_top.float(), dim=1)  # its K items, renormalised
    soft = (teacher.exp() * (teacher - student)).sum()
    return (1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft


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
    """The teacher's outputs on the fixed training windows, computed once and shared by every
    distillation of a build (the plan's students, the compression fine-tunes).

    full: (W, T, N) fp16 log-probabilities (small catalogues); else top_ids / top_log_probs (W, T, K).
    """

    windows: object  # torch int64 (W, T + 1): the windows the labels are for
    temperature: float
    full: object | None = None
    top_ids: object | None = None
    top_log_probs: object | None = None


def soft_labels(teacher, split: Split, max_history: int, train_cfg: TrainConfig, cfg: DistillConfig) -> SoftLabels:
    """The teacher's outputs on the training windows a student of `max_history` trains on."""
    import torch

    if isinstance(teacher, SoftLabels):
        return teacher
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    windows = torch.from_numpy(training_windows(split, max_history, train_cfg.window_stride or max_history))
    full = (not use_sampled(split.num_items, train_cfg)
            and windows.shape[0] * (windows.shape[1] - 1) * split.num_items * 2 <= TEACHER_CACHE_MAX_BYTES)
    if full:
        return SoftLabels(windows, cfg.temperature, full=teacher_log_probs(teacher, windows, cfg.temperature))
    ids, log_probs = teacher_top_k(teacher, windows, cfg.temperature, cfg.top_k)
    return SoftLabels(windows, cfg.temperature, top_ids=ids, top_log_probs=log_probs)


def distill(teacher, student_cfg, split: Split, train_cfg: TrainConfig, distill_cfg: DistillConfig, init=None,
            desc: str = "distill", world=None) -> TrainResult:
    """Train a student of `student_cfg` (a ModelConfig; or fine-tune `init`) against the frozen
    teacher, or against `SoftLabels` already computed from it (`soft_labels`); on the ranks of
    `world` when given (the teacher's cached outputs stay outside DDP, see `fit`)."""
    import torch

    labels = soft_labels(teacher, split, student_cfg.max_history, train_cfg, distill_cfg)
    windows = torch.from_numpy(training_windows(split, student_cfg.max_history, window_stride(student_cfg, train_cfg)))
    assert torch.equal(labels.windows, windows) and labels.temperature == distill_cfg.temperature, \
        "soft labels computed for other windows or another temperature"
    loss_fn = (FullDistillation(labels, distill_cfg) if labels.full is not None
               else TopKDistillation(labels, split, train_cfg, distill_cfg))
    return fit(student_cfg, split, train_cfg, loss_fn=loss_fn, init=init, desc=desc, world=world)


class FullDistillation:
    """Full form: KL over every item against the cached (W, T, N) teacher log-probabilities."""

    def __init__(self, labels: SoftLabels, cfg: DistillConfig):
        self.cached = labels.full
        self.cfg = cfg

    def __call__(self, model, inputs, targets, rows):
        from toolkit.train import target_positions

        valid = targets != 0
        hidden, target = target_positions(model, inputs, targets)
        teacher = self.cached[rows][valid]  # (P, N)
        return distillation_loss(model.items.scores(hidden), teacher, target, self.cfg), len(target)


class TopKDistillation:
    """Top-K form: the teacher's K items (cached) plus the batch's sampled negatives."""

    def __init__(self, labels: SoftLabels, split: Split, train_cfg: TrainConfig, cfg: DistillConfig):
        from toolkit.train import SampledSoftmax

        self.ids, self.log_probs = labels.top_ids, labels.top_log_probs
        self.sampled = SampledSoftmax(split, train_cfg)
        self.cfg = cfg

    def __call__(self, model, inputs, targets, rows):
        import torch

        from toolkit.train import target_positions

        valid = targets != 0
        hidden, target = target_positions(model, inputs, targets)
        top_ids = self.ids[rows][valid].long()  # (P, K)
        top_lp = self.log_probs[rows][valid]  # (P, K)
        negatives = torch.unique(self.sampled.negatives.draw())  # (M',) sorted
        hard = self.sampled.logits(model, hidden, target, negatives)  # (P, 1 + M'), the target first
        student_top = (hidden[:, None, :] * model.items.lookup(top_ids)).sum(-1)  # (P, K)
        # a negative that is among the position's K items is already counted there: masked
        where = torch.searchsorted(negatives, top_ids).clamp_(max=len(negatives) - 1)  # (P, K)
        hit = negatives[where] == top_ids
        mask = torch.zeros(hard.shape[0], len(negatives), dtype=torch.bool)
        mask[torch.nonzero(hit, as_tuple=True)[0], where[hit]] = True
        student_negatives = hard[:, 1:].masked_fill(mask, float("-inf"))
        return topk_distillation_loss(student_top, student_negatives, top_lp, hard, self.cfg), len(target)
