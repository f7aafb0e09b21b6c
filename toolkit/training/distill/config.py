"""How a student is distilled: the teacher term's weight and temperature, the top-K kept per position,
and the relational term's settings (off by default: measured, it does not help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class DistillConfig:
    alpha: float = 0.5  # weight of the teacher term
    temperature: float = 1.0  # measured, dim-16 student, 2 seeds: T=1 valid NDCG@10 0.124, T=2 0.123, scratch 0.117
    top_k: int = 64  # top-K form: the teacher's items kept per position
    # β, weight of the relational term (0: off), for teachers with item vectors and graph neighbours (the kg
    # teacher). Off: measured on validation (dim-16 students from the kg teacher, NDCG@10), it does not help
    # and can hurt: MovieLens-100K, 3 seeds, mean 0.1236 with β = 1 vs 0.1245 without; a synthetic log
    # with its true topics as the graph (2,000 items, 20,000 interactions, 3 seeds): 0.1746 vs 0.1944, its
    # item table pulled to the teacher's topic clusters (bench/teachers.py, bench/TEACHERS.md)
    relational: float = 0.0
    relational_anchors: int = 256  # anchor items per step
    relational_neighbours: int = 8  # graph neighbours per anchor (over-sampled)
    relational_random: int = 24  # random items per anchor
    relational_temperature: float = 0.1  # τ of the similarity distributions

    def to_dict(self) -> dict:
        return asdict(self)
