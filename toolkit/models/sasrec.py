"""The sequence recommender: SASRec-style causal self-attention, written with export-friendly ops.

Teacher and student are the same code with different `ModelConfig`s. Everything here exports
with `torch.export` (no nn.TransformerEncoder, no data-dependent control flow): attention is
plain linears plus `F.scaled_dot_product_attention` with an explicit boolean mask.

Shapes: B batch, T history length (= max_history), D model dim, N vocabulary (items + padding 0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    """Architecture of one recommender. `embedding_rank` > 0 factorizes the item table (N×r · r×D)."""

    num_items: int  # vocabulary size including padding index 0
    dim: int = 32
    layers: int = 1
    heads: int = 1
    ffn_dim: int = 0  # 0 means 4 * dim
    max_history: int = 50
    dropout: float = 0.2
    embedding_rank: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def hidden(self) -> int:
        return self.ffn_dim or 4 * self.dim


class ItemTable(nn.Module):
    """Item embedding shared by the input lookup and the output scores (tied).

    Full (N×D) or factorized (N×r then r×D): the factorized table is the low-rank embedding
    compression; both give `lookup(ids)` (…, D) and `weight()` (N, D).
    """

    def __init__(self, num_items: int, dim: int, rank: int = 0):
        super().__init__()
        self.rank = rank
        if rank:
            self.embedding = nn.Embedding(num_items, rank, padding_idx=0)
            self.project = nn.Linear(rank, dim, bias=False)
        else:
            self.embedding = nn.Embedding(num_items, dim, padding_idx=0)
            self.project = None
        nn.init.normal_(self.embedding.weight, std=0.02 if not rank else 1.0 / math.sqrt(rank))
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    @property
    def num_rows(self) -> int:
        return self.embedding.weight.shape[0]

    def permute_(self, order: torch.Tensor) -> None:
        """Relabel the items in place: new row i is old row order[i] (two-stage serving's cluster order)."""
        with torch.no_grad():
            self.embedding.weight.copy_(self.embedding.weight[order])

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)
        return self.project(x) if self.project is not None else x

    def weight(self) -> torch.Tensor:
        w = self.embedding.weight
        return self.project(w) if self.project is not None else w

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (…, D) -> scores over every item (…, N); the factorized table goes through r."""
        if self.project is not None:
            return F.linear(hidden @ self.project.weight, self.embedding.weight)  # (…, r) then (…, N)
        # F.linear, not `@ weight.t()`: exported as one linear with a constant weight, which XNNPACK
        # runs as a fully connected layer on its pre-packed weight (`@ .t()` re-transposes the
        # whole N×D table on every call and leaves the matmul to the portable kernels)
        return F.linear(hidden, self.embedding.weight)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        assert dim % heads == 0, "dim must be divisible by heads"
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        # query (B, Tq, D), context (B, T, D), mask (B, 1, Tq, T) True = may attend.
        # `bias` (B, 1, Tq, T), an additive float mask (0 = may attend, -1e30 = may not), replaces
        # `mask` at inference: attention is then plain bmm + softmax, which XNNPACK runs in one
        # delegate call (SDPA with a boolean mask decomposes into where/any/logical_not/expand ops
        # that run outside it)
        b, tq, _ = query.shape
        t = context.shape[1]
        q = self.q(query).view(b, tq, self.heads, self.head_dim).transpose(1, 2)  # (B, H, Tq, hd)
        k = self.k(context).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        v = self.v(context).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        if bias is not None and p == 0.0:
            h, hd = self.heads, self.head_dim  # 3-D bmm: a 4-D matmul exports with expand_copy ops
            att = torch.bmm(q.reshape(b * h, tq, hd), k.reshape(b * h, t, hd).transpose(1, 2))
            att = att.view(b, h, tq, t) * (hd ** -0.5) + bias  # (B, H, Tq, T)
            y = torch.bmm(att.softmax(dim=-1).view(b * h, tq, t), v.reshape(b * h, t, hd))
            y = y.view(b, h, tq, hd)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, H, Tq, hd)
        y = y.transpose(1, 2).reshape(b, tq, self.heads * self.head_dim)
        return self.out(y)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + ffn(ln(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.fc1 = nn.Linear(cfg.dim, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, last_only: bool = False,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        # x (B, T, D). With last_only the queries are the last position only: (B, 1, D) out,
        # masked by `bias` (B, 1, 1, T) when given, else by the last row of `mask`.
        h = self.ln1(x)
        if last_only:
            x = x[:, -1:, :]
            y = self.attn(h[:, -1:, :], h, None if mask is None else mask[:, :, -1:, :], bias=bias)
        else:
            y = self.attn(h, h, mask)
        x = x + self.drop(y)
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))
        return x


class SASRec(nn.Module):
    """Causal self-attention next-item recommender with a tied item table."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.items = ItemTable(cfg.num_items, cfg.dim, cfg.embedding_rank)
        self.positions = nn.Embedding(cfg.max_history, cfg.dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, history: torch.Tensor, last_only: bool = False, item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """History (B, T) left-padded item indices -> hidden states (B, T, D) or (B, 1, D).

        `item_vectors` (B, T, D) replaces the table lookup (the serving graph passes its own).
        """
        t = history.shape[1]
        valid = history != 0  # (B, T)
        x = self.items.lookup(history) if item_vectors is None else item_vectors
        x = x * math.sqrt(self.cfg.dim) + self.positions.weight[-t:]  # positions right-aligned
        keep = valid.to(x.dtype)  # (B, T) one conversion; the float ops on it stay in XNNPACK
        x = self.drop(x * keep.unsqueeze(-1))
        if last_only and len(self.blocks) == 1 and not self.training:
            # the only block queries the last position alone: its mask row is "every real item, and
            # itself", here as an additive float mask (B, 1, 1, T): 0 = may attend, -1e30 = may not
            # (exp underflows to exactly 0, as with -inf; -1e30 not -inf since 0 * inf is NaN).
            # Same result as the last row below, with only ops XNNPACK runs.
            bias = F.pad((keep[:, :-1] - 1.0) * 1e30, (0, 1)).view(-1, 1, 1, t)
            return self.norm(self.blocks[0](x, None, last_only=True, bias=bias))
        causal = torch.ones(t, t, dtype=torch.bool, device=history.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=history.device)
        # attend to earlier real items, and always to yourself (so padding rows are never empty)
        mask = ((causal & valid[:, None, :]) | eye).unsqueeze(1)  # (B, 1, T, T)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        return self.norm(x)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Scores for every position over the whole vocabulary: (B, T, N)."""
        return self.items.scores(self.encode(history))

    def score_last(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of the next item after the whole history: (B, N)."""
        return self.items.scores(self.encode(history, last_only=True)[:, 0, :])

    def member_states(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (B, T, D) and the item table (N, D): scores are their inner products."""
        return self.encode(history), self.items.weight()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(cfg: ModelConfig) -> SASRec:
    return SASRec(cfg)


class Ensemble(nn.Module):
    """A teacher made of several recommenders: the mean of their log-probabilities.

    Averaging log-softmax (not raw logits) keeps members with different scales comparable; the
    result is itself a score over items, so it is evaluated, distilled from and exported like a
    single model.
    """

    def __init__(self, members: list[SASRec]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.log_softmax(m(history), dim=-1) for m in self.members]).mean(0)

    def score_last(self, history: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.log_softmax(m.score_last(history), dim=-1) for m in self.members]).mean(0)

    def member_states(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's hidden states, concatenated and divided by the member count (B, T, M·D), and
        their item tables concatenated (N, M·D): an inner product is the members' mean raw score,
        which ranks items as the mean of their log-probabilities does (per position, up to a constant)."""
        states = [m.member_states(history) for m in self.members]
        return (torch.cat([h for h, _ in states], dim=-1) / len(states), torch.cat([w for _, w in states], dim=-1))
