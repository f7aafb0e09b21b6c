"""Exporters: the serving wrapper (the artifact contract), ExecuTorch (.pte) and ONNX (.onnx).

Heavy imports (executorch, onnx, onnxruntime) stay inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import logging
import warnings


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
