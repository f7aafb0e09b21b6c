"""The browser client: a browser profile's .onnx measured where it runs, onnxruntime-web's wasm backend
in headless Chromium (runtime_demo/web/bench.mjs, driven by playwright-core with the system's browser).

    client = browser_client(log=print)           # None (and why) without node, chromium or npm install
    bench = client.bench(model, histories, runs=1000, warmup=50)   # BrowserBench
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ToolkitError

if TYPE_CHECKING:
    import numpy as np

WEB_DIR = Path(__file__).resolve().parents[2] / "runtime_demo" / "web"
CHROMIUM = "/usr/bin/chromium"
RUN_TIMEOUT_S = 600

Log = Callable[[str], None]


@dataclass(frozen=True)
class BrowserBench:
    """`bench.mjs`: the page's figures."""

    samples_ms: list[float]  # each timed session.run (performance.now() on a cross-origin isolated page)
    items: list[list[int]]  # the answer to each history row
    wasm_memory_bytes: int  # onnxruntime-web's WebAssembly linear memory after serving (it only grows: its peak)
    renderer_peak_rss_bytes: int  # VmHWM of the page's renderer process (Blink and V8 included)
    runtime_version: str  # onnxruntime-web's
    isolated: bool


@dataclass(frozen=True)
class BrowserClient:
    chromium: Path

    def bench(self, model: Path, histories: np.ndarray, runs: int, warmup: int) -> BrowserBench:
        """Time `runs` calls (after `warmup`) on the (R, L) index rows, cycling, in one fresh page."""
        import numpy as np

        rows = np.asarray(histories, dtype=np.int64)
        if rows.ndim != 2:
            raise ToolkitError(f"histories: expected (R, L) item indices, got shape {rows.shape}")
        with tempfile.TemporaryDirectory(prefix="browser-") as tmp:
            path = Path(tmp) / "rows.json"
            path.write_text(json.dumps(rows.tolist()), encoding="utf-8")
            result = subprocess.run(["node", str(WEB_DIR / "bench.mjs"), "--model", str(model), "--histories", str(path),
                                     "--runs", str(runs), "--warmup", str(warmup), "--chromium", str(self.chromium)],
                                    capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}, no message"])[-1]
            raise ToolkitError(f"browser client: {last}")
        f = json.loads(result.stdout)
        return BrowserBench(samples_ms=f["samples_ms"], items=f["items"], wasm_memory_bytes=f["wasm_memory_bytes"],
                            renderer_peak_rss_bytes=f["renderer_peak_rss_bytes"], runtime_version=f["runtime_version"],
                            isolated=f["isolated"])


def browser_client(log: Log | None = None) -> BrowserClient | None:
    """Headless Chromium with onnxruntime-web and playwright-core installed in runtime_demo/web; None
    (and why, through `log`) when one is missing. Never installs anything."""
    say = log or (lambda msg: None)
    missing = [why for tool, why in (("node", "Node.js"), (CHROMIUM, "apt-get install chromium"))
               if shutil.which(tool) is None]
    missing += [f"npm install in runtime_demo/web ({p})" for p in ("onnxruntime-web", "playwright-core")
                if not (WEB_DIR / "node_modules" / p).is_dir()]
    if missing:
        say(f"browser client: {'; '.join(missing)} missing: the browser profile's .onnx is measured natively instead")
        return None
    return BrowserClient(chromium=Path(CHROMIUM))
