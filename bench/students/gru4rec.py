"""A GRU4Rec-style student (Hidasi et al., 2016) for `python -m toolkit build --student
bench/students/gru4rec.py:build`: item embedding -> one GRU layer -> scores over every item.

The GRU cell is written with two nn.Linear gate layers unrolled over the L positions, not
nn.GRU. nn.GRU does lower (torch.export gives aten.gru, which ExecuTorch's to_edge decomposes; a
.pte of it runs and matches PyTorch, checked with this venv's ExecuTorch), but its gate weights are
not nn.Linear modules: the export-time int8 (PT2E XNNPACKQuantizer, set per nn.Linear) and the
low-rank step (toolkit.compression.lowrank.factorize_linear) would leave them float. Unrolled,
every gate is a Linear both reach. Left padding (index 0) leaves the state at zero, so a history
scores the same whatever its padding; position t has read positions <= t only (causal).

Contract (toolkit/models/user_module.py): `build(items, max_history)` returns the module, freshly
initialised (the toolkit trains it); `forward(history int64 [B, L]) -> [B, L, len(items)]`.
"""

from __future__ import annotations

import torch
from torch import nn

DIM = 32


class GRU4Rec(nn.Module):
    def __init__(self, num_items: int, max_history: int, dim: int = DIM, dropout: float = 0.2):
        super().__init__()
        self.max_history = max_history
        self.embedding = nn.Embedding(num_items, dim, padding_idx=0)
        self.inputs = nn.Linear(dim, 3 * dim)  # reset, update, candidate: from the item
        self.state = nn.Linear(dim, 3 * dim)  # ... and from the previous state
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_items)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embedding(history))  # (B, L, D)
        gx = self.inputs(x)  # (B, L, 3D): every position's input gates at once
        real = (history != 0).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        h = torch.zeros_like(x[:, 0, :])  # (B, D)
        states = []
        for t in range(history.shape[1]):
            xr, xz, xn = gx[:, t, :].chunk(3, dim=-1)
            hr, hz, hn = self.state(h).chunk(3, dim=-1)
            r = torch.sigmoid(xr + hr)
            z = torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            new = (1 - z) * n + z * h
            m = real[:, t, :]
            h = m * new + (1 - m) * h  # padding leaves the state as it was (zero before the first item)
            states.append(h)
        hidden = self.dropout(torch.stack(states, dim=1))  # (B, L, D)
        return self.out(hidden)  # (B, L, N)


def build(items: list[str], max_history: int) -> nn.Module:
    return GRU4Rec(len(items), max_history)
