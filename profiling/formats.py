"""Model file formats, told apart by content rather than by file name.

TorchScript archives, ``torch.export`` archives (``.pt2``) and ``torch.save`` pickles
are all zip files; their member names tell them apart without reading the members.
ONNX files are protobuf, checked with ``onnx.checker``; at registration also by a full
check and a real load in onnxruntime (``registration_signature``, run by the server in
a helper process). A pickle is never loaded here: unpickling runs arbitrary code.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from modelci.schema.domain import IOShape, WeightFormat

from .tensors import onnx_io_shapes


class UnsupportedModel(ValueError):
    """The file is no model this hub can load; the message says why."""


def archive_format(path: Path) -> WeightFormat | None:
    """The PyTorch format of a zip archive (names only: nothing is unpickled); None if no zip."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith(("/archive_format", "/models/model.json")) for name in names):
        return WeightFormat.TORCH_EXPORT
    if any("/code/" in name for name in names) and any(
        name.endswith("/constants.pkl") for name in names
    ):
        return WeightFormat.TORCHSCRIPT
    if any(name.endswith("/data.pkl") for name in names):
        return WeightFormat.TORCH_PICKLE
    raise UnsupportedModel("a zip archive that is no PyTorch model")


def detect_format(path: Path) -> WeightFormat:
    found = archive_format(path)
    if found is not None:
        return found
    check_onnx(path)
    return WeightFormat.ONNX


def check_onnx(path: Path) -> onnx.ModelProto:
    """The ONNX model in ``path``, checked; UnsupportedModel says what is wrong."""
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except MemoryError:
        raise  # not the file's verdict: the caller's memory bound was reached
    except Exception as error:  # protobuf raises several types for garbage
        raise UnsupportedModel(f"not an ONNX model ({error})") from None
    if not model.graph.node:
        raise UnsupportedModel("not an ONNX model (no graph)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise UnsupportedModel(f"the ONNX checker rejects it: {first_line(error)}") from None
    return model


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "invalid"


@dataclass(frozen=True)
class OnnxSignature:
    inputs: list[IOShape]
    outputs: list[IOShape]


def onnx_signature(path: str, load_in_onnxruntime: bool) -> OnnxSignature:
    """The checked model's inputs and outputs. Runs in a helper process of the server,
    under its bounds.

    Beyond ``check_onnx`` it refuses what can never run: a model onnxruntime (the engine
    that will profile it) cannot load, then one the checker's full check (strict shape
    and type inference) rejects. Each step reads the file afresh, so that no two copies
    of the model are held at once.
    """
    model = check_onnx(Path(path))
    graph = model.graph
    signature = OnnxSignature(
        onnx_io_shapes(graph, graph.input), onnx_io_shapes(graph, graph.output)
    )
    external = any(tensor.data_location == onnx.TensorProto.EXTERNAL for tensor in tensors(graph))
    del model, graph
    if external:  # and so neither onnxruntime nor the checker reads files it names
        raise UnsupportedModel(
            "its tensors refer to external data files, which are not uploaded with it; "
            "save the model as one file (onnx.save_model(..., save_as_external_data=False))"
        )
    if load_in_onnxruntime:
        check_loads_in_onnxruntime(path)
    try:
        onnx.checker.check_model(path, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise UnsupportedModel(
            f"the ONNX checker's full check (strict shape inference) rejects it: "
            f"{trimmed(first_line(error))}"
        ) from None
    return signature


def tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The graph's initializers and constant tensors, those of its subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from tensors(subgraph)


# What onnxruntime puts before its reason: the error code, and the (staging) path.
ONNXRUNTIME_PREFIX = re.compile(
    r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Load model from .* failed: ?)?"
)


def check_loads_in_onnxruntime(path: str) -> None:
    """UnsupportedModel with onnxruntime's words unless it can build a CPU session of it."""
    import onnxruntime as ort  # the profiling extra; never imported by the web process

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    # Pre-packed copies of the weights speed up runs, not loading: a check needs 2.5 times
    # the file's size without them, 6 times with.
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.log_severity_level = 3  # errors only: its warnings are not the user's concern
    try:
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except MemoryError:
        raise
    except Exception as error:  # onnxruntime's pybind exceptions share no useful base
        said = ONNXRUNTIME_PREFIX.sub("", " ".join(str(error).split()))
        if "bad_alloc" in said:  # onnxruntime reports a failed allocation as its own error
            raise MemoryError(said) from None
        raise UnsupportedModel(f"onnxruntime cannot load it: {trimmed(said)}") from None


def trimmed(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
