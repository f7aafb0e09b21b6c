"""Structured pruning that really shrinks the model: attention heads, FFN channels, cold item rows.

Every pruned unit is removed from the weight matrices (smaller `nn.Linear`s, a shorter item
table), never just masked, so the exported file shrinks with it. Importance is weight magnitude
for heads and channels, training popularity for item rows. The recipe fine-tunes with
distillation afterwards.

Cold rows: items seen fewer than `min_item_count` times in training lose their row. A small int16
index (N,) maps every item to its row in the compact table (0 = none): the lookup gathers through
it and the scores are gathered back to all N items, a pruned item scoring `PRUNED_SCORE` (it is
never recommended, and reads as padding in a history).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from toolkit.data import Split
from toolkit.core.errors import ToolkitError
from toolkit.models.sasrec import ItemTable

PRUNED_SCORE = -1e4  # finite, so training losses stay finite; far below any real score


@dataclass
class PruneConfig:
    """keep_heads: attention heads kept per block (0 = all). keep_ffn: FFN channels kept per block
    (0 = all). min_item_count: items with fewer training interactions lose their table row (0 = none)."""

    keep_heads: int = 0
    keep_ffn: int = 0
    min_item_count: int = 0

    def __post_init__(self) -> None:
        for name in ("keep_heads", "keep_ffn", "min_item_count"):
            if getattr(self, name) < 0:
                raise ToolkitError(f"PruneConfig.{name}: must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


class PrunedItemTable(nn.Module):
    """An item table over the kept items only, addressed through `index` (N,) int16 -> compact row.

    `inner` is any table (ItemTable, factorized, quantized) over M + 1 rows (row 0 = padding).
    """

    def __init__(self, inner: nn.Module, index: torch.Tensor):
        super().__init__()
        self.inner = inner
        self.register_buffer("index", index.to(torch.int16))  # (N,)
        self.embedding = None  # the serving graph must not split this table (see ServingModel)
        self.project = None
        self.rank = getattr(inner, "rank", 0)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self.inner.lookup(self.index.to(torch.int64)[ids])

    def weight(self) -> torch.Tensor:
        return self.inner.weight()[self.index.to(torch.int64)]

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (…, D) -> (…, N): compact scores (…, M+1), column 0 set to PRUNED_SCORE, gathered."""
        compact = self.inner.scores(hidden)
        compact = torch.cat([torch.full_like(compact[..., :1], PRUNED_SCORE), compact[..., 1:]], dim=-1)
        return compact[..., self.index.to(torch.int64)]


def base_table(model: nn.Module) -> nn.Module:
    """The table that holds the item vectors (inside a PrunedItemTable, if rows were pruned)."""
    return model.items.inner if isinstance(model.items, PrunedItemTable) else model.items


def set_base_table(model: nn.Module, table: nn.Module) -> None:
    if isinstance(model.items, PrunedItemTable):
        model.items.inner = table
        model.items.rank = getattr(table, "rank", 0)
    else:
        model.items = table


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out


def prune_ffn_(block: nn.Module, keep: int) -> None:
    """Keep the `keep` FFN channels with the largest ‖fc1 row‖·‖fc2 column‖."""
    score = block.fc1.weight.norm(dim=1) * block.fc2.weight.norm(dim=0)  # (H,)
    kept = torch.topk(score, keep).indices.sort().values
    block.fc1 = _linear(block.fc1.weight[kept], block.fc1.bias[kept])
    block.fc2 = _linear(block.fc2.weight[:, kept], block.fc2.bias)


def prune_heads_(attn: nn.Module, keep: int) -> None:
    """Keep the `keep` heads with the largest ‖v rows‖·‖out columns‖ (q, k, v rows; out columns)."""
    hd = attn.head_dim
    v = attn.v.weight.view(attn.heads, hd, -1).flatten(1).norm(dim=1)
    o = attn.out.weight.view(attn.out.weight.shape[0], attn.heads, hd).transpose(0, 1).flatten(1).norm(dim=1)
    kept_heads = torch.topk(v * o, keep).indices.sort().values
    rows = (kept_heads[:, None] * hd + torch.arange(hd)).reshape(-1)  # kept q/k/v output rows
    for name in ("q", "k", "v"):
        lin = getattr(attn, name)
        setattr(attn, name, _linear(lin.weight[rows], lin.bias[rows]))
    attn.out = _linear(attn.out.weight[:, rows], attn.out.bias)
    attn.heads = keep  # forward reshapes with heads × head_dim, which is now smaller than D


def prune_rows_(model: nn.Module, split: Split, min_count: int) -> nn.Module:
    """Drop the table rows of items seen fewer than `min_count` times in training."""
    table = model.items
    if isinstance(table, PrunedItemTable) or not isinstance(table, ItemTable):
        raise ToolkitError("prune rows: needs a float, unpruned ItemTable (prune before quantizing)")
    counts = np.zeros(split.num_items, dtype=np.int64)
    for seq in split.train:
        np.add.at(counts, seq, 1)
    kept = np.flatnonzero(counts >= min_count)
    kept = kept[kept != 0]
    index = torch.zeros(split.num_items, dtype=torch.int64)
    index[torch.from_numpy(kept)] = torch.arange(1, len(kept) + 1)
    rows = torch.cat([torch.zeros(1, dtype=torch.int64), torch.from_numpy(kept)])  # compact row -> item
    inner = ItemTable(len(rows), model.cfg.dim, table.rank)
    with torch.no_grad():
        inner.embedding.weight.copy_(table.embedding.weight[rows])
        if table.project is not None:
            inner.project.weight.copy_(table.project.weight)
    model.items = PrunedItemTable(inner, index)
    return model


def prune_(model: nn.Module, cfg: PruneConfig, split: Split | None = None) -> nn.Module:
    """Structured pruning, in place: heads, FFN channels, then cold item rows."""
    for block in model.blocks:
        if cfg.keep_heads and cfg.keep_heads < block.attn.heads:
            prune_heads_(block.attn, cfg.keep_heads)
        if cfg.keep_ffn and cfg.keep_ffn < block.fc1.out_features:
            prune_ffn_(block, cfg.keep_ffn)
    if cfg.min_item_count:
        if split is None:
            raise ToolkitError("PruneConfig.min_item_count needs the training split")
        prune_rows_(model, split, cfg.min_item_count)
    return model
