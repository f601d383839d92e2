"""Static profile: parameters, MACs/FLOPs, memory and memory traffic, without timing.

Conventions (the same for every format):
- MACs count the multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul (and their
  torch equivalents); FLOPs = 2 × MACs. Other operators add no MACs and are listed as
  not counted.
- parameters: the trainable weights (BatchNorm running statistics are buffers, not
  parameters, as in PyTorch's ``parameters()``).
- memory: parameter bytes + peak bytes of live activations, for batch 1.
- mread / mwrite: bytes every operator reads (inputs, weights included) and writes
  (outputs); mrw = mread + mwrite.

ONNX models are analysed from their graph after shape inference at batch 1; PyTorch
models by running them once at batch 1 under ``FlopCounterMode`` and a dispatch mode
that records each operator's tensors.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import helper, shape_inference

from modelci.cage.tensors import InputSpec
from modelci.core.domain import StaticProfileResult

MAC_OPERATORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def figures(
    parameters: int,
    macs: int,
    memory: int,
    mread: int,
    mwrite: int,
    uncounted: list[str],
    method: str,
) -> StaticProfileResult:
    """The static profile, by this module's conventions (FLOPs = 2 × MACs)."""
    return StaticProfileResult(
        parameters=parameters,
        macs=macs,
        flops=2 * macs,
        memory=memory,
        mread=mread,
        mwrite=mwrite,
        mrw=mread + mwrite,
        uncounted_operators=uncounted,
        method=method,
    )


# ONNX


def onnx_static_profile(model: onnx.ModelProto, specs: list[InputSpec]) -> StaticProfileResult:
    graph = infer_at_batch_one(model, specs).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}  # name -> (shape, bytes per element)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        known = tensor_shape(value.type)
        if known is not None:
            shapes[value.name] = known
    for name, tensor in initializers.items():
        shapes[name] = (tuple(tensor.dims), element_size(tensor.data_type))
    for node in graph.node:  # constants folded into nodes
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    shapes[node.output[0]] = (
                        tuple(attribute.t.dims),
                        element_size(attribute.t.data_type),
                    )

    def nbytes(name: str) -> int:
        if not name or name not in shapes:
            return 0
        shape, size = shapes[name]
        return math.prod(shape) * size

    running_stats = {
        node.input[index]
        for node in graph.node
        if node.op_type == "BatchNormalization"
        for index in (3, 4)
        if len(node.input) > index
    }
    parameters = sum(
        math.prod(tensor.dims)
        for name, tensor in initializers.items()
        if name not in running_stats and is_float(tensor.data_type)
    )
    parameter_bytes = sum(nbytes(name) for name in initializers if name not in running_stats)

    macs = 0
    mread = mwrite = 0
    uncounted: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        mread += sum(nbytes(name) for name in node.input)
        mwrite += sum(nbytes(name) for name in node.output)
        node_macs = onnx_node_macs(node, shapes)
        if node_macs is None:
            uncounted[node.op_type] += 1
        else:
            macs += node_macs

    return figures(
        parameters=parameters,
        macs=macs,
        memory=parameter_bytes + peak_activation_bytes(graph, set(initializers), nbytes),
        mread=mread,
        mwrite=mwrite,
        uncounted=sorted(uncounted),
        method="ONNX graph after shape inference at batch 1",
    )


def infer_at_batch_one(model: onnx.ModelProto, specs: list[InputSpec]) -> onnx.ModelProto:
    """A copy with every graph input at a concrete shape, shapes inferred throughout."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    by_name = {spec.name: spec for spec in specs}
    initializer_names = {tensor.name for tensor in fixed.graph.initializer}
    for value in fixed.graph.input:
        if value.name in initializer_names:
            continue
        spec = by_name.get(value.name)
        dims = value.type.tensor_type.shape.dim
        declared = spec.concrete_shape(1) if spec and len(spec.shape) == len(dims) else None
        for index, dim in enumerate(dims):
            if declared is not None:
                size = declared[index]
            elif dim.HasField("dim_value") and dim.dim_value > 0:
                size = dim.dim_value
            else:
                size = 1
            dim.Clear()
            dim.dim_value = size
    return shape_inference.infer_shapes(fixed, data_prop=True)


def tensor_shape(value_type: onnx.TypeProto) -> tuple[tuple[int, ...], int] | None:
    if not value_type.HasField("tensor_type"):
        return None
    tensor_type = value_type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = tuple(
        dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim
    )
    if any(dim < 0 for dim in dims):
        return None
    return dims, element_size(tensor_type.elem_type)


def element_size(data_type: int) -> int:
    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 0


def is_float(data_type: int) -> bool:
    try:
        return bool(np.issubdtype(helper.tensor_dtype_to_np_dtype(data_type), np.floating))
    except (KeyError, TypeError, ValueError):
        return data_type == onnx.TensorProto.BFLOAT16


def onnx_node_macs(
    node: onnx.NodeProto, shapes: dict[str, tuple[tuple[int, ...], int]]
) -> int | None:
    """Multiply-accumulates of one node; None for operators that are not counted."""
    if node.op_type not in MAC_OPERATORS:
        return None

    def shape(index: int) -> tuple[int, ...] | None:
        """Input ``index``'s shape; -1: the output's."""
        if index >= len(node.input):
            return None
        name = node.output[0] if index < 0 else node.input[index]
        return shapes[name][0] if name in shapes else None

    attributes = {
        attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute
    }
    if node.op_type == "Conv":
        output, weight = shape(-1), shape(1)
        if output is None or weight is None:
            return None
        return math.prod(output) * math.prod(weight[1:])
    if node.op_type == "ConvTranspose":
        data, weight = shape(0), shape(1)
        if data is None or weight is None:
            return None
        # weight: (C_in, C_out / group, k...): each input element feeds C_out / group × k.
        return math.prod(data) * math.prod(weight[1:])
    if node.op_type == "Gemm":
        a, b = shape(0), shape(1)
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if attributes.get("transA", 0) else (a[0], a[1])
        n = b[0] if attributes.get("transB", 0) else b[1]
        return m * k * n
    # MatMul with numpy broadcasting: every output element takes K multiply-adds.
    a, output = shape(0), shape(-1)
    if a is None or output is None:
        return None
    return math.prod(output) * a[-1]


def peak_activation_bytes(graph: onnx.GraphProto, initializers: set[str], nbytes: Any) -> int:
    """Largest sum of live activation bytes over the nodes in graph order."""
    last_use: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = index
    graph_outputs = {value.name for value in graph.output}
    live = {value.name for value in graph.input if value.name not in initializers}
    current = sum(nbytes(name) for name in live)
    peak = current
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name and name not in live:
                live.add(name)
                current += nbytes(name)
        peak = max(peak, current)
        for name in list(live):
            if last_use.get(name, -1) <= index and name not in graph_outputs:
                live.discard(name)
                current -= nbytes(name)
    return peak


# PyTorch


def torch_static_profile(module: Any, inputs: list[Any]) -> StaticProfileResult:
    """Run ``module`` once at batch 1, counting MACs and every operator's tensor traffic."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    parameters = list(module.parameters())
    flops = FlopCounterMode(display=False)
    recorder = TensorTraffic(flops)
    with torch.inference_mode(), flops, recorder.mode():
        module(*inputs)
    return figures(
        parameters=sum(parameter.numel() for parameter in parameters),
        macs=flops.get_total_flops() // 2,
        memory=sum(p.numel() * p.element_size() for p in parameters) + recorder.peak_bytes,
        mread=recorder.read_bytes,
        mwrite=recorder.written_bytes,
        uncounted=sorted(recorder.operators - recorder.counted_operators),
        method="PyTorch run at batch 1 under FlopCounterMode and a tensor-traffic dispatch mode",
    )


class TensorTraffic:
    """Bytes each aten operator reads and writes, and the peak of live activations."""

    def __init__(self, flops: Any) -> None:
        self.flops = flops
        self.counted_operators: set[str] = set()
        self.read_bytes = 0
        self.written_bytes = 0
        self.live_bytes = 0
        self.peak_bytes = 0
        self.operators: set[str] = set()
        self.tensors_per_storage: Counter[int] = Counter()
        self.storage_sizes: dict[int, int] = {}

    def mode(self) -> Any:
        from torch.utils._python_dispatch import TorchDispatchMode

        traffic = self

        class Recording(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                flops_before = traffic.flops.get_total_flops()
                result = func(*args, **(kwargs or {}))
                if traffic.flops.get_total_flops() > flops_before:
                    traffic.counted_operators.add(operator_name(func))
                traffic.record(func, args, kwargs or {}, result)
                return result

        return Recording()

    def record(self, func: Any, args: Any, kwargs: Any, result: Any) -> None:
        import torch
        from torch.utils._pytree import tree_leaves

        name = operator_name(func)
        if name in {"detach", "view", "_unsafe_view", "t", "alias", "expand", "reshape"}:
            return  # views move no data
        self.operators.add(name)
        inputs = [leaf for leaf in tree_leaves((args, kwargs)) if isinstance(leaf, torch.Tensor)]
        outputs = [leaf for leaf in tree_leaves(result) if isinstance(leaf, torch.Tensor)]
        self.read_bytes += sum(tensor.numel() * tensor.element_size() for tensor in inputs)
        for tensor in outputs:
            self.written_bytes += tensor.numel() * tensor.element_size()
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key == 0:
                continue
            if self.tensors_per_storage[key] == 0:
                self.storage_sizes[key] = storage.nbytes()
                self.live_bytes += storage.nbytes()
            self.tensors_per_storage[key] += 1
            # Storage wrappers are short-lived Python objects; the tensor is what lives.
            weakref.finalize(tensor, self.release, key)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def release(self, key: int) -> None:
        self.tensors_per_storage[key] -= 1
        if self.tensors_per_storage[key] == 0:
            self.live_bytes -= self.storage_sizes.pop(key)


def operator_name(func: Any) -> str:
    return str(func.overloadpacket).removeprefix("aten.")
