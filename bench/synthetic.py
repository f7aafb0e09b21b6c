"""Large synthetic interaction logs for the scaling benchmark: Zipf popularity plus sequential
structure a sequence model can learn, string ids, deterministic for a seed.

    python bench/synthetic.py --items 50000 --interactions 1000000 --out /tmp/log50k.parquet
    python bench/synthetic.py --shape series --items 6000 --interactions 133508 --out /tmp/log6k.parquet

The catalogue is split into topics; within a topic, items are ordered and each item's successors
are the next few items of its topic (a "series": episodes, a product line, the next article of a
story). A user follows a few favourite topics: each step, with probability `sequential` the next
item is a successor of the previous one, with probability `popular` an item of the whole
catalogue by its Zipf popularity (exponent `zipf`: the hits everyone sees), otherwise an item of
the user's topics by the same popularity. So popularity alone recovers part of the signal and
the sequence and the user's taste the rest, as on real logs.
Timestamps increase within a user (ties are absent); user and item ids are strings.

Two shapes (`SHAPES`): `bench`, the defaults (many short histories, sqrt(items) topics), and
`series`, the shape issue 26 tried the build on: fewer, longer histories (~67 interactions a user:
15,000 users for 10^6 interactions, 2,000 for 133,508), 300 topics, mostly series continuation.

With a Zipf tail, a log draws only part of a large catalogue (5M interactions over 10^6 ids
reach about 74 % of them). `every_item` makes every id occur: each item never drawn replaces the
item of one taste draw of its own topic (a user who likes the topic picks it instead of a popular
one), at a position that is neither one of the user's last two (validation and test targets) nor
followed by a successor draw (which would depend on it), so the sequences keep their structure.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

TASTE, FOLLOW, HIT = 0, 1, 2  # how a row's item was drawn: the user's topics, a successor, a catalogue-wide hit


@dataclass
class SyntheticConfig:
    items: int = 50_000
    interactions: int = 1_000_000
    mean_length: float = 40.0  # interactions per user on average (users = interactions / mean_length)
    topics: int = 0  # 0 = sqrt(items)
    topics_per_user: int = 3
    successors: int = 4  # how many next items of its topic follow an item
    sequential: float = 0.45  # probability that the next item follows the previous one
    popular: float = 0.2  # probability that it is drawn from the whole catalogue by popularity
    zipf: float = 1.05  # popularity exponent within the catalogue
    every_item: bool = False  # every item id occurs at least once (see the module's docstring)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


SHAPES = {
    "bench": SyntheticConfig(),
    "series": SyntheticConfig(mean_length=66.75, topics=300, sequential=0.6, popular=0.15),
}


def shaped(shape: str, items: int, interactions: int, seed: int = 0, every_item: bool = False) -> SyntheticConfig:
    """The generator setting `shape` (one of `SHAPES`) at this size."""
    return replace(SHAPES[shape], items=items, interactions=interactions, seed=seed, every_item=every_item)


def generate(cfg: SyntheticConfig) -> dict[str, np.ndarray]:
    """Columns user (str), item (str), timestamp (int64): about `cfg.interactions` rows."""
    rng = np.random.default_rng(cfg.seed)
    n, topics = cfg.items, cfg.topics or max(2, int(np.sqrt(cfg.items)))
    users = max(1, int(round(cfg.interactions / cfg.mean_length)))
    # items: a random topic each, popularity Zipf over a random order of the catalogue
    topic_of = rng.integers(0, topics, size=n)
    popularity = 1.0 / np.arange(1, n + 1) ** cfg.zipf
    popularity = popularity[rng.permutation(n)]
    order = np.lexsort((rng.random(n), topic_of))  # items grouped by topic, random order within
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    starts = np.searchsorted(topic_of[order], np.arange(topics))
    ends = np.append(starts[1:], n)
    # per topic, a cumulative popularity table to draw from
    topic_cdf = [np.cumsum(popularity[order[s:e]]) for s, e in zip(starts, ends)]
    global_cdf = np.cumsum(popularity)
    # users: lengths (at least 3), favourite topics
    lengths = np.maximum(3, rng.geometric(1.0 / cfg.mean_length, size=users))
    lengths = np.minimum(lengths, 20 * int(cfg.mean_length))
    favourite = rng.integers(0, topics, size=(users, cfg.topics_per_user))
    total = int(lengths.sum())
    out_user = np.repeat(np.arange(users), lengths)
    step = np.concatenate([np.arange(k) for k in lengths]) if users < 200_000 else _steps(lengths)
    current = np.empty(total, dtype=np.int64)
    kind = np.full(total, TASTE, dtype=np.int8)  # how each row was drawn
    drawn_topic = np.full(total, -1, dtype=np.int64)  # the favourite topic of a taste draw
    first = np.flatnonzero(step == 0)
    current[first], drawn_topic[first] = _popular(rng, favourite[out_user[first]], topic_cdf, order, starts, topics)
    for s in range(1, int(lengths.max())):
        rows = np.flatnonzero(step == s)
        prev = current[rows - 1]
        follow = rng.random(len(rows)) < cfg.sequential
        nxt = np.empty(len(rows), dtype=np.int64)
        if follow.any():  # a successor of the previous item in its topic's order (wrapping)
            p = prev[follow]
            t = topic_of[p]
            size = ends[t] - starts[t]
            offset = (position[p] - starts[t] + rng.integers(1, cfg.successors + 1, size=len(p))) % size
            nxt[follow] = order[starts[t] + offset]
            kind[rows[follow]] = FOLLOW
        hit = ~follow & (rng.random(len(rows)) < cfg.popular / max(1e-9, 1 - cfg.sequential))
        if hit.any():  # a catalogue-wide hit
            nxt[hit] = np.searchsorted(global_cdf, rng.random(int(hit.sum())) * global_cdf[-1])
            kind[rows[hit]] = HIT
        taste = ~follow & ~hit
        if taste.any():
            nxt[taste], drawn_topic[rows[taste]] = _popular(rng, favourite[out_user[rows[taste]]], topic_cdf, order,
                                                            starts, topics)
        current[rows] = nxt
    if cfg.every_item:
        last = step >= lengths[out_user] - 2
        free = (kind == TASTE) & ~last & (np.append(kind[1:], TASTE) != FOLLOW)
        _draw_every_item(rng, current, free, drawn_topic, topic_of)
    time = 1_600_000_000 + step * 3600 + rng.integers(0, 3600, size=total)
    item_names = np.array([f"item-{h:08x}" for h in _hashes(n, cfg.seed)], dtype=object)
    user_names = np.array([f"user-{u}" for u in range(users)], dtype=object)
    shuffle = rng.permutation(total)  # a log is not sorted by user
    return {"user": user_names[out_user[shuffle]], "item": item_names[current[shuffle]],
            "timestamp": time[shuffle].astype(np.int64)}


def _draw_every_item(rng, current: np.ndarray, free: np.ndarray, drawn_topic: np.ndarray,
                     topic_of: np.ndarray) -> None:
    """Give each item that no row holds one free row of its topic whose item occurs elsewhere too;
    in rounds, since a replaced item may have been the last copy of its own."""
    n = len(topic_of)
    for _ in range(8):
        count = np.bincount(current, minlength=n)
        missing = np.flatnonzero(count == 0)
        rows = np.flatnonzero(free & (count[current] >= 2))
        if not missing.size or not rows.size:
            break
        # pair the k-th missing item of a topic with the k-th free row of that topic (both shuffled)
        missing = missing[np.lexsort((rng.random(missing.size), topic_of[missing]))]
        rows = rows[np.lexsort((rng.random(rows.size), drawn_topic[rows]))]
        m_topic, r_topic = topic_of[missing], drawn_topic[rows]
        m_rank = np.arange(missing.size) - np.searchsorted(m_topic, m_topic, side="left")
        r_first = np.searchsorted(r_topic, m_topic, side="left")
        r_count = np.searchsorted(r_topic, m_topic, side="right") - r_first
        ok = m_rank < r_count
        # one round may take two copies of the same item: the next round gives it back a row
        chosen = rows[r_first[ok] + m_rank[ok]]
        current[chosen] = missing[ok]
        free[chosen] = False


def _steps(lengths: np.ndarray) -> np.ndarray:
    """0..k-1 for every length k, concatenated, vectorised."""
    ends = np.cumsum(lengths)
    out = np.ones(int(ends[-1]), dtype=np.int64)
    out[0] = 0
    out[ends[:-1]] = 1 - lengths[:-1]
    return np.cumsum(out)


def _popular(rng, favourite: np.ndarray, topic_cdf: list, order: np.ndarray, starts: np.ndarray,
             topics: int) -> tuple[np.ndarray, np.ndarray]:
    """One popularity-weighted item from one of each row's favourite topics; and that topic."""
    topic = favourite[np.arange(len(favourite)), rng.integers(0, favourite.shape[1], size=len(favourite))]
    out = np.empty(len(topic), dtype=np.int64)
    for t in np.unique(topic):
        rows = np.flatnonzero(topic == t)
        cdf = topic_cdf[t]
        if not len(cdf):
            out[rows] = order[starts[t - 1] if t else 0]
            continue
        out[rows] = order[starts[t] + np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1])]
    return out, topic


def _hashes(n: int, seed: int) -> np.ndarray:
    """n distinct pseudo-random 32-bit ids (deterministic)."""
    ids = np.random.default_rng(seed + 1).choice(2**32, size=n, replace=False)
    return ids


def write(cfg: SyntheticConfig, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pa.table(generate(cfg))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=SyntheticConfig.items)
    parser.add_argument("--interactions", type=int, default=SyntheticConfig.interactions)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--every-item", action="store_true", help="every item id occurs at least once")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench", help="the generator setting")
    parser.add_argument("--out", required=True, help=".parquet or .csv")
    args = parser.parse_args(argv)
    cfg = shaped(args.shape, args.items, args.interactions, args.seed, args.every_item)
    path = write(cfg, Path(args.out))
    print(f"wrote {path}: {cfg.to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
