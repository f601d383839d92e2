"""Checking an uploaded weight against what the user declared, before it is registered.

The format is told from the content: PyTorch archives by their member names (read in
this process: nothing is unpickled), ONNX files by ``onnx.checker`` in a helper
process, so that a hostile or huge protobuf never runs in the web process. An ONNX
graph's inputs and outputs fill in what the user left out, and a contradiction is
BAD_USER_INPUT naming the field.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from modelci.profiling.formats import (
    OnnxSignature,
    UnsupportedModel,
    archive_format,
    onnx_signature,
)
from modelci.schema.domain import Engine, Framework, IOShape, ModelFields, WeightFormat
from modelci.schema.errors import BadUserInput

# What each format must be declared as.
DECLARED_AS = {
    WeightFormat.ONNX: ({Engine.ONNX}, None),
    WeightFormat.TORCHSCRIPT: ({Engine.TORCHSCRIPT}, Framework.PyTorch),
    WeightFormat.TORCH_EXPORT: ({Engine.PYTORCH}, Framework.PyTorch),
    WeightFormat.TORCH_PICKLE: ({Engine.PYTORCH}, Framework.PyTorch),
}
FORMAT_OF_ENGINE = {
    Engine.ONNX: "an ONNX model",
    Engine.TORCHSCRIPT: "a TorchScript archive",
    Engine.PYTORCH: "a torch.export archive (.pt2) or an allowed pickle",
}


class ModelInspector:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.pool: ProcessPoolExecutor | None = None

    async def checked(
        self, fields: ModelFields, path: Path
    ) -> tuple[ModelFields, WeightFormat | None]:
        """The fields completed from the file, and its format; BAD_USER_INPUT if they disagree."""
        try:
            found = archive_format(path)
        except UnsupportedModel:
            found = None
        if found is None and fields.engine is Engine.ONNX:
            signature = await self.onnx_signature(path)
            return with_signature(fields, signature), WeightFormat.ONNX
        if found is None:
            if fields.engine in FORMAT_OF_ENGINE:
                raise BadUserInput(
                    f"weight: engine {fields.engine.value} needs {FORMAT_OF_ENGINE[fields.engine]}"
                    ", and this file is none",
                    field="weight",
                )
            return fields, None  # a format the hub stores but does not read (TFS, TRT, …)
        if found is WeightFormat.TORCH_PICKLE and not self.allow_pickle:
            raise BadUserInput(
                "weight: a pickled PyTorch model runs arbitrary code when loaded; this server "
                "refuses it unless started with --allow-pickle. Register TorchScript, "
                "torch.export (.pt2) or ONNX instead.",
                field="weight",
            )
        check_declaration(fields, found)
        return fields, found

    async def onnx_signature(self, path: Path) -> OnnxSignature:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self.pool is None:
                self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            try:
                return await loop.run_in_executor(self.pool, onnx_signature, str(path))
            except UnsupportedModel as error:
                raise BadUserInput(f"weight: {error}", field="weight") from None
            except BrokenProcessPool:
                self.pool = None  # the helper died (a crafted file?): start afresh once
                if attempt == 2:
                    raise BadUserInput(
                        "weight: the ONNX file crashed its checker", field="weight"
                    ) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def check_declaration(fields: ModelFields, weight_format: WeightFormat) -> None:
    """BAD_USER_INPUT unless the declared framework and engine fit the file's format."""
    engines, framework = DECLARED_AS[weight_format]
    if fields.engine not in engines or (framework and fields.framework is not framework):
        raise BadUserInput(
            f"weight: the file is {weight_format.value}, which is registered as framework "
            f"{(framework or fields.framework).value}, engine "
            f"{'/'.join(engine.value for engine in engines)}; the input says framework "
            f"{fields.framework.value}, engine {fields.engine.value}",
            field="weight",
        )


def with_signature(fields: ModelFields, signature: OnnxSignature) -> ModelFields:
    return fields.model_copy(
        update={
            "inputs": reconciled("inputs", fields.inputs, signature.inputs),
            "outputs": reconciled("outputs", fields.outputs, signature.outputs),
        }
    )


def reconciled(field: str, declared: list[IOShape], graph: list[IOShape]) -> list[IOShape]:
    """The declared tensors if the graph agrees with them, the graph's if none were declared."""
    if not declared:
        return graph
    by_name = {tensor.name: tensor for tensor in graph}
    if sorted(by_name) != sorted(tensor.name for tensor in declared):
        raise BadUserInput(
            f"input.{field}: the graph's {field} are {sorted(by_name)}, "
            f"not {sorted(tensor.name for tensor in declared)}",
            field=field,
        )
    for index, tensor in enumerate(declared):
        actual = by_name[tensor.name]
        where = f"input.{field}[{index}]"
        if len(tensor.shape) != len(actual.shape) or any(
            graph_dim != -1 and graph_dim != declared_dim
            for declared_dim, graph_dim in zip(tensor.shape, actual.shape, strict=True)
        ):
            raise BadUserInput(
                f"{where}.shape: {tensor.shape} contradicts the graph's {actual.shape} "
                "(-1: dynamic)",
                field=field,
            )
        if tensor.dtype is not actual.dtype:
            raise BadUserInput(
                f"{where}.dtype: {tensor.dtype.value} contradicts the graph's {actual.dtype.value}",
                field=field,
            )
    return declared
