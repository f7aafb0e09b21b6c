"""What this process and its host are doing while a figure is measured: resident memory (now, the peak,
resetting the peak) and the host's load (other processes' share of the CPUs, the load average), so a
figure taken on a busy machine says so.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


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
