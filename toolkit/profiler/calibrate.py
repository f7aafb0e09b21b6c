"""Host calibration: how many fp32 GFLOP/s this machine sustains at a given thread count.

A profile's `hardware.gflops` is the same figure for the target device; the profiler scales the
host's measured latency by `host_gflops / profile.gflops` to estimate the device's latency (an
estimate: it assumes the model is compute-bound like the benchmark). The benchmark is a square
fp32 matrix multiply through numpy's BLAS, so it needs only Python and numpy and runs on a
real device too (`python -m toolkit calibrate --threads 2` on a Raspberry Pi or in Termux),
printing the `gflops = X` line to put in that device's profile.

The measurement runs in a fresh process: BLAS reads its thread count from the environment when
numpy is first imported (it must be 1 here, see `measure_gflops`), and a process that already
trained a model is not a clean baseline.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from toolkit.core.errors import ToolkitError
from toolkit.profiler.host import load_average

# environment variables the common BLAS builds read for their thread count at import time
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                     "NUMEXPR_NUM_THREADS")


@dataclass
class CalibrationConfig:
    threads: int = 1
    size: int = 256  # n of the (n, n) @ (n, n) fp32 product: 2n^3 FLOP; 3 x 256 KB fits a core's L2
    seconds: float = 1.0  # measuring time after warm-up
    warmup_seconds: float = 0.2


@dataclass
class Calibration:
    threads: int
    gflops: float  # 90th percentile over the repetitions: the rate when nothing else interrupts
    gflops_median: float
    repetitions: int
    size: int
    blas: str
    machine: str
    load_average: float  # 1-minute load when measured: above cpus - threads, the figures are disturbed
    cpus: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_gflops(cfg: CalibrationConfig) -> Calibration:
    """Measure in this process; BLAS must already be limited to one thread (see `calibrate`).

    `cfg.threads` Python threads each multiply their own matrices with single-threaded BLAS (numpy
    releases the GIL inside matmul), and the machine's rate is the sum of the threads' rates. That
    measures what `threads` cores sustain together without a multi-threaded BLAS's barriers, which
    collapse by orders of magnitude when a core is shared with another process.
    """
    import platform
    import threading

    import numpy as np

    flop = 2.0 * cfg.size ** 3
    rates: list[list[float]] = [[] for _ in range(cfg.threads)]
    start = threading.Barrier(cfg.threads)

    def run(index: int) -> None:
        rng = np.random.default_rng(index)
        a = rng.standard_normal((cfg.size, cfg.size), dtype=np.float32)
        b = rng.standard_normal((cfg.size, cfg.size), dtype=np.float32)
        c = np.empty_like(a)
        start.wait()
        deadline = time.perf_counter() + cfg.warmup_seconds
        while time.perf_counter() < deadline:
            np.matmul(a, b, out=c)
        deadline = time.perf_counter() + cfg.seconds
        while time.perf_counter() < deadline or len(rates[index]) < 5:
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            rates[index].append(flop / (time.perf_counter() - t0) / 1e9)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(cfg.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return Calibration(threads=cfg.threads, gflops=float(sum(np.percentile(r, 90) for r in rates)),
                       gflops_median=float(sum(np.median(r) for r in rates)),
                       repetitions=sum(len(r) for r in rates), size=cfg.size, blas=_blas_name(),
                       machine=f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
                       load_average=load_average(), cpus=os.cpu_count() or 0)


def calibrate(cfg: CalibrationConfig) -> Calibration:
    """Measure in a fresh process (BLAS limited to one thread per calling thread)."""
    from toolkit.profiler.fresh import MeasurementError, run_fresh

    try:
        result = run_fresh("toolkit.profiler.calibrate:measure_request", asdict(cfg), timeout=120 + 10 * cfg.seconds,
                           env={k: "1" for k in _THREAD_VARIABLES})
    except MeasurementError as e:
        raise ToolkitError(f"calibration failed: {e}") from None
    return Calibration(**result)


def measure_request(request: dict) -> dict:
    """The fresh process's side of `calibrate`."""
    return measure_gflops(CalibrationConfig(**request)).to_dict()


class CalibrationCache:
    """Host GFLOP/s per thread count, measured once per build or profiling run."""

    def __init__(self, cfg: CalibrationConfig | None = None):
        self.cfg = cfg or CalibrationConfig()
        self._by_threads: dict[int, Calibration] = {}

    def get(self, threads: int) -> Calibration:
        if threads not in self._by_threads:
            from dataclasses import replace

            self._by_threads[threads] = calibrate(replace(self.cfg, threads=threads))
        return self._by_threads[threads]


def _blas_name() -> str:
    import numpy as np

    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy has no mode="dicts"; the name is only informative
        return "unknown BLAS"
