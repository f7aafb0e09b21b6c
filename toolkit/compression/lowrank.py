"""Low-rank factorization by truncated SVD: the item table (N×D -> N×r · r×D) and linear layers.

A rank-r factorization of W (m×n) keeps r(m + n) numbers instead of mn. The rank comes from the
spectrum (smallest r keeping `energy` of Σσ²) or from a budget (largest r whose factors fit in
`max_params`). The factors start from the SVD (W ≈ U_r Σ_r V_rᵀ, √Σ on each side), so the model
starts close to where it was; the recipe then fine-tunes with distillation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from toolkit.core.errors import ToolkitError
from toolkit.compression.prune import base_table, set_base_table
from toolkit.models.sasrec import ItemTable


@dataclass
class LowRankConfig:
    """Which matrices to factorize and at what rank.

    table_rank: rank of the item table; 0 = choose by `energy`, -1 = leave the table alone.
    linear_rank: rank of each block linear; 0 = choose by `energy`, -1 = leave them alone.
    energy: fraction of Σσ² to keep when a rank is chosen from the spectrum.
    Linears are only factorized when that really saves parameters (r(m + n) < mn).
    """

    table_rank: int = 0
    linear_rank: int = -1
    energy: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.energy <= 1.0:
            raise ToolkitError(f"LowRankConfig.energy: {self.energy} not in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


class LowRankLinear(nn.Module):
    """y = B(A x) + b with A (r×in), B (out×r): a linear layer of rank r."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    @property
    def weight(self) -> torch.Tensor:  # the full (out, in) product
        return self.up.weight @ self.down.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def energy_rank(w: torch.Tensor, energy: float) -> int:
    """Smallest r whose top-r singular values keep `energy` of Σσ² (w is (m, n))."""
    s = torch.linalg.svdvals(w.detach().float())
    kept = torch.cumsum(s * s, 0) / (s * s).sum()
    return int(torch.searchsorted(kept, torch.tensor(energy)).item()) + 1


def budget_rank(rows: int, cols: int, max_params: int) -> int:
    """Largest r with r(rows + cols) <= max_params (at least 1)."""
    return max(1, min(rows, cols, max_params // (rows + cols)))


def svd_factors(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """w (m, n) ≈ left (m, r) @ right (r, n), each side carrying √σ."""
    u, s, vh = torch.linalg.svd(w.detach().float(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def factorize_table_(model: nn.Module, rank: int) -> nn.Module:
    """Replace the full item table (N, D) by embedding (N, r) and projection r -> D, in place.

    Row 0 (padding) stays exactly zero: its SVD row is zeroed.
    """
    table = base_table(model)
    if table.project is not None:
        raise ToolkitError("factorize_table_: the item table is already factorized")
    w = table.embedding.weight  # (N, D)
    left, right = svd_factors(w, rank)  # (N, r), (r, D)
    new = ItemTable(w.shape[0], w.shape[1], rank)
    with torch.no_grad():
        new.embedding.weight.copy_(left)
        new.embedding.weight[0].zero_()
        new.project.weight.copy_(right.t())  # Linear(r, D).weight is (D, r)
    set_base_table(model, new)
    model.cfg.embedding_rank = rank
    return model


def factorize_linear(linear: nn.Linear, rank: int) -> LowRankLinear:
    left, right = svd_factors(linear.weight, rank)  # (out, r), (r, in)
    low = LowRankLinear(linear.in_features, linear.out_features, rank, bias=linear.bias is not None)
    with torch.no_grad():
        low.down.weight.copy_(right)
        low.up.weight.copy_(left)
        if linear.bias is not None:
            low.up.bias.copy_(linear.bias)
    return low


def low_rank_(model: nn.Module, cfg: LowRankConfig) -> nn.Module:
    """Factorize the item table and/or the block linears as `cfg` says, in place."""
    if cfg.table_rank >= 0 and base_table(model).project is None:
        w = base_table(model).embedding.weight
        rank = cfg.table_rank or energy_rank(w, cfg.energy)
        if rank < w.shape[1]:
            factorize_table_(model, rank)
    if cfg.linear_rank >= 0:
        for block in model.blocks:
            for parent in list(block.modules()):
                for name, child in list(parent.named_children()):
                    if type(child) is not nn.Linear:
                        continue
                    m, n = child.out_features, child.in_features
                    rank = cfg.linear_rank or energy_rank(child.weight, cfg.energy)
                    if rank * (m + n) < m * n:
                        setattr(parent, name, factorize_linear(child, rank))
    return model


@dataclass
class FactorizedLinear:
    """One nn.Linear `factorize_linears_` replaced: its name, shape and the rank it got."""

    name: str
    in_features: int
    out_features: int
    rank: int

    def to_dict(self) -> dict:
        return asdict(self)


def factorize_linears_(module: nn.Module, energy: float) -> list[FactorizedLinear]:
    """Every nn.Linear anywhere in `module` (any architecture: a user's own student) factorized at the
    rank keeping `energy` of its Σσ², in place, where that saves parameters (r(m + n) < mn)."""
    done = []
    for prefix, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            m, n = child.out_features, child.in_features
            rank = energy_rank(child.weight, energy)
            if rank * (m + n) < m * n:
                setattr(parent, name, factorize_linear(child, rank))
                done.append(FactorizedLinear(f"{prefix}.{name}" if prefix else name, n, m, rank))
    return done
