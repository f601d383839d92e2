"""Input tensors of a model: shapes at a batch size, dtypes, random host data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelci.core.domain import DataType, IOShape

NUMPY_DTYPES: dict[DataType, type[np.generic]] = {
    DataType.TYPE_BOOL: np.bool_,
    DataType.TYPE_UINT8: np.uint8,
    DataType.TYPE_UINT16: np.uint16,
    DataType.TYPE_UINT32: np.uint32,
    DataType.TYPE_UINT64: np.uint64,
    DataType.TYPE_INT8: np.int8,
    DataType.TYPE_INT16: np.int16,
    DataType.TYPE_INT32: np.int32,
    DataType.TYPE_INT64: np.int64,
    DataType.TYPE_FP16: np.float16,
    DataType.TYPE_FP32: np.float32,
    DataType.TYPE_FP64: np.float64,
}

# A dynamic dimension other than the batch gets this size when nothing fixes it.
DYNAMIC_DIMENSION_SIZE = 8


@dataclass(frozen=True)
class InputSpec:
    """One input: its name, its shape with -1 for dynamic sizes, and its element type."""

    name: str
    shape: tuple[int, ...]
    dtype: DataType

    @classmethod
    def of(cls, io: IOShape) -> InputSpec:
        return cls(name=io.name, shape=tuple(io.shape), dtype=io.dtype)

    @property
    def has_batch_axis(self) -> bool:
        return bool(self.shape) and self.shape[0] == -1

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        if not self.shape:
            return ()
        first = batch if self.shape[0] == -1 else self.shape[0]
        rest = tuple(DYNAMIC_DIMENSION_SIZE if dim == -1 else dim for dim in self.shape[1:])
        return (first, *rest)

    def random(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        if self.dtype is DataType.TYPE_STRING or self.dtype is DataType.TYPE_BF16:
            raise ValueError(f"input {self.name}: cannot make random {self.dtype.value} data")
        dtype = NUMPY_DTYPES[self.dtype]
        shape = self.concrete_shape(batch)
        if np.issubdtype(dtype, np.floating):
            return rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        if dtype is np.bool_:
            return rng.integers(0, 2, shape).astype(np.bool_)
        # Small non-negative integers: valid token ids and indices for most models.
        return rng.integers(0, 10, shape).astype(dtype)


def batch_sizes_allowed(specs: list[InputSpec], wanted: list[int]) -> tuple[list[int], str | None]:
    """The batch sizes the declared shapes allow, and a note when some were dropped."""
    fixed = {spec.shape[0] for spec in specs if spec.shape and spec.shape[0] != -1}
    if not fixed or any(spec.has_batch_axis for spec in specs):
        return wanted, None
    if len(fixed) > 1:
        return [], "inputs disagree on their first dimension: no batch sweep"
    (only,) = fixed
    return [only], f"the inputs have a fixed batch of {only}: profiled at that size only"


ONNX_ELEMENT_TYPES = {
    1: DataType.TYPE_FP32,
    2: DataType.TYPE_UINT8,
    3: DataType.TYPE_INT8,
    4: DataType.TYPE_UINT16,
    5: DataType.TYPE_INT16,
    6: DataType.TYPE_INT32,
    7: DataType.TYPE_INT64,
    8: DataType.TYPE_STRING,
    9: DataType.TYPE_BOOL,
    10: DataType.TYPE_FP16,
    11: DataType.TYPE_FP64,
    12: DataType.TYPE_UINT32,
    13: DataType.TYPE_UINT64,
    16: DataType.TYPE_BF16,
}


def onnx_io_shapes(graph: Any, values: Any) -> list[IOShape]:
    """The graph's inputs or outputs (initializers left out) as IOShapes, -1 where dynamic."""
    initializers = {tensor.name for tensor in graph.initializer}
    shapes = []
    for value in values:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dims = [
            dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1
            for dim in tensor_type.shape.dim
        ]
        shapes.append(
            IOShape(
                name=value.name,
                shape=dims,
                dtype=ONNX_ELEMENT_TYPES.get(tensor_type.elem_type, DataType.TYPE_FP32),
            )
        )
    return shapes


def onnx_input_specs(path: Path) -> list[InputSpec]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [InputSpec.of(io) for io in onnx_io_shapes(graph, graph.input)]
