"""Load a finished artifact in its real runtime: ExecuTorch for .pte, ONNX Runtime for .onnx.

This is all an app does with an artifact, in Python: load once, then call with a (1, L) int64
history and read `scores` (1, K) and `items` (1, K). The runtime is chosen by the file suffix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from toolkit.core.contract import OUTPUTS, TensorSpec, contract_differences
from toolkit.core.errors import ToolkitError

FORMAT_BY_SUFFIX = {".pte": "executorch", ".onnx": "onnx"}
# ExecuTorch's ScalarType codes (a .pte's tensor metadata) -> numpy-style names
_EXECUTORCH_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                      7: "float64", 11: "bool", 15: "bfloat16"}
_ONNX_DTYPES = {"float": "float32", "double": "float64"}  # ONNX Runtime's "tensor(float)" etc.; the rest match


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
        diffs = contract_differences(self.inputs, self.outputs, positional=self.format == "executorch")
        if diffs:
            raise ToolkitError(f"{self.path}: does not follow the artifact contract: {'; '.join(diffs)}")
        self.max_history = int(self.inputs[0].shape[1])
        scores = next((t for t in self.outputs if t.name == OUTPUTS[0][0]), self.outputs[0])  # a .pte: positional
        self.top_k = int(scores.shape[1])

    def _load_executorch(self) -> None:
        import executorch.kernels.quantized  # noqa: F401  registers the int8 embedding kernel
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        _unsafe_reset_threadpool(self.threads)  # XNNPACK's thread pool is process-wide
        program = Runtime.get().load_program(self.path)
        self._method = program.load_method("forward")
        meta = self._method.metadata

        def spec(t) -> TensorSpec:
            return TensorSpec("", _EXECUTORCH_DTYPES.get(t.dtype(), f"scalar type {t.dtype()}"), tuple(t.sizes()))

        self.inputs = [spec(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
        self.outputs = [spec(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]

    def _load_onnx(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

        def spec(arg) -> TensorSpec:  # type "tensor(int64)"; a dim is an int, a name or None
            name = arg.type.removeprefix("tensor(").removesuffix(")")
            return TensorSpec(arg.name, _ONNX_DTYPES.get(name, name),
                              tuple(d if isinstance(d, int) else str(d) for d in arg.shape or ()))

        self.inputs = [spec(a) for a in self._session.get_inputs()]
        self.outputs = [spec(a) for a in self._session.get_outputs()]
        self._input = self.inputs[0].name if self.inputs else ""
        self._outputs = [name for name, _ in OUTPUTS]

    def predict(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        history = np.ascontiguousarray(history, dtype=np.int64).reshape(1, -1)
        if self.format == "executorch":
            import torch

            scores, items = self._method.execute([torch.from_numpy(history)])
            return scores.numpy(), items.numpy()
        scores, items = self._session.run(self._outputs, {self._input: history})
        return scores, items


def artifact_format(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMAT_BY_SUFFIX:
        raise ToolkitError(f"{path}: unknown artifact type {suffix!r}; valid: {', '.join(FORMAT_BY_SUFFIX)}")
    return FORMAT_BY_SUFFIX[suffix]
