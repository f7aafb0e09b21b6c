"""ONNX export: torch.onnx.export(dynamo=True) of the serving graph -> .onnx (ONNX Runtime).

int8 uses ONNX Runtime's own quantization tool (`onnxruntime.quantization.quantize_dynamic`):
per-channel int8 weights for every MatMul (the output item scores included) and the Gather
item table, activations quantized at run time. The serving graph is built with a split table
(`ServingModel(split_table=True)`) so the Gather and the scores MatMul own separate weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from export.serving import HISTORY_NAME, OUTPUT_NAMES, ServingModel, example_input

OPSET = 18


def export_onnx(serving: ServingModel, path: Path, max_history: int, int8: bool = False) -> Path:
    """Write the serving graph as a self-contained .onnx file; int8 weights when `int8`."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(
            serving.eval(),
            (example_input(max_history),),
            dynamo=True,
            input_names=[HISTORY_NAME],
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
        program.save(str(fp32_path), external_data=False)
        if not int8:
            model = onnx.load(str(fp32_path))
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            int8_path = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(
                fp32_path,
                int8_path,
                op_types_to_quantize=["MatMul", "Gemm", "Gather"],
                per_channel=True,
                weight_type=QuantType.QInt8,
            )
            model = onnx.load(str(int8_path))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
