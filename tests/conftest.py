"""Shared fixtures: small real data (the first users of MovieLens-100K) and one tiny real build.

The tiny build runs the real CLI (`python -m toolkit build`) with the real exporters and
runtimes on all of MovieLens-100K, only with few epochs and small models, so tests stay within
minutes (and its student still beats the popularity baseline, so its verdicts mean something).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_BUILD_ARGS = ["--epochs", "4", "--teacher-members", "1", "--teacher-dim", "32", "--student-dim", "16"]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A cache for this test session (data is fetched once into it; teachers trained here)."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["TOOLKIT_CACHE_DIR"] = str(path)
    return path


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m toolkit ARGS` in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "toolkit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def movielens(cache_dir):
    from toolkit.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="session")
def small_split(movielens):
    """Leave-one-out split of the first 150 MovieLens users (real data, small)."""
    from toolkit.data import split_leave_one_out
    from toolkit.data import first_users

    return split_leave_one_out(first_users(movielens, 150))


@pytest.fixture(scope="session")
def tiny_build(cache_dir, tmp_path_factory) -> Path:
    """A complete build directory made by the real CLI on a slice of MovieLens-100K."""
    out = tmp_path_factory.mktemp("build") / "mobile-arm"
    result = run_cli("build", "--profile", "mobile-arm", "--out", str(out), *TINY_BUILD_ARGS)
    assert (out / "manifest.json").is_file(), f"build failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return out


SHOP_BUILD_ARGS = ["--user-col", "customer", "--item-col", "product", "--time-col", "event_time",
                   "--epochs", "2", "--teacher-members", "1", "--teacher-dim", "16", "--student-dim", "16"]


@pytest.fixture(scope="session")
def shop_build(cache_dir, tmp_path_factory):
    """A build with `--repeats allow` made by the real CLI from the generated shop log
    (tests/fixtures/shop_log.py: zone-aware times, duplicates, repeat purchases, string SKUs, CRLF).
    Returns (build folder, ShopLog, the CLI's CompletedProcess)."""
    from fixtures.shop_log import write_shop_log

    folder = tmp_path_factory.mktemp("shop")
    log = write_shop_log(folder / "shop.csv")
    out = folder / "build"
    result = run_cli("build", "--profile", "mobile-arm", "--data", str(log.path), "--repeats", "allow",
                     "--out", str(out), *SHOP_BUILD_ARGS)
    assert (out / "manifest.json").is_file(), f"build failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return out, log, result


WEB_DIR = ROOT / "runtime_demo" / "web"
CHROMIUM = "/usr/bin/chromium"
NPM_INSTALL_TIMEOUT_S = 240


@pytest.fixture(scope="session")
def web() -> Path:
    """runtime_demo/web with onnxruntime-web and playwright-core installed (`npm install --ignore-scripts`):
    the web client's tests and the profiler's browser checks."""
    import shutil

    for tool, why in (("node", "Node.js >= 18"), ("npm", "npm"), (CHROMIUM, "apt-get install chromium")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed ({why})")
    if not all((WEB_DIR / "node_modules" / p).is_dir() for p in ("onnxruntime-web", "playwright-core")):
        result = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=WEB_DIR,
                                capture_output=True, text=True, timeout=NPM_INSTALL_TIMEOUT_S)
        if result.returncode != 0:
            pytest.skip(f"npm install failed (no registry?): {(result.stderr.strip().splitlines() or [''])[-1]}")
    return WEB_DIR


@pytest.fixture(scope="session")
def trained_small(small_split):
    """A small SASRec (dim 16, 2 heads, window 50) trained 4 epochs on the 150-user slice, shared by the
    compression, PQ and two-stage tests. Never changed: tests copy it before changing anything."""
    import torch

    from toolkit.models.sasrec import ModelConfig
    from toolkit.training.loop import TrainConfig, fit

    torch.set_num_threads(1)
    cfg = ModelConfig(num_items=small_split.num_items, dim=16, heads=2, max_history=50, dropout=0.2)
    return fit(cfg, small_split, TrainConfig(epochs=4, patience=4, seed=0)).model.eval()


def top10_agreement(a, b) -> float:
    """Mean overlap of the top-10 items of two score matrices (B, N) (torch tensors)."""
    ta, tb = a.topk(10, dim=1).indices, b.topk(10, dim=1).indices
    return sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(ta, tb)) / (10 * len(ta))


def scores(model, histories):
    """Next-item scores (B, N) of a model in eval mode, padding column masked as in every ranking."""
    import torch

    with torch.no_grad():
        out = model.eval().score_last(histories)
    out[:, 0] = float("-inf")
    return out
