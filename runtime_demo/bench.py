"""Serving under load: many requests through one loaded artifact, latency percentiles and RSS.

Each request is the whole app path (`Recommender.recommend`: ids -> indices, the runtime call,
filtering, indices -> ids). RSS is read before the timed requests (after a warm-up) and after
them: a runtime that leaks per request shows up as growth.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from runtime_demo.recommend import Recommender

WARMUP_REQUESTS = 50
PERCENTILES = (50, 95, 99)


@dataclass
class BenchResult:
    requests: int
    runtime: str
    threads: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    rss_before_bytes: int
    rss_after_bytes: int

    @property
    def rss_growth(self) -> float:
        """Relative growth of the resident set over the timed requests (0.01 = 1 %)."""
        return self.rss_after_bytes / self.rss_before_bytes - 1

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "rss_growth": round(self.rss_growth, 6)}, sort_keys=True)

    def to_text(self) -> str:
        return (f"{self.requests} requests, {self.runtime}, {self.threads} thread(s)\n"
                f"latency ms: p50 {self.p50_ms:.3f}  p95 {self.p95_ms:.3f}  p99 {self.p99_ms:.3f}  "
                f"mean {self.mean_ms:.3f}\n"
                f"RSS: before {self.rss_before_bytes / 2**20:.1f} MiB, after {self.rss_after_bytes / 2**20:.1f} MiB "
                f"({self.rss_growth:+.2%})")


def bench(recommender: Recommender, histories: list[list[str]], threads: int) -> BenchResult:
    """One request per history, timed; the first WARMUP_REQUESTS are run again untimed first."""
    for history in histories[:WARMUP_REQUESTS]:
        recommender.recommend(history)
    rss_before = current_rss()
    seconds = np.empty(len(histories))
    for n, history in enumerate(histories):
        start = time.perf_counter()
        recommender.recommend(history)
        seconds[n] = time.perf_counter() - start
    rss_after = current_rss()
    p50, p95, p99 = (float(np.percentile(seconds, p) * 1e3) for p in PERCENTILES)
    return BenchResult(requests=len(histories), runtime=recommender.runtime, threads=threads,
                       p50_ms=p50, p95_ms=p95, p99_ms=p99, mean_ms=float(seconds.mean() * 1e3),
                       rss_before_bytes=rss_before, rss_after_bytes=rss_after)


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux /proc; elsewhere the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB
