"""What each weight format the hub reads is, and what it converts to: the one table of it.

Registration checks a file against it (``modelci.server.inspection``), the CLI infers a
declaration from it (``modelci.cli``), the job use cases take conversion targets from it
(``usecases``) and the converter records a variant's source engine from it
(``modelci.profiling.conversion``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .domain import Engine, Framework, WeightFormat


@dataclass(frozen=True)
class FormatRule:
    name: str  # what a file of this format is, in messages
    engine: Engine  # a file of this format is registered with this engine
    framework: Framework | None  # ... and this framework (None: any)
    converts_to: tuple[Engine, ...]  # TensorRT needs a worker with a GPU and TensorRT
    # What a conversion that names no targets produces: ``converts_to`` less the engines
    # made on request only (TorchScript from a torch.export program: deprecated by torch).
    # AOTInductor only from a torch.export program: its compile runs in a cage that may
    # start processes, so its source must be a graph, never code that runs when loaded
    # (TorchScript's __setstate__, a pickle).
    default_targets: tuple[Engine, ...]
    # Whether the file always says its input shapes (an ONNX graph does; a .pt2's
    # signature may not, TorchScript and pickles never do).
    says_input_shapes: bool


WEIGHT_FORMATS = {
    WeightFormat.ONNX: FormatRule(
        name="an ONNX model",
        engine=Engine.ONNX,
        framework=None,
        converts_to=(Engine.TRT,),
        default_targets=(Engine.TRT,),
        says_input_shapes=True,
    ),
    WeightFormat.TORCHSCRIPT: FormatRule(
        name="a TorchScript archive",
        engine=Engine.TORCHSCRIPT,
        framework=Framework.PyTorch,
        converts_to=(Engine.ONNX, Engine.TRT),
        default_targets=(Engine.ONNX, Engine.TRT),
        says_input_shapes=False,
    ),
    WeightFormat.TORCH_EXPORT: FormatRule(
        name="a torch.export archive (.pt2)",
        engine=Engine.PYTORCH,
        framework=Framework.PyTorch,
        converts_to=(Engine.AOTINDUCTOR, Engine.ONNX, Engine.TRT, Engine.TORCHSCRIPT),
        default_targets=(Engine.AOTINDUCTOR, Engine.ONNX, Engine.TRT),
        says_input_shapes=False,
    ),
    WeightFormat.TORCH_PICKLE: FormatRule(
        name="a pickled PyTorch model",
        engine=Engine.PYTORCH,
        framework=Framework.PyTorch,
        converts_to=(Engine.TORCHSCRIPT, Engine.ONNX, Engine.TRT),
        default_targets=(Engine.TORCHSCRIPT, Engine.ONNX, Engine.TRT),
        says_input_shapes=False,
    ),
    # Compiled native code: made by the hub's own conversions only (never accepted as an
    # upload), run only in the cage.
    WeightFormat.AOTI_PACKAGE: FormatRule(
        name="an AOTInductor package (.pt2)",
        engine=Engine.AOTINDUCTOR,
        framework=Framework.PyTorch,
        converts_to=(),
        default_targets=(),
        says_input_shapes=False,
    ),
}


def may_lack_input_shapes(weight_format: WeightFormat | None) -> bool:
    """Whether a file of this format may leave its input shapes unsaid (None: a file the
    hub does not read, whose shapes no job needs from it)."""
    return weight_format is not None and not WEIGHT_FORMATS[weight_format].says_input_shapes
