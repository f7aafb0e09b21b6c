"""Load a finished artifact in its real runtime: ExecuTorch for .pte, ONNX Runtime for .onnx.

This is all an app does with an artifact, in Python: load once, then call with a (1, L) int64
history and read `scores` (1, K) and `items` (1, K). The runtime is chosen by the file suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.errors import ToolkitError

FORMAT_BY_SUFFIX = {".pte": "executorch", ".onnx": "onnx"}


class Predictor:
    """A loaded artifact: `predict(history)` -> (scores (1, K) float32, items (1, K) int64)."""

    def __init__(self, path: Path, threads: int = 1):
        self.path = Path(path)
        self.threads = threads
        self.format = artifact_format(self.path)
        if not self.path.is_file():
            raise ToolkitError(f"{self.path}: no such artifact")
        try:
            if self.format == "executorch":
                self._load_executorch()
            else:
                self._load_onnx()
        except ToolkitError:
            raise
        except Exception as e:  # the runtimes raise many types for a corrupt file
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ToolkitError(f"{self.path}: not a loadable {self.format} artifact ({first})") from e

    def _load_executorch(self) -> None:
        import executorch.kernels.quantized  # noqa: F401  registers the int8 embedding kernel
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        _unsafe_reset_threadpool(self.threads)  # XNNPACK's thread pool is process-wide
        program = Runtime.get().load_program(self.path)
        self._method = program.load_method("forward")
        meta = self._method.metadata
        self.max_history = int(meta.input_tensor_meta(0).sizes()[1])
        self.top_k = int(meta.output_tensor_meta(0).sizes()[1])

    def _load_onnx(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.max_history = int(self._session.get_inputs()[0].shape[1])
        self.top_k = int(self._session.get_outputs()[0].shape[1])

    def predict(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        history = np.ascontiguousarray(history, dtype=np.int64).reshape(1, -1)
        if self.format == "executorch":
            import torch

            scores, items = self._method.execute([torch.from_numpy(history)])
            return scores.numpy(), items.numpy()
        scores, items = self._session.run(None, {self._input: history})
        return scores, items


def artifact_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise ToolkitError(f"{path}: unknown artifact type {suffix!r}; valid: {', '.join(FORMAT_BY_SUFFIX)}")
    return FORMAT_BY_SUFFIX[suffix]
