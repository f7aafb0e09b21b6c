"""The candidates a plan chooses from: one student architecture and its compression each, and the
search space (`PlanConfig`) they are enumerated from. Pure: no torch, no training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from toolkit.core.errors import ToolkitError

PQ_DIMS_PER_CODE = 4  # a PQ sub-space spans 4 dimensions: 8 bytes an item at dim 32 (RecJPQ-style)


@dataclass(frozen=True)
class Candidate:
    """One student architecture and its compression."""

    dim: int
    layers: int = 1
    heads: int = 1
    embedding_rank: int = 0  # 0 = full item table
    table_bits: int = 32  # 32 | 8 | 4: the item table, stored once
    linear_bits: int = 32  # 32 | 8: block linears and positions
    pq_subspaces: int = 0  # > 0: the item table as product-quantized codes (this many bytes an item)
    two_stage: bool = False  # serve by scoring cluster centroids, then the best clusters' members

    @property
    def quantized(self) -> bool:
        return self.table_bits < 32 or self.linear_bits < 32 or bool(self.pq_subspaces)

    @property
    def compressed(self) -> bool:
        """The plan's model differs from the float student: factorized table and/or integer weights."""
        return self.quantized or bool(self.embedding_rank) or self.two_stage

    @property
    def precision(self) -> str:
        """How the artifact is labelled, e.g. "fp32", "int8", "int4-table+int8", "pq8-table+int8"."""
        if not self.quantized:
            return "fp32"
        table = f"pq{self.pq_subspaces}" if self.pq_subspaces else "fp32" if self.table_bits == 32 else f"int{self.table_bits}"
        linear = "fp32" if self.linear_bits == 32 else "int8"
        return table if table == linear else f"{table}-table+{linear}"

    def name(self) -> str:
        rank = f" r{self.embedding_rank}" if self.embedding_rank else ""
        serving = ", two-stage" if self.two_stage else ""
        return f"dim {self.dim}, {self.layers} block(s), {self.heads} head(s){rank}, {self.precision}{serving}"

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision}


@dataclass
class PlanConfig:
    """The search space and the rules of the choice (how students train: `recipe.config.StudentConfig`)."""

    dims: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    layers: tuple[int, ...] = (1, 2)
    ranks: tuple[float, ...] = (0, 0.5)  # item-table rank as a fraction of dim (0 = full table)
    table_bits: tuple[int, ...] = (32, 8, 4)
    linear_bits: tuple[int, ...] = (32, 8)
    # share of the best NDCG@10 a smaller student may give up (relative; prior order, final pick and the
    # recommended artifact): an absolute 0.002 was 12 % at NDCG@10 0.015 and 2 % at 0.10
    quality_tolerance: float = 0.02
    margin: float = 0.02  # predicted figures must fit with this fraction to spare (files are then measured)
    max_trials: int = 1  # candidates trained (each: distil + compress + export); more only to step down
    max_trials_binding: int = 2  # ... when the budget binds: the best fitting prior is below the best overall
    max_candidates: int = 6  # at most this many tried in all when measured files miss (step-down)
    pq_min_items: int = 20_000  # product-quantized tables are candidates from this catalogue size
    two_stage_min_items: int = 100_000  # two-stage serving is a candidate from this size (below, scoring all is cheap)

    def to_dict(self) -> dict:
        return asdict(self)


def enumerate_candidates(cfg: PlanConfig, int8: bool, num_items: int = 0) -> list[Candidate]:
    """Every architecture x compression; PQ tables and two-stage serving only for catalogues large
    enough to need them (`cfg.pq_min_items`, `cfg.two_stage_min_items`)."""
    out = []
    for dim in cfg.dims:
        for layers in cfg.layers:
            heads = 2 if dim >= 64 else 1
            for frac in cfg.ranks:
                rank = int(dim * frac)
                if frac and (rank < 4 or rank % 2):
                    continue
                for tb in cfg.table_bits:
                    for lb in cfg.linear_bits:
                        if not int8 and (tb < 32 or lb < 32):
                            continue  # a profile without int8 never gets integer artifacts
                        if tb == 4 and (rank or dim) % 2:
                            continue
                        out.append(Candidate(dim, layers, heads, rank, tb, lb))
                if int8 and not frac and num_items >= cfg.pq_min_items and dim % PQ_DIMS_PER_CODE == 0:
                    for lb in cfg.linear_bits:  # PQ codes: one byte per PQ_DIMS_PER_CODE dimensions
                        out.append(Candidate(dim, layers, heads, 0, 32, lb, pq_subspaces=dim // PQ_DIMS_PER_CODE))
    if num_items >= cfg.two_stage_min_items:
        out += [replace(c, two_stage=True) for c in out if c.quantized]
    return out


def candidate_from_dict(d: dict) -> Candidate:
    fields = {k: d[k] for k in ("dim", "layers", "heads", "embedding_rank", "table_bits", "linear_bits",
                                "pq_subspaces", "two_stage") if k in d}
    if "dim" not in fields:
        raise ToolkitError("candidate: missing field 'dim'")
    return Candidate(**fields)
