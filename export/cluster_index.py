"""Two-stage serving's index, built offline: the catalogue's item vectors clustered (faiss k-means)
into capacity-balanced clusters, the items relabelled so each cluster is a contiguous index range
(`permute_items_`), and the probe bounds that guarantee enough real answers. The serving graph that
reads it is export/two_stage.py. torch is imported inside the functions (the planner reads the
defaults without it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from toolkit.core.errors import ToolkitError

CLUSTERS_PER_ROOT = 4  # C = 4·sqrt(N) by default (see IndexConfig)
DEFAULT_BALANCE = 1.25  # α: capacity S = ceil(α·N/C); 1.25 keeps most items in their nearest cluster
DEFAULT_NEIGHBOURS = 8  # nearest centroids tried per item before a wider search


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


def build_index(vectors, cfg: IndexConfig | None = None) -> ClusterIndex:
    """Cluster the item vectors (N, D) (row 0 = padding, left out) into capacity-balanced clusters.

    k-means (faiss; on the directions when `cfg.spherical`) gives C centroids; every item goes to
    its nearest centroid that still has room (at most S = ceil(α·(N-1)/C) members), found with
    faiss's k-nearest search (no N×C matrix); the stage-1 centroids are then the means of the final
    members' vectors (norms included), what stage 1 should score.
    """
    from toolkit.core.threads import faiss_threads

    cfg = cfg or IndexConfig()
    import torch

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


def permute_items_(model, order):
    """Relabel the items in place: new index i is old item order[i] (order[0] must be 0, padding).

    The item table reorders its own rows (float rows, int8/int4 rows and scales, or PQ codes:
    `permute_`); the codebooks, projections and the rest of the model are unchanged.
    """
    import torch

    table = getattr(model, "items", None)
    idx = torch.from_numpy(np.ascontiguousarray(order, dtype=np.int64))
    n = table_rows(table)
    if idx.shape != (n,) or int(idx[0]) != 0 or not torch.equal(torch.sort(idx).values, torch.arange(n)):
        raise ToolkitError(f"permute_items_: order must be a permutation of 0..{n - 1} with order[0] = 0 (padding)")
    table.permute_(idx)
    return model


def table_rows(table) -> int:
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
