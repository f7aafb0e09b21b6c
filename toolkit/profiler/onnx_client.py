"""The native .onnx client (runtime_demo/cpp/onnx): ONNX Runtime's C API, built once with CMake.

It needs ONNX Runtime's C API header (onnxruntime_c_api.h, from Debian's libonnxruntime-dev; the
onnxruntime wheel ships none) and opens the wheel's own libonnxruntime.so at run time, so it runs
the very runtime the Python figures come from:

    client = onnx_client(log=print)              # None (and why) without cmake/g++/the header
    bench = client.bench(model, histories, threads=1, runs=2000, warmup=200)   # NativeBench, .items too
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError
from toolkit.profiler.native import (RUN_TIMEOUT_S, SOURCE_DIR, Log, NativeBench, cmake_build, host_arch,
                                     native_cache_dir)

if TYPE_CHECKING:  # numpy stays out of the import
    import numpy as np

ONNX_SOURCE_DIR = SOURCE_DIR / "onnx"
ONNX_SOURCES = ("CMakeLists.txt", "bench_onnx.cpp", "../process_memory.h")
ONNX_BINARY = "bench_onnx"
# where the C API header is looked for: $ONNXRUNTIME_INCLUDE_DIR first, then libonnxruntime-dev's place
ONNX_HEADER_DIRS = (Path("/usr/include/onnxruntime"), Path("/usr/local/include/onnxruntime"))


@dataclass(frozen=True)
class OnnxClient:
    """The built `bench_onnx` binary and the ONNX Runtime library it opens (the installed wheel's)."""

    binary: Path
    runtime: Path  # libonnxruntime.so.1.x
    version: str  # the runtime's version (the wheel's)

    def bench(self, model: Path, histories: np.ndarray, threads: int, runs: int, warmup: int) -> NativeBench:
        """Time `runs` calls (after `warmup`) on the (R, L) index rows, cycling; the process's RSS; each row's items."""
        import numpy as np

        rows = np.asarray(histories, dtype=np.int64)
        if rows.ndim != 2:
            raise ToolkitError(f"histories: expected (R, L) item indices, got shape {rows.shape}")
        with tempfile.TemporaryDirectory(prefix="native-onnx-") as tmp:
            path = Path(tmp) / "rows.txt"
            path.write_text("".join(" ".join(map(str, row)) + "\n" for row in rows.tolist()), encoding="utf-8")
            result = subprocess.run([str(self.binary), "--runtime", str(self.runtime), "--model", str(model),
                                     "--histories", str(path), "--bench", str(runs), "--warmup", str(warmup),
                                     "--threads", str(threads)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}, no message"])[-1]
            raise ToolkitError(f"native ONNX Runtime client: {last}")
        f = json.loads(result.stdout)
        return NativeBench(peak_rss_bytes=f["peak_rss_bytes"], rss_after_load_bytes=f["rss_after_load_bytes"],
                           rss_before_load_bytes=f["rss_before_load_bytes"], samples_ms=f["samples_ms"],
                           threads=f["threads"], runs=f["runs"], warmup=f["warmup"], items=f["items"])


def onnx_client(log: Log | None = None) -> OnnxClient | None:
    """The native ONNX Runtime client, built once against the C API header (cached by a hash of its
    sources, the header and the compiler). None, and why through `log`, without a tool or the header."""
    say = log or (lambda msg: None)
    runtime = installed_onnxruntime_library()
    if runtime is None:
        say("native ONNX Runtime client: the onnxruntime package (its libonnxruntime.so) is not installed")
        return None
    header = onnx_header_dir()
    if header is None:
        say("native ONNX Runtime client: onnxruntime_c_api.h not found (apt-get install libonnxruntime-dev, or set "
            "ONNXRUNTIME_INCLUDE_DIR); the .onnx memory is the Python process's")
        return None
    cxx = os.environ.get("CXX", "g++")
    missing = [tool for tool in ("cmake", cxx) if shutil.which(tool) is None]
    if missing:
        say(f"native ONNX Runtime client: {' and '.join(missing)} not found (install: apt-get install cmake g++)")
        return None
    digest = hashlib.sha256()
    for name in ONNX_SOURCES:
        digest.update(name.encode() + b"\0" + (ONNX_SOURCE_DIR / name).read_bytes() + b"\0")
    compiler = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    for part in (str(header), (header / "onnxruntime_c_api.h").read_text(errors="replace"), *compiler):
        digest.update(part.encode() + b"\0")
    out = native_cache_dir() / f"onnx-{host_arch()}-{digest.hexdigest()[:16]}"
    if not (out / ONNX_BINARY).is_file():
        say(f"native ONNX Runtime client: building runtime_demo/cpp/onnx (header {header}) ...")
    binary = cmake_build(ONNX_SOURCE_DIR, out, ONNX_BINARY,
                          [f"-DONNXRUNTIME_INCLUDE_DIR={header}", f"-DCMAKE_CXX_COMPILER={shutil.which(cxx)}"],
                          say, "native ONNX Runtime client")
    version = runtime.name.split(".so.")[-1]
    return None if binary is None else OnnxClient(binary=binary, runtime=runtime, version=version)


def onnx_header_dir() -> Path | None:
    """The folder holding onnxruntime_c_api.h: $ONNXRUNTIME_INCLUDE_DIR, else libonnxruntime-dev's."""
    env = os.environ.get("ONNXRUNTIME_INCLUDE_DIR")
    for folder in ([Path(env)] if env else []) + list(ONNX_HEADER_DIRS):
        if (folder / "onnxruntime_c_api.h").is_file():
            return folder
    return None


def installed_onnxruntime_library() -> Path | None:
    """The installed onnxruntime wheel's libonnxruntime.so.1.x (capi/), without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted((Path(list(spec.submodule_search_locations)[0]) / "capi").glob("libonnxruntime.so.*"))
    return found[-1] if found else None
