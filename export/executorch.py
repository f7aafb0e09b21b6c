"""ExecuTorch export: torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte.

fp32: the serving graph as is. The tied table is one tensor in the graph, but XNNPACK keeps its
own pre-packed copy for the scores (a fully connected layer), so an fp32 .pte holds it twice:
the price of running the scores inside XNNPACK (≈ 2× faster than a portable matmul).
A model compressed by `toolkit.compression` already holds its integer weights (table stored once
as int8/int4 with per-row scales, int8 linears): it is lowered as is, without constant
propagation, which would otherwise fold the integer table's dequantization into an fp32 copy;
an int8 table's scores become XNNPACK's dynamically quantized linear on the same int8 rows
(`quantize_scores_int8_`: 0.22 ms instead of 3 ms a request at 50,000 items on the host).
int8: the item lookup becomes an int8 weight-only embedding (torchao `quantize_` with
`IntxWeightOnlyConfig`, per row), then PT2E quantization with the `XNNPACKQuantizer` for the
linear layers, the output item scores included: int8 per-channel weights, activations quantized
dynamically per call (run through once on real training histories to prepare the graph).
XNNPACK does not delegate embedding/gather/topk: those run in the portable/quantized kernels of
the ExecuTorch runtime.
"""

from __future__ import annotations

from pathlib import Path

import torch

from export.serving import ServingModel, example_input


def _lower_to_pte(module: torch.nn.Module, max_history: int, const_prop: bool = True) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    exported = torch.export.export(module, (example_input(max_history),), strict=False)
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    # quant fusion turns torchao's dequantize_affine + embedding into the runtime's
    # quantized_decomposed::embedding_byte kernel (the int8 table stays int8 in the file)
    program = edge.to_executorch(ExecutorchBackendConfig(do_quant_fusion_and_const_prop=const_prop))
    return program.buffer


def quantize_int8_(serving: ServingModel, calibration: torch.Tensor) -> torch.nn.Module:
    """Int8 graph for XNNPACK: weight-only int8 lookup table + per-channel int8 linears (dynamic activations).

    Args:
        serving: a `ServingModel` built with `split_table=True` (changed in place: its lookup table).
        calibration: real padded histories (C, L) run through the prepared graph.
    Returns:
        The converted (quantized) graph module, ready for `torch.export`.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    generic = getattr(serving, "generic", False)  # a user's module: its own embeddings and linears
    assert serving.split_table or stored_once(serving) or generic, \
        "int8 needs the lookup and the scores as separate tensors"
    lookups = untied_embeddings(serving) if generic else {"model.items.embedding"}  # not the positions
    quantize_(
        serving,
        IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
        lambda m, fqn: fqn in lookups,
    )
    max_history = calibration.shape[1]
    graph = torch.export.export(serving, (example_input(max_history),), strict=False).module()
    # linear layers only: the int64 history, scatter and topk stay as they are
    # dynamic: each call quantizes its activations with their own range (XNNPACK's QD8 linears).
    # Static ranges calibrated on training histories cost 6 % NDCG@10 on a small student (0.064 vs
    # float 0.068; dynamic 0.069, as fast); ONNX Runtime's int8 is dynamic too.
    quantizer = XNNPACKQuantizer().set_module_type(
        torch.nn.Linear, get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    )
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for row in calibration:
            prepared(row.unsqueeze(0))
    return convert_pt2e(prepared)


def untied_embeddings(module: torch.nn.Module) -> set[str]:
    """The names of the nn.Embedding layers whose weight no other layer shares (a table tied to an
    output linear stays float: weight-only int8 of the lookup would change the scores' weight too)."""
    owners: dict[int, int] = {}
    for _, p in module.named_parameters(remove_duplicate=False):
        owners[id(p)] = owners.get(id(p), 0) + 1
    return {name for name, m in module.named_modules()
            if isinstance(m, torch.nn.Embedding) and owners.get(id(m.weight), 0) == 1}


def quantize_scores_int8_(serving: ServingModel, max_history: int) -> torch.nn.Module:
    """A compressed model's int8 table (`serving.int8_scores`): only the scores linear becomes
    XNNPACK's dynamically quantized linear (per-row int8 weights: its rows are already on the int8
    grid, so they quantize back to the same integers). Everything else stays as compressed."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = example_input(max_history)
    graph = torch.export.export(serving, (example,), strict=False).module()
    quantizer = XNNPACKQuantizer().set_module_name(
        "output", get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        prepared(example)  # dynamic ranges: one pass only prepares the graph
    return convert_pt2e(prepared)


def stored_once(serving: ServingModel) -> bool:
    """True when the model's item table is already integer, stored once (toolkit.compression)."""
    table = getattr(serving.model, "items", None)  # None: an ensemble teacher, float tables
    return table is not None and getattr(table, "embedding", None) is None


def export_executorch(serving: ServingModel, path: Path, max_history: int,
                      calibration: torch.Tensor | None = None) -> Path:
    """Write the serving graph as a .pte; int8 when `calibration` histories are given.

    A model compressed by `toolkit.compression` (integer table stored once) is written as it is:
    its weights are already quantized, `calibration` is not needed and is ignored.
    """
    once = stored_once(serving)
    if once:
        module = quantize_scores_int8_(serving, max_history) if getattr(serving, "int8_scores", False) else serving
    else:
        module = serving if calibration is None else quantize_int8_(serving, calibration)
    path.write_bytes(_lower_to_pte(module, max_history, const_prop=not once))
    return path
