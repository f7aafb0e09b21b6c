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
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.core.errors import ToolkitError

CLUSTERS_PER_ROOT = 4  # C = 4·sqrt(N) by default (see IndexConfig)
DEFAULT_BALANCE = 1.25  # α: capacity S = ceil(α·N/C); 1.25 keeps most items in their nearest cluster
DEFAULT_NEIGHBOURS = 8  # nearest centroids tried per item before a wider search
RECALL_TARGET = 0.96  # recall@10 the probe is chosen for on validation histories: held-out recall stays >= 0.95
# (0.95 chosen on 300 histories gave 0.942-0.949 held out)
RECALL_K = 10
EXHAUSTIVE_BATCH = 32  # histories per PyTorch batch when every item is scored: (B, N) fp32 scores
CANDIDATE_ROWS_PER_BATCH = 1 << 20  # two-stage candidates decoded per PyTorch batch (128 MB at D = 32)


@dataclass
class IndexConfig:
    """How the items are clustered for two-stage serving.

    clusters: C; 0 = `default_clusters(N)` = round(4·sqrt(N)). Stage 1 scores C centroids, stage 2
        probe·S members; finer clusters need a smaller share of the catalogue probed for the same
        recall, while stage 1 stays small next to stage 2; too fine, and a query's answers spread
        over more clusters. Measured on a 10^6-item model trained like bench/scale.py's serve
        section (2 epochs), recall@10 0.96 on 1,000 validation histories, α = 1.25: C = sqrt(N)
        scores 12.5 % of the items, 2·sqrt(N) 9.6 %, 4·sqrt(N) 7.0 %, 6·sqrt(N) 7.6 %, 8·sqrt(N)
        8.6 %; α = 1.1 or 1.5 at 4·sqrt(N): 8.2 % and 7.8 %.
    balance: α ≥ 1; every cluster holds at most ceil(α·N/C) items (the graph's static stage-2 width).
    neighbours: nearest centroids tried per item (faiss search) before the search widens.
    spherical: cluster the directions (unit-normalized vectors). Scores are inner products and a
        vector's norm acts as a per-item scale (popularity): Euclidean k-means splits the catalogue
        by norm into lopsided clusters that balancing must then break up. Measured on the 1M-item
        synthetic set (bench/serving_scale.py), C = 1000, α = 1.25: the probe reaching recall@10 0.95
        fell from 74 clusters (9.4 % of the items scored) to 29 (3.7 %).
    iterations: k-means iterations. seed: k-means seed.
    """

    clusters: int = 0
    balance: float = DEFAULT_BALANCE
    neighbours: int = DEFAULT_NEIGHBOURS
    spherical: bool = True
    iterations: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.clusters, int) or self.clusters < 0:
            problems.append(f"IndexConfig.clusters: {self.clusters!r} not valid; valid: 0 (= 4·sqrt(N)) or an "
                            "integer >= 1")
        if not self.balance >= 1.0:
            problems.append(f"IndexConfig.balance: {self.balance!r} not valid; valid: a number >= 1.0 (capacity "
                            "ceil(balance·N/C) must hold every item)")
        if not isinstance(self.neighbours, int) or self.neighbours < 1:
            problems.append(f"IndexConfig.neighbours: {self.neighbours!r} not valid; valid: an integer >= 1")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            problems.append(f"IndexConfig.iterations: {self.iterations!r} not valid; valid: an integer >= 1")
        if problems:
            raise ToolkitError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClusterIndex:
    """Balanced clusters over the items, in the relabelled index space.

    order (N,): new index -> old index (order[0] = 0, padding); items.json is written in this order.
    starts, sizes (C,): cluster c owns new indices [starts[c], starts[c] + sizes[c]); starts ascending.
    centroids (C, D): the mean output vector of each cluster's members (stage 1 scores them).
    capacity: S, the largest cluster size allowed (the graph's stage-2 width per probed cluster).
    """

    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    centroids: np.ndarray
    capacity: int
    config: IndexConfig = field(default_factory=IndexConfig)

    @property
    def num_items(self) -> int:
        return len(self.order)

    @property
    def clusters(self) -> int:
        return len(self.starts)

    def inverse(self) -> np.ndarray:
        """(N,) old index -> new index."""
        inv = np.empty_like(self.order)
        inv[self.order] = np.arange(len(self.order))
        return inv

    def relabel(self, ids: np.ndarray) -> np.ndarray:
        """Old item indices (any shape, 0 = padding) -> the relabelled indices the artifact takes."""
        return self.inverse()[np.asarray(ids)]

    def items_scored(self, probe: int) -> int:
        """Items (centroids included) scored per request: C + probe·S."""
        return self.clusters + probe * self.capacity

    def scored_fraction(self, probe: int) -> float:
        return self.items_scored(probe) / (self.num_items - 1)

    def graph_bytes(self, probe: int) -> int:
        """What the two-stage graph adds to the model's weights (for the planner): the fp32 centroids
        (C, D), int64 starts and sizes (C,), slot offsets (S,) and probed-cluster offsets (probe,)."""
        c, d = self.centroids.shape
        return c * d * 4 + 2 * c * 8 + self.capacity * 8 + probe * 8

    def summary(self) -> dict:
        """For a manifest: the index's shape, not its arrays."""
        return {"clusters": self.clusters, "capacity": self.capacity, "num_items": self.num_items,
                "min_size": int(self.sizes.min()), "max_size": int(self.sizes.max()), "config": self.config.to_dict()}


# --- offline: clusters (faiss) ---------------------------------------------------------------

def balanced_assignment(neighbours: np.ndarray, distances: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Assign rows to clusters with room, each row trying its listed clusters nearest first.

    neighbours, distances (R, k): each row's nearest clusters and their distances (faiss search).
    room (C,): free places per cluster, decreased in place. Within one round the rows nearest to a
    cluster get its places first. Returns (R,) cluster per row, -1 where all k were full.
    """
    assign = np.full(len(neighbours), -1, dtype=np.int64)
    for r in range(neighbours.shape[1]):
        todo = np.flatnonzero(assign < 0)
        if todo.size == 0:
            break
        want, dist = neighbours[todo, r], distances[todo, r]
        keep = want >= 0  # faiss pads with -1 when fewer clusters exist
        todo, want, dist = todo[keep], want[keep], dist[keep]
        o = np.lexsort((dist, want))  # by cluster, nearest first
        todo, want = todo[o], want[o]
        rank = np.arange(len(want)) - np.searchsorted(want, want, side="left")  # place in its cluster's queue
        ok = rank < room[want]
        assign[todo[ok]] = want[ok]
        room -= np.bincount(want[ok], minlength=len(room))
    return assign


def default_clusters(items: int) -> int:
    """C for `items` items when IndexConfig.clusters is 0: round(4·sqrt(N)), at most N."""
    return max(1, min(items, round(CLUSTERS_PER_ROOT * math.sqrt(items))))


def build_index(vectors: np.ndarray | torch.Tensor, cfg: IndexConfig | None = None) -> ClusterIndex:
    """Cluster the item vectors (N, D) (row 0 = padding, left out) into capacity-balanced clusters.

    k-means (faiss; on the directions when `cfg.spherical`) gives C centroids; every item goes to
    its nearest centroid that still has room (at most S = ceil(α·(N-1)/C) members), found with
    faiss's k-nearest search (no N×C matrix); the stage-1 centroids are then the means of the final
    members' vectors (norms included), what stage 1 should score.
    """
    from toolkit.core.threads import faiss_threads

    cfg = cfg or IndexConfig()
    x = vectors.detach().float().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    x = np.ascontiguousarray(x[1:], dtype=np.float32)  # (R, D) real items
    rows, dim = x.shape
    points = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if cfg.spherical else x
    c = cfg.clusters or default_clusters(rows)
    if c > rows:
        raise ToolkitError(f"IndexConfig.clusters: {c} is more than the {rows} items; valid: 1..{rows}")
    capacity = math.ceil(cfg.balance * rows / c)
    room = np.full(c, capacity, dtype=np.int64)
    assign = np.full(rows, -1, dtype=np.int64)
    k = min(cfg.neighbours, c)
    todo = np.arange(rows)
    with faiss_threads() as faiss:
        km = faiss.Kmeans(dim, c, niter=cfg.iterations, seed=cfg.seed, verbose=False, min_points_per_centroid=1)
        km.train(points)
        while todo.size:  # widen the search for the items whose nearest clusters were full
            dist, nn_ = km.index.search(points[todo], k)
            assign[todo] = balanced_assignment(nn_, dist, room)
            todo = np.flatnonzero(assign < 0)
            assert k < c or todo.size == 0, "total capacity >= items: every item fits somewhere"
            k = min(c, k * 4)
    # drop clusters left empty (the graph must never probe nothing) and lay the clusters out in order
    used = np.flatnonzero(np.bincount(assign, minlength=c))
    assign = np.searchsorted(used, assign)
    sizes = np.bincount(assign, minlength=len(used)).astype(np.int64)
    members = np.argsort(assign, kind="stable")  # item rows grouped by cluster
    starts = 1 + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    centroids = np.add.reduceat(x[members], starts - 1, axis=0) / sizes[:, None]
    order = np.concatenate([[0], members + 1]).astype(np.int64)
    return ClusterIndex(order=order, starts=starts, sizes=sizes, centroids=centroids.astype(np.float32),
                        capacity=capacity, config=cfg)


def permute_items_(model: nn.Module, order: np.ndarray | torch.Tensor) -> nn.Module:
    """Relabel the items in place: new index i is old item order[i] (order[0] must be 0, padding).

    The item table reorders its own rows (float rows, int8/int4 rows and scales, or PQ codes:
    `permute_`); the codebooks, projections and the rest of the model are unchanged.
    """
    table = getattr(model, "items", None)
    idx = torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64))
    n = _table_rows(table)
    if idx.shape != (n,) or int(idx[0]) != 0 or not torch.equal(torch.sort(idx).values, torch.arange(n)):
        raise ToolkitError(f"permute_items_: order must be a permutation of 0..{n - 1} with order[0] = 0 (padding)")
    table.permute_(idx)
    return model


def _table_rows(table) -> int:
    """Rows of a table two-stage serving supports (one that can relabel its rows); a clear error for the others."""
    if not hasattr(table, "permute_"):
        raise ToolkitError(f"two-stage serving: item table {type(table).__name__} not supported; valid: ItemTable, "
                           "QuantizedItemTable, PQItemTable (a pruned table's kept rows are not contiguous)")
    return table.num_rows


def guaranteed_candidates(index: ClusterIndex, probe: int, max_history: int) -> int:
    """The fewest real answers a request can have: the `probe` smallest clusters, less a full history
    that lies entirely inside them. Below K the graph would have to return padding or history items."""
    return int(np.sort(index.sizes)[:probe].sum()) - max_history


def min_probe(index: ClusterIndex, candidates: int, max_history: int) -> int:
    """The smallest probe that guarantees `candidates` real answers (C + 1 when no probe does)."""
    return int(np.searchsorted(np.cumsum(np.sort(index.sizes)) - max_history, candidates)) + 1


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
        rows = _table_rows(table)
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
