"""Two-stage on-device top-K with static shapes: score a few clusters, then only their members.

Exhaustive serving scores all N items per request; at 10^6 items that is the whole cost. Here the
items are clustered offline (faiss k-means on the model's output vectors `weight()`), the clusters
are made capacity-balanced (at most S = ceil(α·N/C) members each), and the items are relabelled
so every cluster is a contiguous index range: cluster c owns [start_c, start_c + size_c). The
serving graph then needs no membership table, only C starts and sizes:

    stage 1  hidden (1, D) · centroidsᵀ (D, C)           a linear with constant weights (XNNPACK)
             top `probe` clusters                          topk over C
    stage 2  member ids start_c + arange(S), probe·S      static shape; slots ≥ size_c masked
             their scores                                  gathered rows · hidden, a batched matmul
                                                           (XNNPACK); a PQ table: its LUTs
             history items masked, topk(candidates)        only C + probe·S items scored

The artifact keeps the contract of `export.serving.ServingModel` (history (1, L) in the relabelled
index space; scores and items (1, K), best first, no padding, no history item). The pipeline
relabels the model (`permute_items_`) and writes items.json in the same order (`ClusterIndex.order`),
so an app sees nothing but the contract.

`choose_probe` picks the smallest probe whose recall@10 against exhaustive scoring of the same
model reaches the target on validation histories.

Shapes: B batch, L history, N items (padding 0 included), D width, C clusters, S capacity,
P = probe·S candidates scored in stage 2.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from export.cluster_index import ClusterIndex, guaranteed_candidates, min_probe, table_rows
from toolkit.core.errors import ToolkitError

RECALL_TARGET = 0.96  # recall@10 the probe is chosen for on validation histories: held-out recall stays >= 0.95
# (0.95 chosen on 300 histories gave 0.942-0.949 held out)
RECALL_K = 10
EXHAUSTIVE_BATCH = 32  # histories per PyTorch batch when every item is scored: (B, N) fp32 scores
CANDIDATE_ROWS_PER_BATCH = 1 << 20  # two-stage candidates decoded per PyTorch batch (128 MB at D = 32)


# --- the serving graph -----------------------------------------------------------------------

def member_scores(table: nn.Module, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Scores of the listed items only: hidden (B, D), ids (B, P) -> (B, P).

    Gathers the rows (dequantizing or decoding only those) and runs one batched matmul, which
    XNNPACK delegates. A PQ table's `rows` skips the padding mask of `lookup` (the caller masks
    the padding slots itself).
    """
    b, p = ids.shape
    flat = ids.reshape(-1)
    rows = table.rows(flat) if hasattr(table, "rows") else table.lookup(flat)  # (B·P, D)
    return torch.bmm(rows.reshape(b, p, -1), hidden.unsqueeze(-1)).reshape(b, p)


class TwoStageServing(nn.Module):
    """`ServingModel`'s contract, scoring C centroids + probe·S cluster members instead of N items.

    Args:
        model: a SASRec already relabelled with `permute_items_(model, index.order)`.
        candidates: K, the items returned.
        index: the clusters (`build_index`), in the same relabelled space.
        probe: clusters scored in stage 2.
    """

    def __init__(self, model: nn.Module, candidates: int, index: ClusterIndex, probe: int,
                 allow_repeats: bool = False):
        super().__init__()
        self.allow_repeats = allow_repeats  # history items stay answers (a build's --repeats allow)
        self.model = copy.deepcopy(model).eval()
        table = getattr(self.model, "items", None)
        rows = table_rows(table)
        if rows != index.num_items:
            raise ToolkitError(f"two-stage serving: the model has {rows} item rows, the index {index.num_items}")
        if not 1 <= probe <= index.clusters:
            raise ToolkitError(f"TwoStageServing.probe: {probe} not valid; valid: 1..{index.clusters}")
        history = self.model.cfg.max_history
        worst = guaranteed_candidates(index, probe, history)
        if candidates < 1 or candidates > worst:
            raise ToolkitError(f"TwoStageServing.candidates: {candidates} not valid; valid: 1..{max(worst, 0)} (the "
                               f"{probe} smallest clusters minus a full history of {history}); raise probe to at "
                               f"least {min_probe(index, max(candidates, 1), history)}")
        if getattr(table, "embedding", None) is not None:
            table.embedding.padding_idx = None  # as in ServingModel: a plain embedding lookup
        self.top_k = candidates
        self.probe = probe
        self.capacity = index.capacity
        self.items_scored = index.items_scored(probe)
        self.register_buffer("centroids", torch.from_numpy(index.centroids).float())  # (C, D)
        self.register_buffer("starts", torch.from_numpy(index.starts).long())  # (C,)
        self.register_buffer("sizes", torch.from_numpy(index.sizes).long())  # (C,)
        self.register_buffer("slots", torch.arange(index.capacity, dtype=torch.int64))  # (S,)
        # where probed cluster p's slot s sits in the candidate list: p·S + s
        self.register_buffer("firsts", torch.arange(probe, dtype=torch.int64) * index.capacity)  # (probe,)

    def forward(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = history.shape[0]
        p = self.probe * self.capacity
        hidden = self.model.encode(history, last_only=True).reshape(b, -1)  # (B, D)
        # stage 1: the C centroids, a linear with constant weights (XNNPACK's fully connected)
        _, top = torch.topk(F.linear(hidden, self.centroids), self.probe, dim=1)  # (B, probe)
        start, size = self.starts[top], self.sizes[top]  # (B, probe)
        # stage 2: every probed cluster's slots; the slots past its size read item 0 and are masked
        real = self.slots < size.unsqueeze(-1)  # (B, probe, S)
        ids = torch.where(real, start.unsqueeze(-1) + self.slots, 0).reshape(b, p)  # (B, P)
        scores = member_scores(self.model.items, hidden, ids)  # (B, P)
        scores = torch.where(ids == 0, float("-inf"), scores)
        if not self.allow_repeats:
            scores = self._mask_history(scores, history, top)
        values, at = torch.topk(scores, self.top_k, dim=1)  # (B, K)
        return values, torch.gather(ids, 1, at)

    def _mask_history(self, scores: torch.Tensor, history: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
        """-inf at the candidate slots holding a history item, found from the contiguous layout:
        L·C comparisons and one scatter instead of comparing all P candidates with all L items."""
        b, p = scores.shape
        cluster = (history.unsqueeze(-1) >= self.starts[1:]).sum(-1)  # (B, L): the cluster of each item
        offset = history - self.starts[cluster]  # (B, L): its slot in that cluster
        probed = (cluster.unsqueeze(-1) == top.unsqueeze(1)) & (history != 0).unsqueeze(-1)  # (B, L, probe)
        where = torch.where(probed, self.firsts + offset.unsqueeze(-1), p)  # (B, L, probe); p = a spare slot
        padded = F.pad(scores, (0, 1))  # (B, P + 1)
        return padded.scatter(1, where.reshape(b, -1), float("-inf"))[:, :p]


# --- quality ---------------------------------------------------------------------------------

def _as_histories(histories) -> torch.Tensor:
    return torch.as_tensor(np.asarray(histories), dtype=torch.int64)


def _batch_for(serving: nn.Module) -> int:
    """Histories per PyTorch batch: a two-stage graph decodes probe·S rows for each, so its batch is
    bounded by CANDIDATE_ROWS_PER_BATCH (a large probe over 10^6 items would otherwise allocate
    gigabytes); the exhaustive graph allocates (B, N) scores."""
    scored = getattr(serving, "items_scored", None)
    return EXHAUSTIVE_BATCH if scored is None else max(1, min(EXHAUSTIVE_BATCH, CANDIDATE_ROWS_PER_BATCH // scored))


def top_items(serving: nn.Module, histories, k: int, batch: int | None = None) -> np.ndarray:
    """The first k items a serving module returns for each history (B, L) -> (B, k), in batches."""
    h = _as_histories(histories)
    batch = batch or _batch_for(serving)
    out = []
    with torch.no_grad():
        for i in range(0, len(h), batch):
            out.append(serving(h[i:i + batch])[1][:, :k].numpy())
    return np.concatenate(out)


def overlap_at_k(got: np.ndarray, reference: np.ndarray) -> float:
    """Mean |got ∩ reference| / k over rows of two (B, k) item arrays."""
    k = reference.shape[1]
    return float((got[:, :, None] == reference[:, None, :]).any(-1).sum(-1).mean() / k)


def recall_at_k(two_stage: nn.Module, exhaustive: nn.Module, histories, k: int = RECALL_K) -> float:
    """Recall@k of the two-stage top-k against exhaustive scoring of the same model (`ServingModel`),
    on histories (B, L) in the relabelled space: the mean share of the exhaustive top-k found."""
    return overlap_at_k(top_items(two_stage, histories, k), top_items(exhaustive, histories, k))


@dataclass
class ProbeChoice:
    probe: int
    recall: float  # recall@k on the histories it was chosen on
    items_scored: int  # per request: C + probe·S
    scored_fraction: float  # items_scored / items
    recalls: dict[int, float]  # every probe tried -> its recall

    def to_dict(self) -> dict:
        return asdict(self)


def choose_probe(model: nn.Module, index: ClusterIndex, histories, candidates: int = RECALL_K,
                 target: float = RECALL_TARGET, k: int = RECALL_K) -> ProbeChoice:
    """The smallest probe whose recall@k against exhaustive scoring reaches `target` on validation
    histories (B, L) (relabelled).

    Recall never falls as probe grows (the clusters probed by a smaller probe are a subset), so a
    galloping search finds it: probes low, 2·low, 4·low, … until one reaches the target, then a
    binary search below it. It tries O(log probe) probes, all of them small when the answer is
    small (a large probe over 10^6 items is slow to evaluate); probe = C scores every item (recall 1).
    """
    from export.serving import ServingModel

    if not 0.0 < target <= 1.0:
        raise ToolkitError(f"choose_probe target: {target} not valid; valid: (0, 1]")
    if candidates < k:
        raise ToolkitError(f"choose_probe candidates: {candidates} < k = {k}; valid: >= k")
    reference = top_items(ServingModel(model, k).eval(), histories, k)
    low = min_probe(index, candidates, model.cfg.max_history)
    if low > index.clusters:
        raise ToolkitError(f"choose_probe candidates: {candidates} more than the catalogue can return")
    recalls: dict[int, float] = {}

    def recall(probe: int) -> float:
        if probe not in recalls:
            serving = TwoStageServing(model, candidates, index, probe)
            recalls[probe] = overlap_at_k(top_items(serving, histories, k), reference)
        return recalls[probe]

    below, high = low - 1, low  # invariant: recall(below) < target (or below is not servable)
    while recall(high) < target and high < index.clusters:
        below, high = high, min(index.clusters, high * 2)
    while high - below > 1:  # recall(high) >= target
        mid = (below + high) // 2
        if recall(mid) >= target:
            high = mid
        else:
            below = mid
    return ProbeChoice(probe=high, recall=recall(high), items_scored=index.items_scored(high),
                       scored_fraction=index.scored_fraction(high), recalls=dict(sorted(recalls.items())))
