"""What an artifact's program holds: a .pte's XNNPACK delegation, the operators outside it and its
memory plan (read from the serialized program and the delegate's XNNGraph flatbuffer), an .onnx's node
counts by op type, and the precision either implies.
"""

from __future__ import annotations

from pathlib import Path

# ONNX op types that only appear in a quantized graph
_ONNX_INT8_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul", "QuantizeLinear", "DequantizeLinear",
                  "ConvInteger", "QLinearConv", "GatherBlockQuantized", "MatMulNBits"}


def inspect_ops(path: Path, fmt: str) -> dict:
    """An .onnx's node counts by op type; a .pte's delegation and memory plan (`inspect_pte`)."""
    if fmt == "onnx":
        import collections

        import onnx

        model = onnx.load(str(path), load_external_data=False)
        counts = collections.Counter(n.op_type for n in model.graph.node)
        return {"nodes": sum(counts.values()), "op_types": dict(counts.most_common())}
    return inspect_pte(path.read_bytes())


def inspect_pte(data: bytes) -> dict:
    """Delegation and memory plan of a serialized ExecuTorch program (its first method)."""
    import collections

    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(data)
    program = pte.program
    plan = program.execution_plan[0]
    outside: collections.Counter = collections.Counter()
    delegate_calls = 0
    for chain in plan.chains:
        for instruction in chain.instructions:
            kind = type(instruction.instr_args).__name__
            if kind == "KernelCall":
                op = plan.operators[instruction.instr_args.op_index]
                outside[f"{op.name}.{op.overload}" if op.overload else op.name] += 1
            elif kind == "DelegateCall":
                delegate_calls += 1
    nodes: collections.Counter = collections.Counter()
    quantized_values = 0
    names = _xnnpack_node_names()
    for delegate in plan.delegates:
        if delegate.id != "XnnpackBackend" or delegate.processed.location.name != "INLINE":
            continue
        types, quantized = _xnnpack_graph(program.backend_delegate_data[delegate.processed.index].data)
        quantized_values += quantized
        nodes.update(names.get(t, f"node type {t}") for t in types)
    planned = sum(plan.non_const_buffer_sizes)
    constants = (sum(len(b.storage) for b in program.constant_buffer)
                 + sum(len(d.data) for d in program.backend_delegate_data)
                 + sum(len(b) for b in (pte.named_data.buffers if pte.named_data else [])))
    return {
        "delegates": {d.id: sum(1 for x in plan.delegates if x.id == d.id) for d in plan.delegates},
        "delegate_calls": delegate_calls,
        "xnnpack_nodes_total": sum(nodes.values()),
        "xnnpack_nodes": dict(nodes.most_common()),
        "xnnpack_quantized_values": quantized_values,
        "outside_xnnpack_total": sum(outside.values()),
        "outside_xnnpack": dict(outside.most_common()),
        "planned_buffers": list(plan.non_const_buffer_sizes),
        "program_bytes": planned + constants,
        "program": {"planned_activation_bytes": planned, "constant_bytes": constants,
                    "how": "memory-planned buffers (non_const_buffer_sizes) + constants, delegate payloads "
                           "and named data in the program"},
    }


def _xnnpack_graph(blob: bytes) -> tuple[list[int], int]:
    """Node union types and the number of quantized values of one XNNPACK delegate payload.

    The payload is an XNNHeader ("XH00": flatbuffer offset at bytes 10-14, size at 14-18) followed by
    an XNNGraph flatbuffer (executorch/backends/xnnpack/serialization/schema.fbs). Read with the
    flatbuffers table API: XNNGraph field 1 = xnodes, 2 = xvalues; XNode/XValue field 0 = union type.
    """
    import flatbuffers
    from flatbuffers.table import Table

    if blob[4:8] == b"XH00":
        offset, size = int.from_bytes(blob[10:14], "little"), int.from_bytes(blob[14:18], "little")
        blob = blob[offset:offset + size]
    buf = bytearray(blob)
    graph = Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))

    def union_types(field_index: int) -> list[int]:
        o = graph.Offset(4 + 2 * field_index)
        if not o:
            return []
        start, types = graph.Vector(o), []
        for i in range(graph.VectorLen(o)):
            item = Table(buf, graph.Indirect(start + 4 * i))
            to = item.Offset(4)
            types.append(item.Get(flatbuffers.number_types.Uint8Flags, item.Pos + to) if to else 0)
        return types

    quantized = sum(1 for t in union_types(2) if t == 2)  # XValueUnion: 1 = XNNTensorValue, 2 = XNNQuantizedTensorValue
    return union_types(1), quantized


def _xnnpack_node_names() -> dict[int, str]:
    """XNodeUnion member index -> name, read from the schema shipped with the installed executorch."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    schema = Path(list(spec.submodule_search_locations)[0]) / "backends/xnnpack/serialization/schema.fbs"
    try:
        body = re.search(r"union\s+XNodeUnion\s*\{(.*?)\}", schema.read_text(), re.S).group(1)
    except (OSError, AttributeError):
        return {}
    members = [m.split(":")[0].strip() for m in body.split(",") if m.split(":")[0].strip()]
    members = [re.sub(r"//.*", "", m).strip() for m in members]
    return {i + 1: name.removeprefix("XNN") for i, name in enumerate(m for m in members if m)}


def infer_precision(fmt: str, ops: dict) -> str:
    """"int8" when the program holds quantized operators or values (the build did not say), else "fp32"."""
    if fmt == "executorch":
        names = list(ops.get("outside_xnnpack", {})) + list(ops.get("xnnpack_nodes", {}))
        return "int8" if any("quantized" in n.lower() for n in names) or ops.get("xnnpack_quantized_values") else "fp32"
    return "int8" if set(ops.get("op_types", {})) & _ONNX_INT8_OPS else "fp32"
