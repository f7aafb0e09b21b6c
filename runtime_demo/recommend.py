"""Recommend with a finished artifact: original item ids in, the top-K original item ids out.

This is the app side of the artifact contract (shared/DESIGN.md), in Python:
- `items.json` next to the artifact maps item index -> original id (index 0 is padding);
- the model's input is the history as item indices, oldest first, left-padded with 0 to the
  window L the artifact was exported with; a longer history keeps its most recent L items;
- the artifact already excludes the items inside its window. An app knows the *whole* history,
  so `recommend` also drops answers the user already has further back, and answers with a
  non-finite score (nothing left to recommend); a build made with `--repeats allow` (manifest.json's
  `serving.repeats`) recommends seen items on purpose: they are kept;
- then it keeps at most `profile.serving.top_k` answers (from `manifest.json` next to the
  artifact; all of them when there is none): an artifact may return more than top_k candidates
  so that this filtering still leaves top_k.

Every client (this one, node/, cpp/, web/) follows these rules and prints the same JSON.

The runtime (ExecuTorch for .pte, ONNX Runtime for .onnx) is `export.runtime.Predictor`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np

from toolkit.core.contract import ITEMS_FILE, MANIFEST_FILE, read_allow_repeats, read_items, read_top_k
from toolkit.core.errors import ToolkitError

SCORE_DECIMALS = 6  # printed scores: enough to rank, stable across runs and runtimes
_SCORE_QUANTUM = Decimal(1).scaleb(-SCORE_DECIMALS)
RUNTIME_NAMES = {"executorch": "ExecuTorch", "onnx": "ONNX Runtime"}


@dataclass
class Recommendation:
    """Best first. `unknown`: ids of the request that are not in items.json (skipped)."""

    items: list[str]
    scores: list[float]
    unknown: list[str] = field(default_factory=list)
    used: int = 0  # history items the model saw (at most its window)
    known: int = 0  # history items found in items.json


class Recommender:
    """An artifact loaded in its runtime, with the vocabulary that turns ids into indices and back.

    Args:
        model: a .pte or .onnx artifact; items.json must lie next to it.
        threads: intra-op threads of the runtime (ExecuTorch's pool is process-wide).
        verbose: let the runtimes' own log lines through to stderr (hidden by default: a bad
            artifact then gives one clear line, not pages of C++ logging).
    """

    def __init__(self, model: Path, threads: int = 1, verbose: bool = False):
        from export.runtime import Predictor, artifact_format

        self.model = Path(model)
        artifact_format(self.model)  # unknown suffix: a clear error before anything is read
        if not self.model.is_file():
            raise ToolkitError(f"--model {self.model}: no such file")
        self.item_ids = read_items(self.model.parent / ITEMS_FILE)
        self.keep = read_top_k(self.model.parent / MANIFEST_FILE)  # None: keep every answer
        self.allow_repeats = read_allow_repeats(self.model.parent / MANIFEST_FILE)  # keep seen items
        self.index = {item: i for i, item in enumerate(self.item_ids) if i > 0}
        with contextlib.nullcontext() if verbose else quiet_stderr():
            self.predictor = Predictor(self.model, threads=threads)
        self.format = self.predictor.format
        self.max_history = self.predictor.max_history
        self.top_k = self.predictor.top_k  # K, the candidates the model returns

    @property
    def runtime(self) -> str:
        return RUNTIME_NAMES[self.format]

    def encode(self, history: list[str]) -> tuple[np.ndarray, list[str], int]:
        """Original ids (oldest first) -> ((1, L) int64 model input, unknown ids, known count)."""
        indices = [self.index.get(item, 0) for item in history]
        unknown = [item for item, i in zip(history, indices) if i == 0]
        known = [i for i in indices if i > 0]
        window = known[-self.max_history:] if known else []  # the most recent L items
        x = np.zeros((1, self.max_history), dtype=np.int64)  # left padding with 0
        if window:
            x[0, -len(window):] = window
        return x, unknown, len(known)

    def recommend(self, history: list[str]) -> Recommendation:
        """The answer for a history of original item ids, oldest first: the model's candidates
        minus padding, what the whole history holds and non-finite scores, then at most top_k."""
        x, unknown, known = self.encode(history)
        scores, items = self.predictor.predict(x)  # (1, K) float32, (1, K) int64
        seen = set() if self.allow_repeats else set(x[0].tolist()) | {self.index[i] for i in history if i in self.index}
        out_items, out_scores = [], []
        for score, index in zip(scores[0].tolist(), items[0].tolist()):
            if index == 0 or index in seen or not math.isfinite(score):
                continue
            if not 0 < index < len(self.item_ids):
                raise ToolkitError(f"{self.model}: answered item {index}, but {ITEMS_FILE} has "
                                   f"{len(self.item_ids)} entries (items.json from another build?)")
            if self.keep is not None and len(out_items) == self.keep:
                break
            out_items.append(self.item_ids[index])
            out_scores.append(score)
        return Recommendation(out_items, out_scores, unknown, used=int((x > 0).sum()), known=known)


def read_manifest(build_dir: Path) -> dict:
    path = Path(build_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ToolkitError(f"{path}: no such file (needed to know the build's dataset)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ToolkitError(f"{path}: not valid JSON ({e})") from e


def parse_history(text: str) -> list[str]:
    """`--history` "ID,ID,..." (oldest first) -> ids; "" is the empty history."""
    if not text.strip():
        return []
    items = [part.strip() for part in text.split(",")]
    for position, item in enumerate(items, start=1):
        if not item:
            raise ToolkitError(f"--history {text!r}: item {position} is empty; expected ID,ID,... (oldest first)")
    return items


def format_score(score: float) -> str:
    """Fixed 6 decimals, half away from zero: the same text as JavaScript's `toFixed(6)`."""
    if score == 0:
        score = 0.0  # no "-0.000000"
    return str(Decimal(score).quantize(_SCORE_QUANTUM, rounding=ROUND_HALF_UP))


def format_json(rec: Recommendation) -> str:
    """`{"items": [...], "scores": [...]}`: byte-identical for the same answer, here and in node."""
    items = ", ".join(json.dumps(item) for item in rec.items)
    scores = ", ".join(format_score(s) for s in rec.scores)
    return f'{{"items": [{items}], "scores": [{scores}]}}'


def format_table(rec: Recommendation, titles: dict[str, str]) -> str:
    width = max([4] + [len(item) for item in rec.items])
    lines = [f"{'rank':>4}  {'item':<{width}}  {'score':>10}" + ("  title" if titles else "")]
    for rank, (item, score) in enumerate(zip(rec.items, rec.scores), start=1):
        title = f"  {titles.get(item, '')}" if titles else ""
        lines.append(f"{rank:>4}  {item:<{width}}  {format_score(score):>10}{title}")
    return "\n".join(lines)


def warn_unknown(unknown: list[str], shown: int = 10) -> None:
    if not unknown:
        return
    listed = ", ".join(unknown[:shown]) + (f" and {len(unknown) - shown} more" if len(unknown) > shown else "")
    print(f"warning: skipped {len(unknown)} unknown item id(s) not in {ITEMS_FILE}: {listed}", file=sys.stderr)


@contextlib.contextmanager
def quiet_stderr():
    """Hide what the runtimes write to stderr while loading (ExecuTorch's C++ log, import chatter).

    Both levels: file descriptor 2 (native code) and `sys.stderr` (ExecuTorch's bindings route
    their log through it).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stderr(io.StringIO()):
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
