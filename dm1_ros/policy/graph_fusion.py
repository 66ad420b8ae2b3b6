"""ONNX graph rewrites for onnxruntime, applied at export: fewer operators for the same numbers.

    fused = fuse_attention(model)     # onnx.ModelProto, changed in place; returns how many blocks were fused

At batch 1 a small policy's latency is mostly per-operator cost, not arithmetic. Each self-attention of
policy/networks.py (`Attention`) exports as about 16 operators (the qkv MatMul and Add, Reshape, Transpose, Split,
three Squeezes, the scale Mul, a Transpose, two MatMuls, Softmax, Transpose, Reshape); onnxruntime's own graph
optimizer leaves them apart. onnxruntime's contrib operator `com.microsoft.Attention` computes the same thing from
the block's input, its qkv weight and bias in one kernel: the qkv layout (q | k | v, each heads x head_dim) and the
1/sqrt(head_dim) scale are the ones Attention uses. The export's parity check runs on the rewritten graph.
onnxruntime runs it on CPU and CUDA; a TensorRT provider leaves that node to the next provider.
"""
from __future__ import annotations

import onnx
from onnx import helper, numpy_helper

CONTRIB_DOMAIN = "com.microsoft"


def fuse_attention(model: onnx.ModelProto) -> int:
    """Replace every exported `Attention` span (scope .../attn/, from qkv/MatMul to Reshape_1) by one
    com.microsoft.Attention node. A span whose shapes are not the expected ones is left as it is."""
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    fused = 0
    for qkv in [n for n in graph.node if n.op_type == "MatMul" and n.name.endswith("/attn/qkv/MatMul")]:
        scope = qkv.name[: -len("qkv/MatMul")]
        add, split_shape, last = (by_name.get(scope + s) for s in ("qkv/Add", "Reshape", "Reshape_1"))
        if add is None or split_shape is None or last is None:
            continue
        weight = next((initializers[i] for i in qkv.input if i in initializers), None)
        bias = next((initializers[i] for i in add.input if i in initializers), None)
        shape = _constant(split_shape.input[1], initializers, constants)
        if weight is None or bias is None or shape is None or len(shape) != 5:
            continue
        dim, heads = weight.dims[0], int(shape[3])
        if list(weight.dims) != [dim, 3 * dim] or list(bias.dims) != [3 * dim] or int(shape[2]) != 3 \
                or heads * int(shape[4]) != dim:
            continue
        x = next(i for i in qkv.input if i not in initializers)
        attention = helper.make_node("Attention", [x, weight.name, bias.name], [last.output[0]],
                                     name=scope + "FusedAttention", domain=CONTRIB_DOMAIN, num_heads=heads)
        graph.node.insert(list(graph.node).index(last), attention)
        graph.node.remove(last)
        fused += 1
    if fused:
        _drop_unused(graph)
        if not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    return fused


def _constant(name: str, initializers: dict, constants: dict):
    if name in initializers:
        return numpy_helper.to_array(initializers[name]).tolist()
    node = constants.get(name)
    if node is None:
        return None
    value = next((a for a in node.attribute if a.name == "value"), None)
    return None if value is None else numpy_helper.to_array(value.t).tolist()


def _drop_unused(graph: onnx.GraphProto) -> None:
    """Remove the nodes and initializers nothing reads any more (the replaced span), until none is left."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
