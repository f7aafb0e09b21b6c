"""Timing: the one place that times calls (memory and load: toolkit/profiler/host.py; a fresh process:
toolkit/profiler/fresh.py).

The profiler (toolkit/profiler/run.py), the runtime demo's `--bench` and the benchmark (bench/) all
call these, so a figure is never computed two ways in two places.

Timing on a shared machine: calls are timed in *blocks* (a contender's uninterrupted run of
`block_calls` calls) and the contenders' blocks are interleaved round by round, so a burst of
other work hits every contender alike. Besides the percentiles over every call (what this host
gave, under whatever load it had), each timing has a *quiet* estimate: the percentiles over the
`quiet_fraction` of blocks whose slowest call is the fastest, the host without the interference
(the rationale of `timeit`'s minimum of repeats). Ranking blocks by their slowest call, not their
median, keeps out the blocks where the scheduler took the CPU away for one call: on a 2-core host
running two other busy processes about 5% of calls lose a 4 ms time slice, which the median does
not see but the p95 does. The device estimates and verdicts use the quiet
figures, so another job on the build machine does not flip a verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

HISTOGRAM_BINS = 30  # bins between the 5th and the 95th percentile of the calls
HISTOGRAM_MAX_BINS = 300


@dataclass
class TimingConfig:
    warmup_calls: int = 50  # per contender, untimed
    block_calls: int = 20  # calls in one block (one contender, uninterrupted)
    min_blocks: int = 50  # per contender: >= 1,000 timed calls each
    min_seconds: float = 1.0
    max_seconds: float = 30.0  # a slow model stops here (at least 4 blocks each)
    quiet_fraction: float = 0.2  # the blocks with the fastest slowest call: they estimate the unloaded host


@dataclass
class Timing:
    """One contender's per-call wall times (ms): over every call, and the quiet estimate."""

    calls: int
    blocks: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    quiet_p50_ms: float
    quiet_p95_ms: float
    quiet_p99_ms: float
    quiet_blocks: int
    histogram: dict = field(default_factory=dict)  # {"edges_ms": [...], "counts": [...]}, every call

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Contender:
    """A callable to time. `prepare` runs before each of its blocks, untimed (e.g. a thread setting)."""

    call: Callable[[object], object]
    prepare: Callable[[], None] | None = None


def time_calls(contenders: dict[str, Contender | Callable], inputs: Sequence, cfg: TimingConfig | None = None
               ) -> dict[str, Timing]:
    """Time every contender on the same inputs (cycled), blocks interleaved round by round."""

    cfg = cfg or TimingConfig()
    named = {k: c if isinstance(c, Contender) else Contender(c) for k, c in contenders.items()}
    samples: dict[str, list[list[float]]] = {k: [] for k in named}
    for c in named.values():
        if c.prepare:
            c.prepare()
        for i in range(cfg.warmup_calls):
            c.call(inputs[i % len(inputs)])
    start = time.perf_counter()
    position = 0
    while True:
        for name, c in named.items():
            if c.prepare:
                c.prepare()
            block = []
            for _ in range(cfg.block_calls):
                x = inputs[position % len(inputs)]
                position += 1
                t0 = time.perf_counter()
                c.call(x)
                block.append((time.perf_counter() - t0) * 1e3)
            samples[name].append(block)
        rounds = len(next(iter(samples.values())))
        elapsed = time.perf_counter() - start
        if (rounds >= cfg.min_blocks and elapsed >= cfg.min_seconds) or (elapsed >= cfg.max_seconds and rounds >= 4):
            break
    return {name: _timing(blocks, cfg) for name, blocks in samples.items()}


def timing_from_samples(samples_ms: Sequence[float], cfg: TimingConfig | None = None) -> Timing:
    """A Timing from per-call times measured elsewhere (a native client), in call order, cut into blocks."""
    cfg = cfg or TimingConfig()
    n = max(1, len(samples_ms) // cfg.block_calls)
    blocks = [list(samples_ms[i * cfg.block_calls:(i + 1) * cfg.block_calls]) for i in range(n)]
    return _timing([b for b in blocks if b], cfg)


def _timing(blocks: list[list[float]], cfg: TimingConfig) -> Timing:
    import numpy as np

    every = np.concatenate([np.asarray(b) for b in blocks])
    slowest = np.array([np.max(b) for b in blocks])
    n_quiet = max(1, int(round(len(blocks) * cfg.quiet_fraction)))
    quiet = np.concatenate([np.asarray(blocks[i]) for i in np.argsort(slowest, kind="stable")[:n_quiet]])
    # log-spaced bins from the fastest to the slowest call, no overflow bin (a few slow calls at 4 ms put
    # a 0.03 ms model's every call into one linear bin): as narrow as HISTOGRAM_BINS bins between p5 and
    # p95 need, so the body of the distribution is drawn in detail and the slow tail is still drawn
    low, high = max(float(every.min()), 1e-6), max(float(every.max()), float(every.min()) * 1.01, 1e-6 * 1.01)
    body = math.log(max(np.percentile(every, 95), low * 1.01) / max(np.percentile(every, 5), low))
    bins = int(min(max(math.ceil(HISTOGRAM_BINS * math.log(high / low) / body), HISTOGRAM_BINS), HISTOGRAM_MAX_BINS))
    edges = np.geomspace(low, high, bins + 1)
    counts, _ = np.histogram(np.clip(every, edges[0], edges[-1]), bins=edges)
    return Timing(calls=int(every.size), blocks=len(blocks), seconds=float(every.sum() / 1e3),
                  p50_ms=float(np.percentile(every, 50)), p95_ms=float(np.percentile(every, 95)),
                  p99_ms=float(np.percentile(every, 99)), mean_ms=float(every.mean()), min_ms=float(every.min()),
                  quiet_p50_ms=float(np.percentile(quiet, 50)), quiet_p95_ms=float(np.percentile(quiet, 95)),
                  quiet_p99_ms=float(np.percentile(quiet, 99)), quiet_blocks=n_quiet,
                  histogram={"edges_ms": edges.tolist(), "counts": counts.tolist()})
