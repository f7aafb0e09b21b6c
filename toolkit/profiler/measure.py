"""Measurement: the one place that times calls, reads a process's memory and runs code in a fresh process.

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

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.core.errors import ToolkitError

_ROOT = Path(__file__).resolve().parents[2]
HISTOGRAM_BINS = 30  # bins between the 5th and the 95th percentile of the calls
HISTOGRAM_MAX_BINS = 300


class MeasurementError(Exception):
    """A measurement could not be taken (a runtime crashed, a counter is missing): the figure is unknown."""


# --- memory -------------------------------------------------------------------------------------

@dataclass
class MemoryStatus:
    rss_bytes: int  # resident now
    peak_bytes: int  # high-water mark (since start, or since the last `reset_peak`)


def memory_status() -> MemoryStatus:
    """Current and peak resident memory of this process (Linux /proc; elsewhere the peak for both)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return MemoryStatus(rss_bytes=int(fields["VmRSS"].split()[0]) * 1024,
                            peak_bytes=int(fields["VmHWM"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB
        return MemoryStatus(rss_bytes=peak, peak_bytes=peak)


def current_rss() -> int:
    return memory_status().rss_bytes


def reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- host load ----------------------------------------------------------------------------------

@dataclass
class HostLoad:
    """How busy the host was while measuring: other processes' share of the CPUs, load averages."""

    cpus: int
    load_average_before: float
    load_average_after: float
    others_busy_fraction: float | None  # CPU time used by other processes / (wall time x cpus); None: unknown

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        busy = "unknown" if self.others_busy_fraction is None else f"{self.others_busy_fraction:.0%}"
        return (f"other processes used {busy} of {self.cpus} CPUs; load average {self.load_average_before:.1f} "
                f"→ {self.load_average_after:.1f}")


class LoadMonitor:
    """`with LoadMonitor() as m: ...` then `m.load`: the host's load over the block."""

    def __enter__(self) -> LoadMonitor:
        self._load = load_average()
        self._busy = _cpu_busy_seconds()
        self._own = _own_cpu_seconds()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        cpus = os.cpu_count() or 1
        busy, own = _cpu_busy_seconds(), _own_cpu_seconds()
        others = None
        if busy is not None and self._busy is not None and wall > 0:
            others = max(0.0, min(1.0, ((busy - self._busy) - (own - self._own)) / (wall * cpus)))
        self.load = HostLoad(cpus=cpus, load_average_before=self._load, load_average_after=load_average(),
                             others_busy_fraction=others)


def load_average() -> float:
    """The host's 1-minute load average, -1.0 where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):  # not available on every platform
        return -1.0


def _cpu_busy_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (/proc/stat), None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(x) for x in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --- timing -------------------------------------------------------------------------------------

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


# --- a fresh process ----------------------------------------------------------------------------

@dataclass
class TimedRun:
    """A command run to completion in a fresh process tree: its exit code, wall time and peak memory."""

    exit_code: int
    seconds: float
    peak_rss_bytes: int  # the largest resident set of any process of the tree (ru_maxrss of the children)
    stdout: str
    stderr: str


def run_timed(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> TimedRun:
    """Run `command` under a small wrapper process, so that the peak RSS is that command's tree's
    alone (RUSAGE_CHILDREN of the wrapper), never this process's or its other children's."""
    wrapper = ("import json, resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "print('TIMED_RUN ' + json.dumps([r.returncode, time.perf_counter() - t,"
               " resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))\n")
    done = subprocess.run([sys.executable, "-c", wrapper, *command], env={**os.environ, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("TIMED_RUN ")]
    if not lines:
        raise MeasurementError(f"{command[0]}: the timing wrapper failed ({done.stderr.strip()[-300:]})")
    code, seconds, rss = json.loads(lines[-1].split(" ", 1)[1])
    out = "\n".join(x for x in done.stdout.splitlines() if not x.startswith("TIMED_RUN "))
    return TimedRun(exit_code=code, seconds=seconds, peak_rss_bytes=rss, stdout=out, stderr=done.stderr)


def run_fresh(target: str, request: dict, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run `target` ("package.module:function", taking the request dict and returning a JSON-able
    dict) in a fresh interpreter (with `env` added to its environment) and return its result.

    A fresh process per measurement: one artifact's allocations never count against another's,
    thread pools start from scratch, and the parent's imports (torch after training) are not in
    its memory. The child dies with its parent (Linux), so an interrupted build leaves no worker.

    Raises:
        ToolkitError: the child reported bad input (its message).
        MeasurementError: the child crashed, timed out or wrote no result.
    """
    module, function = target.split(":")
    with tempfile.TemporaryDirectory(prefix="toolkit-measure-") as tmp:
        result_path = Path(tmp) / "result.json"
        env = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        code = "import sys; from toolkit.profiler.measure import fresh_main; sys.exit(fresh_main(sys.argv[1:]))"
        try:
            done = subprocess.run([sys.executable, "-c", code, target, json.dumps(request), str(result_path)],
                                  env=env, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise MeasurementError(f"{function} did not finish within {timeout:.0f} s") from None
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            if "toolkit_error" in result:
                raise ToolkitError(result["toolkit_error"])
            if "measurement_error" in result:
                raise MeasurementError(result["measurement_error"])
            if done.returncode == 0:
                return result
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasurementError(f"{function} failed in its fresh process ({how}: {last})")


def fresh_main(argv: list[str]) -> int:
    """Entry point of the fresh process: argv = [target, request JSON, result path]."""
    import importlib

    target, request, result_path = argv[0], json.loads(argv[1]), Path(argv[2])
    module, function = target.split(":")
    try:
        result, code = getattr(importlib.import_module(module), function)(request), 0
    except ToolkitError as e:
        result, code = {"toolkit_error": str(e)}, 2
    except MeasurementError as e:
        result, code = {"measurement_error": str(e)}, 1
    result_path.write_text(json.dumps(result))
    return code


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
