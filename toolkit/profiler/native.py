"""The native (C++) client of the .pte artifacts (ExecuTorch), built once with CMake, then run as an
app runs them.

Owns building `runtime_demo/cpp` against an installed `executorch` package (the host's wheel, or
the aarch64 wheel for a cross build run under qemu), caching the binary, and calling it:

    client = native_client(log=print)            # None (and why, through log) without cmake/g++
    lines = client.recommend(model, [["50", "172"], []])   # JSON lines, as `python -m runtime_demo --json`
    bench = client.bench(model, histories, threads=2, runs=2000, warmup=200)   # NativeBench

The binary is cached under `toolkit.core.cache.cache_dir() / "native"`, keyed by a hash of the sources,
the executorch version, the target and the compiler, so a source change rebuilds it.

The .onnx client is toolkit/profiler/onnx_client.py (it shares this module's CMake build and cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.contract import ITEMS_FILE, read_items
from toolkit.core.errors import ToolkitError

if TYPE_CHECKING:  # numpy stays out of `import toolkit.profiler.native` (the profiler imports it)
    import numpy as np

SOURCE_DIR = Path(__file__).resolve().parents[2] / "runtime_demo" / "cpp"
SOURCES = ("CMakeLists.txt", "recommend.cpp", "process_memory.h", "aarch64-linux-gnu.cmake")
BINARY = "recommend"
BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 900  # a whole build's reference histories under qemu take tens of seconds

Log = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """What the client is built for and how it is run.

    Args:
        arch: "x86_64" (the host) or "arm64".
        executorch_dir: the `executorch` package folder of a wheel for that arch (CMAKE_PREFIX_PATH).
        toolchain: a CMake toolchain file for a cross build (None: the host compiler).
        runner: the command prefix that runs a binary of that arch (e.g. qemu-aarch64 -cpu NAME -L SYSROOT).
    """

    arch: str
    executorch_dir: Path
    toolchain: Path | None = None
    runner: tuple[str, ...] = ()


@dataclass(frozen=True)
class NativeBench:
    """`recommend --bench`: the whole C++ process, runtime included (what an app pays)."""

    peak_rss_bytes: int  # VmHWM of the process at the end: libraries + program + serving
    rss_after_load_bytes: int  # VmRSS once the program and its forward method are loaded
    rss_before_load_bytes: int  # VmRSS before loading: the process with the runtime's libraries
    samples_ms: list[float]  # wall time of each timed model call, in call order
    threads: int  # the size of ExecuTorch's thread pool (XNNPACK's) during the calls
    runs: int
    warmup: int
    items: list[list[int]] = field(default_factory=list)  # the ONNX client: its answer to each history row


@dataclass(frozen=True)
class NativeClient:
    """A built `recommend` binary and how to run it."""

    binary: Path
    target: Target
    executorch_version: str
    env: dict[str, str] = field(default_factory=dict)  # extra environment of every run

    def command(self, *args: str) -> list[str]:
        return [*self.target.runner, str(self.binary), *args]

    def run(self, *args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
        """The binary with ARGS; a non-zero exit raises ToolkitError with its one-line message."""
        result = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **self.env})
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}, no message"])[-1]
            raise ToolkitError(f"native client ({self.target.arch}): {last}")
        return result

    def recommend(self, model: Path, histories: Sequence[Sequence[str]], threads: int = 1) -> list[str]:
        """One JSON line per history (original ids, oldest first), byte for byte `python -m runtime_demo --json`."""
        if not histories:
            return []
        with tempfile.TemporaryDirectory(prefix="native-") as tmp:
            requests = write_histories(Path(tmp) / "histories.jsonl", histories)
            out = self.run("--model", str(model), "--histories", str(requests), "--threads", str(threads))
        lines = out.stdout.splitlines()
        if len(lines) != len(histories):
            raise ToolkitError(f"native client: {len(lines)} answers for {len(histories)} histories")
        return lines

    def bench(self, model: Path, histories: np.ndarray, threads: int, runs: int, warmup: int) -> NativeBench:
        """Time `runs` model calls (after `warmup`) on the (R, L) padded index rows, cycling through them."""
        ids = read_items(Path(model).parent / ITEMS_FILE)
        with tempfile.TemporaryDirectory(prefix="native-") as tmp:
            requests = write_histories(Path(tmp) / "histories.jsonl", indices_to_ids(histories, ids))
            out = self.run("--model", str(model), "--histories", str(requests), "--bench", str(runs),
                           "--warmup", str(warmup), "--threads", str(threads))
        figures = json.loads(out.stdout)
        return NativeBench(peak_rss_bytes=figures["peak_rss_bytes"], rss_after_load_bytes=figures["rss_after_load_bytes"],
                           rss_before_load_bytes=figures["rss_before_load_bytes"], samples_ms=figures["samples_ms"],
                           threads=figures["threads"], runs=figures["runs"], warmup=figures["warmup"])


def native_client(log: Log | None = None) -> NativeClient | None:
    """The C++ client for this host, built against the installed executorch wheel (cached).

    Returns None, and says why through `log`, when cmake or a C++ compiler is missing, the
    executorch package ships no C++ runtime, or the build fails. Never raises for a missing toolchain.
    """
    say = log or (lambda msg: None)
    executorch_dir = installed_executorch_dir()
    if executorch_dir is None:
        say("native client: the executorch package is not installed")
        return None
    return build_client(Target(arch=host_arch(), executorch_dir=executorch_dir), log=say)


def build_client(target: Target, log: Log | None = None, cxx: str | None = None) -> NativeClient | None:
    """Configure and build runtime_demo/cpp for `target` into the cache (once per source hash)."""
    say = log or (lambda msg: None)
    cxx = cxx or ("aarch64-linux-gnu-g++" if target.toolchain else os.environ.get("CXX", "g++"))
    missing = [tool for tool in ("cmake", cxx) if shutil.which(tool) is None]
    if missing:
        say(f"native client ({target.arch}): {' and '.join(missing)} not found (install: apt-get install cmake "
            f"{'g++-aarch64-linux-gnu' if target.toolchain else 'g++'})")
        return None
    if not (target.executorch_dir / "lib" / "cmake" / "executorch").is_dir():
        say(f"native client ({target.arch}): {target.executorch_dir} has no CMake package (lib/cmake/executorch)")
        return None
    version = executorch_version(target.executorch_dir)
    out = native_cache_dir() / f"{target.arch}-{build_key(target, cxx, version)}"
    options = [f"-DCMAKE_PREFIX_PATH={target.executorch_dir}", f"-DCMAKE_CXX_COMPILER={shutil.which(cxx)}"]
    if target.toolchain:
        options.append(f"-DCMAKE_TOOLCHAIN_FILE={target.toolchain}")
    if not (out / BINARY).is_file():
        say(f"native client ({target.arch}): building runtime_demo/cpp against executorch {version} ...")
    binary = cmake_build(SOURCE_DIR, out, BINARY, options, say, f"native client ({target.arch})")
    return None if binary is None else NativeClient(binary=binary, target=target, executorch_version=version)


def cmake_build(source: Path, out: Path, binary: str, options: list[str], say: Log,
                label: str) -> Path | None:
    """Configure and build `binary` of `source` into the cache folder `out` (kept when it is there)."""
    if (out / binary).is_file():
        return out / binary
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for step in (["cmake", "-S", str(source), "-B", str(work), *options],
                     ["cmake", "--build", str(work), "--target", binary]):
            result = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            if result.returncode != 0:
                lines = (result.stdout + result.stderr).strip().splitlines()
                errors = [line for line in lines if "error" in line.lower()] or lines
                say(f"{label}: `{' '.join(step[:2])}` failed: {' | '.join(errors[-3:])}")
                return None
        try:
            work.rename(out)  # atomic: a concurrent build of the same key leaves one complete folder
        except OSError:
            if not (out / binary).is_file():
                raise
    except (OSError, subprocess.TimeoutExpired) as e:
        say(f"{label}: build failed ({e})")
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out / binary


def build_key(target: Target, cxx: str, version: str) -> str:
    """Hash of everything the binary depends on: sources, executorch, target, compiler."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    compiler = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    for part in (target.arch, str(target.executorch_dir), version, *compiler, str(target.toolchain)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def installed_executorch_dir() -> Path | None:
    """The installed `executorch` package folder (a namespace package: no __file__), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("executorch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def executorch_version(executorch_dir: Path) -> str:
    """The wheel's full version, from its CMake package (`EXECUTORCH_BUILD_VERSION`, e.g. 1.5.1+cpu)."""
    version_file = executorch_dir / "lib" / "cmake" / "executorch" / "executorch-config-version.cmake"
    for line in version_file.read_text().splitlines():
        if line.startswith("set(EXECUTORCH_BUILD_VERSION"):
            return line.split('"')[1]
    return "unknown"


def host_arch() -> str:
    import platform

    machine = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(machine, machine)


def indices_to_ids(histories: np.ndarray, ids: list[str]) -> list[list[str]]:
    """(R, L) left-padded index rows -> original ids; the client encodes them back to the same rows."""
    import numpy as np

    histories = np.asarray(histories)
    if histories.ndim != 2:
        raise ToolkitError(f"histories: expected (R, L) item indices, got shape {histories.shape}")
    out = []
    for row in histories.tolist():
        items = [i for i in row if i != 0]
        if row[len(row) - len(items):] != items or not all(0 < i < len(ids) for i in items):
            raise ToolkitError(f"histories: a row is not left-padded item indices 1..{len(ids) - 1}: {row}")
        out.append([ids[i] for i in items])
    return out


def write_histories(path: Path, histories: Sequence[Sequence[str]]) -> Path:
    """JSON Lines: one JSON list of original ids per history (the C++ client's --histories)."""
    path.write_text("".join(json.dumps(list(h)) + "\n" for h in histories), encoding="utf-8")
    return path


def native_cache_dir() -> Path:
    """The native clients' cache folder (both clients' builds, the aarch64 wheel)."""
    from toolkit.core.cache import cache_dir

    return cache_dir() / "native"
