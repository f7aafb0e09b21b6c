"""Product-quantized item table (RecJPQ-style): every item is a few uint8 codes into small codebooks.

The item table (N, D) is cut into `m` sub-vectors of width d = D/m; each subspace has its own
codebook of K (≤ 256) centroids, trained by k-means (faiss) on the trained table's sub-vectors, and
every item keeps only the index of its nearest centroid per subspace. The table then costs N·m
bytes + K·D floats instead of N·D floats: at D = 32, m = 8 it is 16× smaller than fp32 and 2×
smaller than int4, and unlike row-wise int4 its size per item does not grow with D.

Like `QuantizedItemTable` the table is tied and stored once: the history lookup and the output
scores read the same codes and codebooks, in PyTorch and in both exported files.

- lookup(ids) (…, D): gather the codes, gather the codebook rows, concatenate.
- scores(hidden) (…, N): per-subspace lookup tables LUT_j = hidden_j · codebook_jᵀ (…, K), then
  score[n] = Σ_j LUT_j[codes[n, j]]: N·m gathers and adds instead of N·D multiply-adds.
- rows(ids) (…, D): the decoded vectors of a few items (the two-stage graph scores its candidates
  with them in one batched matmul, inside XNNPACK).

Codes are fixed buffers; the codebooks are `nn.Parameter`s, so the recipe's distillation fine-tune
adapts the sub-item embeddings to the fixed code assignment (as RecJPQ trains them).

Shapes: N items (rows, padding row 0 included), D width, m subspaces, K centroids, d = D/m.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit.compression.prune import base_table, set_base_table
from toolkit.core.threads import faiss_threads
from toolkit.core.errors import ToolkitError

MAX_CENTROIDS = 256  # codes are uint8
CODE_DTYPE = torch.uint8
# with more query rows than this, scores() rebuilds the (N, D) table and runs one matmul: a training
# batch (B·T rows) is far cheaper as BLAS than as B·T·N·m gathers; serving (1 row) uses the LUTs
LUT_MAX_ROWS = 16


@dataclass
class PQConfig:
    """Product quantization of the item table.

    subspaces: m, the codes per item (bytes per item); must divide the table width D.
    centroids: K, the codebook size per subspace (2..256; codes are uint8).
    iterations: k-means iterations per codebook.
    seed: k-means seed (faiss), so a build is reproducible.
    """

    subspaces: int
    centroids: int = MAX_CENTROIDS
    iterations: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.subspaces, int) or self.subspaces < 1:
            problems.append(f"PQConfig.subspaces: {self.subspaces!r} not valid; valid: an integer >= 1 that divides "
                            "the table width")
        if not isinstance(self.centroids, int) or not 2 <= self.centroids <= MAX_CENTROIDS:
            problems.append(f"PQConfig.centroids: {self.centroids!r} not valid; valid: 2..{MAX_CENTROIDS} "
                            "(codes are uint8)")
        if not isinstance(self.iterations, int) or self.iterations < 1:
            problems.append(f"PQConfig.iterations: {self.iterations!r} not valid; valid: an integer >= 1")
        if problems:
            raise ToolkitError("; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


def pq_table_bytes(num_items: int, dim: int, cfg: PQConfig) -> int:
    """Bytes of a PQ item table: uint8 codes (N, m) + fp32 codebooks (m, K, D/m) + fp32 offsets (m,)."""
    return num_items * cfg.subspaces + cfg.centroids * dim * 4 + cfg.subspaces * 4


# --- pure functions --------------------------------------------------------------------------

def train_codebooks(vectors: np.ndarray, cfg: PQConfig) -> tuple[np.ndarray, np.ndarray]:
    """k-means per subspace (faiss) on vectors (R, D) -> (codebooks (m, K, d) float32, codes (R, m) uint8)."""
    rows, dim = vectors.shape
    m, k = cfg.subspaces, cfg.centroids
    d = dim // m
    codebooks = np.empty((m, k, d), dtype=np.float32)
    codes = np.empty((rows, m), dtype=np.uint8)
    with faiss_threads() as faiss:
        for j in range(m):
            sub = np.ascontiguousarray(vectors[:, j * d:(j + 1) * d], dtype=np.float32)
            # min_points_per_centroid=1: a small catalogue is fine to cluster (no faiss warning)
            km = faiss.Kmeans(d, k, niter=cfg.iterations, seed=cfg.seed + j, verbose=False,
                              min_points_per_centroid=1)
            km.train(sub)
            codebooks[j] = km.centroids
            codes[:, j] = km.index.search(sub, 1)[1][:, 0]
    return codebooks, codes


# --- the module ------------------------------------------------------------------------------

class PQItemTable(nn.Module):
    """The tied item table as product-quantization codes, stored once: `lookup`, `weight`, `scores`.

    Buffers: `codes` uint8 (N, m), `offsets` fp32 (m,) = j·K (codes into the flattened codebooks).
    Parameter: `codebooks` fp32 (m, K, d), trainable.
    """

    def __init__(self, codes: torch.Tensor, codebooks: torch.Tensor):
        super().__init__()
        m, k, d = codebooks.shape
        assert codes.dtype == CODE_DTYPE and codes.shape[1] == m, "codes (N, m) uint8 for m codebooks"
        self.subspaces, self.centroids, self.sub_dim = m, k, d
        self.register_buffer("codes", codes)
        self.register_buffer("offsets", torch.arange(m, dtype=torch.float32) * k)
        self.codebooks = nn.Parameter(codebooks)
        self.embedding = None  # no float table: ServingModel and the exporters treat it as stored once
        self.project = None
        self.rank = 0

    @property
    def num_rows(self) -> int:
        return self.codes.shape[0]

    def permute_(self, order: torch.Tensor) -> None:
        """Relabel the items in place: new row i is old row order[i] (the codes; codebooks unchanged)."""
        self.codes = self.codes[order]

    @classmethod
    def from_vectors(cls, vectors: torch.Tensor, cfg: PQConfig) -> PQItemTable:
        """Train codebooks on rows 1..N-1 of vectors (N, D) (row 0 is padding) and encode every row."""
        w = vectors.detach().float().cpu().numpy()
        n, dim = w.shape
        if dim % cfg.subspaces:
            valid = [s for s in range(1, dim + 1) if dim % s == 0]
            raise ToolkitError(f"PQConfig.subspaces: {cfg.subspaces} does not divide the table width {dim}; "
                               f"valid: {valid}")
        if n - 1 < cfg.centroids:
            raise ToolkitError(f"PQConfig.centroids: {cfg.centroids} is more than the {n - 1} items to train on; "
                               f"valid: 2..{min(n - 1, MAX_CENTROIDS)}")
        codebooks, codes = train_codebooks(w[1:], cfg)
        codes = np.concatenate([np.zeros((1, cfg.subspaces), dtype=np.uint8), codes])  # padding: any code
        return cls(torch.from_numpy(codes), torch.from_numpy(codebooks))

    @property
    def dim(self) -> int:
        return self.subspaces * self.sub_dim

    def _flat_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """uint8 codes (…, m) -> int64 rows of the flattened codebooks (…, m): code + j·K.

        Through float32 (exact: every value < 2^24): ExecuTorch's portable cast takes ~7 ns an
        element from uint8 to int64 but ~1 ns from uint8 to float and from float to int64
        (measured, 280k codes: 2.0 ms against 0.6 ms), and the add runs on floats.
        """
        return (codes.to(torch.float32) + self.offsets).to(torch.int64)

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (…) -> reconstructed vectors (…, D), padding not zeroed (callers that score a subset
        mask it). index_select and embedding, not `codes[ids]`: ExecuTorch's portable index kernel
        took 4 ms for 35k rows where index_select took 0.1 ms."""
        codes = self.codes.index_select(0, ids.reshape(-1))  # (R, m) uint8
        vectors = F.embedding(self._flat_codes(codes), self.codebooks.reshape(-1, self.sub_dim))  # (R, m, d)
        return vectors.reshape(*ids.shape, self.dim)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        # ids (…) -> (…, D); padding (0) is exactly zero
        x = self.rows(ids)
        return x * (ids != 0).unsqueeze(-1).to(x.dtype)

    def weight(self) -> torch.Tensor:
        """The full table (N, D), row 0 zero (for code that needs every vector: clustering, evaluation)."""
        w = F.embedding(self._flat_codes(self.codes), self.codebooks.reshape(-1, self.sub_dim)).reshape(-1, self.dim)
        return torch.cat([torch.zeros_like(w[:1]), w[1:]])

    def luts(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (B, D) -> per-subspace lookup tables, flattened (B, m·K): LUT_j = hidden_j · codebook_jᵀ,
        one small batched matmul (inside XNNPACK)."""
        b = hidden.shape[0]
        h = hidden.reshape(b, self.subspaces, self.sub_dim).transpose(0, 1)  # (m, B, d)
        lut = torch.bmm(h, self.codebooks.transpose(1, 2))  # (m, B, K)
        return lut.transpose(0, 1).reshape(b, self.subspaces * self.centroids)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (…, D) -> (…, N). Column 0 (padding) is not zero: every ranking masks it."""
        lead = hidden.shape[:-1]
        h = hidden.reshape(-1, self.dim)  # (B, D)
        if h.shape[0] > LUT_MAX_ROWS:  # same numbers as the LUTs, as one matmul
            out = F.linear(h, self.weight())
        else:  # score[n] = Σ_j LUT_j[codes[n, j]]: one gather of N·m table entries, a sum over m
            flat = self._flat_codes(self.codes).reshape(-1)  # (N·m,)
            out = self.luts(h).index_select(1, flat).view(h.shape[0], -1, self.subspaces).sum(-1)  # (B, N)
        return out.reshape(*lead, -1)


def pq_quantize_(model: nn.Module, cfg: PQConfig) -> nn.Module:
    """Replace the model's item table by a PQItemTable trained on its vectors, in place.

    Takes the effective vectors `weight()` (N, D): a full table, or a factorized one (whose
    projection is then folded into the codebooks). Inside a PrunedItemTable the inner table is
    replaced. A table already quantized (int8/int4 or PQ) is refused: quantize the float table.
    """
    from toolkit.models.sasrec import ItemTable

    table = base_table(model)
    if not isinstance(table, ItemTable):
        raise ToolkitError(f"pq_quantize_: needs a float ItemTable, got {type(table).__name__} "
                           "(product-quantize before any other table quantization)")
    model.eval()
    with torch.no_grad():
        set_base_table(model, PQItemTable.from_vectors(table.weight(), cfg))
    if hasattr(model, "cfg"):
        model.cfg.embedding_rank = 0  # the codebooks are D wide: no factorized table any more
    return model
