"""Serving under load: many requests through one loaded artifact, latency percentiles and RSS.

Each request is the whole app path (`Recommender.recommend`: ids -> indices, the runtime call,
filtering, indices -> ids). RSS is read before the timed requests (after a warm-up) and after
them: a runtime that leaks per request shows up as growth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from runtime_demo.recommend import Recommender
from toolkit.profiler.host import current_rss
from toolkit.profiler.measure import TimingConfig, time_calls

WARMUP_REQUESTS = 50


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
    """One request per history, timed (toolkit.profiler.measure, the profiler's timing loop); the first
    WARMUP_REQUESTS are run untimed first."""
    for history in histories[:WARMUP_REQUESTS]:
        recommender.recommend(history)
    rss_before = current_rss()
    block = TimingConfig.block_calls if len(histories) % TimingConfig.block_calls == 0 else 1  # exactly N requests
    timing = time_calls({"app": recommender.recommend}, histories,
                        TimingConfig(warmup_calls=0, block_calls=block, min_blocks=len(histories) // block,
                                     min_seconds=0.0, max_seconds=float("inf")))["app"]
    rss_after = current_rss()
    return BenchResult(requests=timing.calls, runtime=recommender.runtime, threads=threads, p50_ms=timing.p50_ms,
                       p95_ms=timing.p95_ms, p99_ms=timing.p99_ms, mean_ms=timing.mean_ms,
                       rss_before_bytes=rss_before, rss_after_bytes=rss_after)
