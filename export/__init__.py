"""Exporters: the serving wrapper (the artifact contract), ExecuTorch (.pte) and ONNX (.onnx).

Heavy imports (executorch, onnx, onnxruntime) stay inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

# From this many table rows an int8 table is scored by the runtime's int8 matmul (export/serving.py:
# `int8_scores`), at the price of a second int8 copy of the table in the file: unpacked to fp32 on
# every request instead, it costs ExecuTorch ~60 ns a row outside XNNPACK (3.07 ms at 50,000 items,
# 0.13 ms at MovieLens's 1,683, where the copy would add 36 % to a 160 KB file). The same boundary
# as the sampled softmax's (toolkit.training.loop): a large catalogue.
INT8_SCORES_MIN_ITEMS = 8_192


@contextlib.contextmanager
def quiet_exporters():
    """The exporters warn about internals a user cannot act on; keep the build log readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
