"""Model file formats, told apart by content rather than by file name.

TorchScript archives, ``torch.export`` archives (``.pt2``) and ``torch.save`` pickles
are all zip files; their member names tell them apart without reading the members.
ONNX files are protobuf, checked with ``onnx.checker``. A pickle is never loaded
here: unpickling runs arbitrary code.
"""

from __future__ import annotations

import zipfile
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
    except Exception as error:  # protobuf raises several types for garbage
        raise UnsupportedModel(f"not an ONNX model ({error})") from None
    if not model.graph.node:
        raise UnsupportedModel("not an ONNX model (no graph)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
        raise UnsupportedModel(f"the ONNX checker rejects it: {first_line}") from None
    return model


@dataclass(frozen=True)
class OnnxSignature:
    inputs: list[IOShape]
    outputs: list[IOShape]


def onnx_signature(path: str) -> OnnxSignature:
    """The checked model's inputs and outputs. Runs in a helper process of the server."""
    graph = check_onnx(Path(path)).graph
    return OnnxSignature(onnx_io_shapes(graph, graph.input), onnx_io_shapes(graph, graph.output))
