"""Knowledge distillation: the student learns from the labels and from the teacher's soft outputs.

    L = (1 - α) · CE(student, next item) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

on every position whose target is a real item. T² keeps the soft term's gradients on the same
scale as the hard term's when T changes (Hinton et al., 2015). The teacher's outputs on the
(fixed) training windows are computed once, before the first epoch, in one of two forms:

- full (the catalogue's softmax is exact, `toolkit.training.loop.use_sampled` is False, and the cache fits
  `TEACHER_CACHE_MAX_BYTES`): log-probabilities over every item, fp16, (W, T, N); KL over all N.
- top-K (large catalogues): the teacher's `top_k` best items and their log-probabilities per
  position, int32 ids + fp16, (W, T, K): memory O(windows x K), not O(windows x items). The
  student's distribution is taken over those K items plus the batch's sampled negatives (logQ
  corrected, those already among the K masked); the teacher's over its K items, renormalised. The
  hard term is the sampled softmax of toolkit/training/loop.py with the same negatives.

Whatever the teacher is (the ensemble, the knowledge-graph teacher, a user's module, a file of
precomputed scores), the student side gets its soft labels through one function, `soft_labels`:
a teacher that brings its own (`toolkit.teachers.scores.ScoresTeacher`: a top-K per position, with the
positions it covers) answers itself; any other module is run on the windows. Positions a teacher
does not cover keep the hard label only (α = 0 there). A top-K teacher on a small catalogue is
distilled against the student's full softmax (exact KL for a teacher supported on its K items).

Relational term (β > 0, off by default: measured, it does not help, see `DistillConfig.relational`;
when the teacher has item vectors, `item_embeddings`, and graph neighbours: the knowledge-graph
teacher): the student's item table learns the teacher's item-item similarities, what a
knowledge-graph teacher knows about items that the interactions barely show (tail items):

    L_rel = β · mean over anchors a of KL(softmax(cos_T(a, C_a) / τ) ‖ softmax(cos_S(a, C_a) / τ))

anchors drawn uniformly from the catalogue each step, candidates C_a = some of the anchor's graph
neighbours (`teacher.item_neighbours`, over-sampled: they are where the knowledge is) + random items.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from toolkit.data import Split
from toolkit.training.loop import TrainConfig, TrainResult, fit, training_windows, use_sampled, window_stride

TEACHER_CACHE_MAX_BYTES = 2_000_000_000  # a full (W, T, N) fp16 cache above this: the top-K form
TEACHER_CACHE_BATCH = 256
SCORE_CHUNK_ELEMENTS = 1 << 24  # scores held at once when the catalogue is searched without faiss


@dataclass
class DistillConfig:
    alpha: float = 0.5  # weight of the teacher term
    temperature: float = 1.0  # measured, dim-16 student, 2 seeds: T=1 valid NDCG@10 0.124, T=2 0.123, scratch 0.117
    top_k: int = 64  # top-K form: the teacher's items kept per position
    # β, weight of the relational term (0: off), for teachers with item vectors and graph neighbours (the kg
    # teacher). Off: measured on validation (dim-16 students from the kg teacher, NDCG@10), it does not help
    # and can hurt: MovieLens-100K, 3 seeds, mean 0.1236 with β = 1 vs 0.1245 without; a synthetic log
    # with its true topics as the graph (2,000 items, 20,000 interactions, 3 seeds): 0.1746 vs 0.1944, its
    # item table pulled to the teacher's topic clusters (bench/teachers.py, bench/TEACHERS.md)
    relational: float = 0.0
    relational_anchors: int = 256  # anchor items per step
    relational_neighbours: int = 8  # graph neighbours per anchor (over-sampled)
    relational_random: int = 24  # random items per anchor
    relational_temperature: float = 0.1  # τ of the similarity distributions

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


def relational_inputs(teacher, split: Split, cfg: DistillConfig):
    """The teacher's unit item vectors and graph neighbours for the relational term, or (None, None):
    β = 0, or a teacher without item vectors or graph neighbours (measured, the term does not help
    the ID-only ensemble's students; see DistillConfig)."""
    neighbours = getattr(teacher, "item_neighbours", None)
    if not cfg.relational or neighbours is None:
        return None, None
    vectors = item_embeddings(teacher)
    if vectors is None or vectors.shape[0] != split.num_items:
        return None, None
    return vectors, neighbours


def item_embeddings(teacher):
    """The teacher's item vectors for relational distillation: (N, D) unit rows, or None when the
    teacher has none (a module that is not a toolkit model, a scores file). An ensemble's members
    are concatenated (each unit-normalised, scaled by 1/sqrt(members)), so a cosine similarity of
    its rows is the mean of the members'."""
    members = getattr(teacher, "members", None)
    if members is None:
        members = [teacher] if hasattr(getattr(teacher, "items", None), "weight") else []
    if not members:
        return None
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        parts = [F.normalize(m.items.weight().float(), dim=-1) for m in members]
        return torch.cat(parts, dim=-1) / len(parts) ** 0.5


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
    from toolkit.models.user_model import is_user_model

    # a user's module (`--student MODULE:FACTORY`) has no item table: no relational term, and its
    # scores over every item are there anyway, so a top-K teacher is distilled against its full softmax
    user = is_user_model(init)
    relational = None
    if labels.item_vectors is not None and distill_cfg.relational and not user:
        relational = RelationalTerm(labels.item_vectors, labels.item_neighbours, distill_cfg, train_cfg.seed)
    loss_fn = (FullDistillation(labels, distill_cfg, relational) if labels.full or user
               else TopKDistillation(labels, split, train_cfg, distill_cfg, relational))
    return fit(student_cfg, split, train_cfg, loss_fn=loss_fn, init=init, desc=desc, world=world)


class RelationalTerm:
    """β · KL between the teacher's and the student's item-item similarity distributions (module docstring)."""

    def __init__(self, teacher_vectors, neighbours, cfg: DistillConfig, seed: int):
        import torch

        self.teacher = teacher_vectors  # (N, D') unit rows
        self.neighbours = neighbours  # (N, C) item indices, 0-padded, or None
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model):
        """The term's mean over anchors (a scalar tensor)."""
        import torch
        import torch.nn.functional as F

        cfg, g = self.cfg, self.generator
        n = self.teacher.shape[0]
        anchors = torch.randint(1, n, (cfg.relational_anchors,), generator=g)  # (A,)
        candidates = [torch.randint(1, n, (len(anchors), cfg.relational_random), generator=g)]
        if self.neighbours is not None and cfg.relational_neighbours:
            near = self.neighbours[anchors]  # (A, C)
            pick = torch.randint(0, near.shape[1], (len(anchors), cfg.relational_neighbours), generator=g)
            near = torch.gather(near, 1, pick)
            # an anchor without (enough) neighbours gets random items in their place
            near = torch.where(near > 0, near, torch.randint(1, n, near.shape, generator=g))
            candidates.append(near)
        cand = torch.cat(candidates, dim=1)  # (A, C')
        t = (self.teacher[anchors][:, None, :] * self.teacher[cand]).sum(-1)  # (A, C') cosines
        table = F.normalize(model.items.weight(), dim=-1)
        s = (table[anchors][:, None, :] * table[cand]).sum(-1)
        tau = cfg.relational_temperature
        log_t, log_s = F.log_softmax(t / tau, dim=-1), F.log_softmax(s / tau, dim=-1)
        return (log_t.exp() * (log_t - log_s)).sum(-1).mean()


def _with_relational(loss, positions: int, relational, model, cfg: DistillConfig):
    """The step divides the loss by `positions`: the relational mean is scaled to survive that."""
    if relational is None or positions == 0:
        return loss
    return loss + cfg.relational * relational(model) * positions


class FullDistillation:
    """Full form: KL over every item against the cached teacher labels: (W, T, N) log-probabilities,
    or a top-K teacher's K items against the student's full softmax."""

    def __init__(self, labels: SoftLabels, cfg: DistillConfig, relational=None):
        self.labels = labels
        self.cfg = cfg
        self.relational = relational

    def __call__(self, model, inputs, targets, rows):
        from toolkit.training.loop import position_logits

        valid = targets != 0
        logits, target = position_logits(model, inputs, targets)  # (P, N)
        lab = self.labels
        if lab.ids is None and lab.covered is None:
            loss = distillation_loss(logits, lab.log_probs[rows][valid], target, self.cfg)
        else:
            covered = None if lab.covered is None else lab.covered[rows][valid]
            ids = None if lab.ids is None else lab.ids[rows][valid].long()
            loss = partial_distillation_loss(logits, lab.log_probs[rows][valid], ids, covered, target, self.cfg)
        return _with_relational(loss, len(target), self.relational, model, self.cfg), len(target)


def partial_distillation_loss(student_logits, teacher_values, teacher_ids, covered, targets, cfg: DistillConfig):
    """Full student softmax against a teacher that may give only its top-K (`teacher_ids` (P, K),
    `teacher_values` (P, K) log-probabilities or scores, -inf pads) and only some positions
    (`covered` (P,) bool; None = all): summed over positions; an uncovered position has the hard
    term only, at full weight."""
    import torch
    import torch.nn.functional as F

    temp = cfg.temperature
    log_p = F.log_softmax(student_logits, dim=-1)
    hard = F.nll_loss(log_p, targets, reduction="none")  # (P,)
    log_q = log_p if temp == 1.0 else F.log_softmax(student_logits / temp, dim=-1)
    values = teacher_values.float()
    if covered is not None:  # an unanswered row may be all -inf: made finite so no NaN reaches the gradient
        values = torch.where(covered[:, None], values, torch.zeros_like(values))
    teacher = F.log_softmax(values, dim=-1)  # renormalised over what it gave
    if teacher_ids is not None:
        log_q = torch.gather(log_q, 1, teacher_ids)
    p = teacher.exp()
    soft = (p * (teacher.masked_fill(p == 0, 0.0) - log_q)).sum(-1)  # (P,) KL; 0 · (-inf) terms dropped
    if covered is None:
        return ((1.0 - cfg.alpha) * hard + cfg.alpha * temp * temp * soft).sum()
    alpha = cfg.alpha * covered.to(hard.dtype)
    return ((1.0 - alpha) * hard + alpha * temp * temp * torch.where(covered, soft, torch.zeros_like(soft))).sum()


class TopKDistillation:
    """Top-K form: the teacher's K items (cached) plus the batch's sampled negatives."""

    def __init__(self, labels: SoftLabels, split: Split, train_cfg: TrainConfig, cfg: DistillConfig, relational=None):
        from toolkit.training.loop import SampledSoftmax

        assert labels.ids is not None, "the top-K form needs a top-K teacher"
        self.ids, self.log_probs, self.covered = labels.ids, labels.log_probs, labels.covered
        self.sampled = SampledSoftmax(split, train_cfg)
        self.cfg = cfg
        self.relational = relational

    def __call__(self, model, inputs, targets, rows):
        import torch

        from toolkit.training.loop import target_positions

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
        if self.covered is None:
            loss = topk_distillation_loss(student_top, student_negatives, top_lp, hard, self.cfg)
        else:  # positions the teacher did not answer: the hard term alone, at full weight
            covered = self.covered[rows][valid]
            soft = topk_distillation_loss(student_top[covered], student_negatives[covered], top_lp[covered],
                                          hard[covered], self.cfg)
            plain = replace(self.cfg, alpha=0.0)
            loss = soft + topk_distillation_loss(student_top[~covered], student_negatives[~covered], top_lp[~covered],
                                                 hard[~covered], plain)
        return _with_relational(loss, len(target), self.relational, model, self.cfg), len(target)
