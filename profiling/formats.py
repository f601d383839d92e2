"""Model file formats, told apart by content rather than by file name.

TorchScript archives, ``torch.export`` archives (``.pt2``) and ``torch.save`` pickles
are all zip files; their member names tell them apart. ONNX files are protobuf.
A pickle is never loaded here: unpickling runs arbitrary code.
"""

from __future__ import annotations

import zipfile
from enum import Enum
from pathlib import Path

import onnx


class ModelFormat(Enum):
    ONNX = "ONNX"
    TORCHSCRIPT = "TorchScript"
    TORCH_EXPORT = "torch.export"
    TORCH_PICKLE = "pickled PyTorch"


class UnsupportedModel(ValueError):
    """The file is no model this hub can load; the message says why."""


def detect_format(path: Path) -> ModelFormat:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(name.endswith(("/archive_format", "/models/model.json")) for name in names):
            return ModelFormat.TORCH_EXPORT
        if any("/code/" in name for name in names) and any(
            name.endswith("/constants.pkl") for name in names
        ):
            return ModelFormat.TORCHSCRIPT
        if any(name.endswith("/data.pkl") for name in names):
            return ModelFormat.TORCH_PICKLE
        raise UnsupportedModel("a zip archive that is no PyTorch model")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises several types for garbage
        raise UnsupportedModel(f"neither an ONNX file nor a PyTorch archive ({error})") from None
    if not model.graph.node:
        raise UnsupportedModel("an ONNX file with an empty graph")
    return ModelFormat.ONNX
