"""ONNX export: torch.onnx.export(dynamo=True) of the serving graph -> .onnx (ONNX Runtime).

int8 uses ONNX Runtime's own quantization tool (`onnxruntime.quantization.quantize_dynamic`):
per-channel int8 weights for every MatMul (the output item scores included) and the Gather
item table, activations quantized at run time. The serving graph is built with a split table
(`ServingModel(split_table=True)`) so the Gather and the scores MatMul own separate weights.

Size: the exporter's own optimizer folds constants up to 256K elements, which turns a model's
integer tables (toolkit.compression: int8/int4 stored once, dequantized at run time) back into
fp32 copies; here only small constants are folded (`FOLD_LIMIT`). Per-node debug metadata (stack
traces, FX node text), node names and intermediate value_info are dropped and weights get short
names: ONNX Runtime needs none of it, and it was a third of a small model's file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from export.serving import HISTORY_NAME, OUTPUT_NAMES, ServingModel, example_input

OPSET = 18
FOLD_LIMIT = 64  # largest constant (elements) the optimizer may fold: integer weights stay integer
SCORES_WEIGHT = "output.weight"  # ServingModel.output's weight, as the exporter names it


def _strip(model) -> None:
    """Drop what only debugging needs: node metadata, names and doc strings, intermediate value_info."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        node.name = ""  # optional in ONNX; ~20 bytes a node, 5 % of a 25 KB model
    del model.graph.value_info[:]
    del model.graph.metadata_props[:]  # the exporter's graph-signature text (~2.5 KB)
    # weights get short names: "model.blocks.0.attn.q.qweight" is written once for the initializer
    # and again for every node that reads it (~2.5 KB of a 25 KB model)
    taken = {o for node in model.graph.node for o in node.output} | {v.name for v in model.graph.input}
    names = {init.name: f"w{i}" for i, init in enumerate(model.graph.initializer)}
    if taken & set(names.values()):
        return  # a short name is already a value's name: keep the long ones
    for init in model.graph.initializer:
        init.name = names[init.name]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]


def _quantize_scores_int8(fp32_path: Path, int8_path: Path):
    """A compressed model's int8 table: only the scores (the node reading `output.weight`, whose rows
    are already on the int8 grid) become ORT's MatMulInteger with per-row int8 weights, activations
    quantized at run time. Left as a float matmul, ORT folds the table's Cast into an fp32 copy at
    load (the 50,000-item build's compressed .onnx: 49.8 MB resident against a 48 MB budget)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32_path)).graph
    if not any(SCORES_WEIGHT in n.input for n in graph.node):
        raise RuntimeError(f"no node reads {SCORES_WEIGHT}: the exporter renamed the scores weight")
    others = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and SCORES_WEIGHT not in n.input]
    quantize_dynamic(fp32_path, int8_path, op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=others,
                     per_channel=True, weight_type=QuantType.QInt8)
    return onnx.load(str(int8_path))


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
            optimize=False,
            verbose=False,
        )
        import onnxscript.optimizer

        program.model = onnxscript.optimizer.optimize(program.model, input_size_limit=FOLD_LIMIT,
                                                      output_size_limit=FOLD_LIMIT)
        program.save(str(fp32_path), external_data=False)
        # a model compressed by toolkit.compression already holds its integer weights (table stored
        # once): ORT's quantizer would only add dynamic activation quantization on top
        # (an int8 table's scores excepted: `serving.int8_scores`, below)
        once = getattr(getattr(serving.model, "items", None), "embedding", 0) is None
        if once and getattr(serving, "int8_scores", False):
            model = _quantize_scores_int8(fp32_path, Path(tmp) / "model.int8.onnx")
        elif not int8 or once:
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
    _strip(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
