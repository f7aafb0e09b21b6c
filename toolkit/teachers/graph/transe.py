"""TransE pretraining of a graph's entity and relation embeddings (the knowledge-graph members start
from them).

TransE (Bordes et al., 2013) is written here (about forty lines of torch) rather than taken from
PyKEEN: PyKEEN would add 18 packages (optuna, SQLAlchemy, alembic, ...) for one model whose entity
numbering we would still have to bridge, and its training loop would sit outside the toolkit's
seeds and cache. Embeddings: h + r ≈ t for true triples, margin ranking against corrupted heads
or tails, entities kept on the unit sphere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass



@dataclass
class TransEConfig:
    dim: int = 32
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 0.01
    margin: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def pretrain_transe(kg, cfg: TransEConfig, log=None):
    """TransE embeddings of every entity and relation: (entities (E, dim), relations (R, dim)) tensors,
    row 0 (padding) zero. Margin ranking loss, L2 distance, one corrupted head or tail per triple."""
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    e_count, r_count = kg.num_entities, kg.num_relations
    ent = torch.nn.Parameter(torch.empty(e_count, cfg.dim).uniform_(-1, 1, generator=g))
    rel = torch.nn.Parameter(torch.empty(r_count, cfg.dim).uniform_(-1, 1, generator=g))
    with torch.no_grad():
        rel /= rel.norm(dim=1, keepdim=True).clamp_min(1e-12)
    opt = torch.optim.Adam([ent, rel], lr=cfg.lr)
    h, r, t = (torch.from_numpy(x) for x in (kg.heads, kg.rels, kg.tails))
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(h), generator=g)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            rows = order[i:i + cfg.batch_size]
            bh, br, bt = h[rows], r[rows], t[rows]
            corrupt = torch.randint(1, e_count, (len(rows),), generator=g)
            head_side = torch.rand(len(rows), generator=g) < 0.5
            nh, nt = torch.where(head_side, corrupt, bh), torch.where(head_side, bt, corrupt)
            unit = ent / ent.norm(dim=1, keepdim=True).clamp_min(1e-12)
            pos = (unit[bh] + rel[br] - unit[bt]).norm(dim=1)
            neg = (unit[nh] + rel[br] - unit[nt]).norm(dim=1)
            loss = torch.relu(cfg.margin + pos - neg).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        if log:
            log(f"  TransE epoch {epoch + 1}/{cfg.epochs}: loss {total / len(h):.4f}")
    with torch.no_grad():
        out_e = ent / ent.norm(dim=1, keepdim=True).clamp_min(1e-12)
        out_e[0] = 0.0
        out_r = rel.detach().clone()
        out_r[0] = 0.0
    return out_e.detach(), out_r
