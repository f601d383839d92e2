"""Conversion of PyTorch models into AOTInductor, ONNX and TorchScript variants, verified
numerically.

- AOTInductor, from a ``torch.export`` program only: compiled ahead of time by Inductor
  into a ``.pt2`` package (C++ built by the host's compiler: the only step whose cage
  lets the model's process start others, see ``modelci.cage.runner``; so its source is a
  graph, never code that runs when loaded).
- TorchScript: ``torch.jit.trace`` of the source at batch 2 (on request only for a
  ``torch.export`` source: torch deprecates TorchScript).
- ONNX: the TorchScript exporter (``dynamo=False``) for TorchScript sources, the
  ``torch.export``-based exporter otherwise; every dimension declared -1 is dynamic in
  the graph (the batch axis among them); a current opset.
- TensorRT: only on a machine with a GPU and the ``tensorrt`` package; otherwise the
  job records why it was skipped, never a fake result.

Before a variant is registered, source and variant run the same random inputs of the
declared shapes at two batch sizes; the largest absolute difference and the largest
difference relative to the output's scale (max |variant - source| / max |source|) are
recorded, and a variant beyond ``TOLERANCE`` is not registered.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelci.cage.tensors import InputSpec
from modelci.core.domain import ConversionCheck, Engine, WeightFormat
from modelci.core.weight_formats import WEIGHT_FORMATS

TOLERANCE = 1e-4  # relative to the output's scale, for fp32
VERIFY_BATCHES = (1, 4)
EXAMPLE_BATCH = 2  # export examples avoid 1, which exporters specialise on
ONNX_OPSET = 18
COMPILER_SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class Variant:
    engine: Engine
    path: Path
    check: ConversionCheck


@dataclass
class NotProduced:
    engine: Engine
    reason: str
    skipped: bool  # True: not possible here (no GPU); False: tried and failed


Outcome = Variant | NotProduced
Function = Callable[[list[np.ndarray]], list[np.ndarray]]


def convert(
    path: Path,
    weight_format: WeightFormat,
    specs: list[InputSpec],
    output_names: list[str],
    targets: list[Engine],
    workdir: Path,
    allow_pickle: bool = False,
) -> list[Outcome]:
    """Each target produced and verified, or the reason it was not."""
    outcomes: list[Outcome] = []
    source: Any = None
    refused: str | None = None  # the source itself cannot be run: no target can be made
    for target in targets:
        if target is Engine.TRT:
            outcomes.append(NotProduced(target, tensorrt_unavailable(), skipped=True))
            continue
        try:
            if source is None:
                source = load_torch(path, weight_format, allow_pickle)
                refused = not_runnable(source, specs)
            if refused is not None:
                outcomes.append(NotProduced(target, refused, skipped=False))
                continue
            produced = workdir / f"variant-{target.value.lower()}"
            if target is Engine.AOTINDUCTOR:
                to_aotinductor(source, weight_format, specs, produced, workdir)
                variant_fn = aotinductor_function(produced)
            elif target is Engine.TORCHSCRIPT:
                to_torchscript(source, specs, produced)
                variant_fn = torchscript_function(produced)
            elif target is Engine.ONNX:
                to_onnx(source, weight_format, specs, output_names, produced)
                variant_fn = onnx_function(produced, specs)
            else:
                raise ValueError(f"no conversion to {target.value}")
            check = verify(torch_function(source), variant_fn, specs, weight_format)
        except Exception as error:  # an exporter's failure is this target's outcome
            outcomes.append(NotProduced(target, explained(error), skipped=False))
            continue
        if check.max_rel_diff > TOLERANCE:
            outcomes.append(
                NotProduced(
                    target,
                    f"outputs differ from the source by {check.max_rel_diff:.2e} relative "
                    f"(tolerance {TOLERANCE:.0e}); not registered",
                    skipped=False,
                )
            )
            continue
        outcomes.append(Variant(target, produced, check))
    return outcomes


def tensorrt_unavailable() -> str:
    from .devices import cuda_devices

    gpus, note = cuda_devices()
    if not gpus:
        return "TensorRT skipped: no GPU" + (f" ({note})" if note else "")
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT skipped: the tensorrt package is not installed on this worker"
    return "TensorRT skipped: building TensorRT engines is not implemented yet"


def load_torch(path: Path, weight_format: WeightFormat, allow_pickle: bool) -> Any:
    import torch

    if weight_format is WeightFormat.TORCHSCRIPT:
        return torch.jit.load(str(path), map_location="cpu").eval()
    if weight_format is WeightFormat.TORCH_EXPORT:
        return torch.export.load(str(path))
    if weight_format is WeightFormat.TORCH_PICKLE:
        if not allow_pickle:
            raise PermissionError(
                "this worker does not unpickle models (start it with --allow-pickle)"
            )
        return torch.load(str(path), map_location="cpu", weights_only=False).eval()
    raise ValueError(f"no PyTorch conversion from {weight_format.value}")


def callable_module(source: Any) -> Any:
    """An ExportedProgram runs through its module; other sources are modules already."""
    import torch

    return source.module() if isinstance(source, torch.export.ExportedProgram) else source


def not_runnable(source: Any, specs: list[InputSpec]) -> str | None:
    """Why the source fails on inputs of its declared shapes (a wrong channel count, say),
    found in one run before any exporter is tried; None when it runs."""
    try:
        torch_function(source)(examples(specs, 1))
    except Exception as error:  # whatever the model raises is the user's to read
        declared = ", ".join(
            f"{spec.name} {list(spec.shape)} {spec.dtype.value.removeprefix('TYPE_')}"
            for spec in specs
        )
        return f"the model does not run on its declared inputs ({declared}): {explained(error)}"
    return None


# The line that names an error, as TorchScript and Python end their messages with it.
ERROR_LINE = re.compile(r"^\s*[\w.]*(?:Error|Exception)\b.*:")


def explained(error: BaseException) -> str:
    """An exception as a job shows it: the line that explains it first and the trace of
    where it happened after it (TorchScript's interpreter puts that line last, after
    some forty lines of trace)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    name = type(error).__name__
    if len(lines) > 1 and ERROR_LINE.match(lines[-1]):
        return f"{lines[-1].strip()}\n" + "\n".join(lines[:-1])
    return f"{name}: " + "\n".join(lines)


def examples(specs: list[InputSpec], batch: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [spec.random(batch, rng) for spec in specs]


def to_torchscript(source: Any, specs: list[InputSpec], target: Path) -> None:
    import torch

    inputs = tuple(torch.from_numpy(array) for array in examples(specs, EXAMPLE_BATCH))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.jit.trace(callable_module(source), inputs, check_trace=False).save(str(target))


def dynamic_axes(specs: list[InputSpec]) -> dict[str, dict[int, str]]:
    return {
        spec.name: {axis: f"{spec.name}_{axis}" for axis, dim in enumerate(spec.shape) if dim == -1}
        for spec in specs
    }


def to_onnx(
    source: Any,
    weight_format: WeightFormat,
    specs: list[InputSpec],
    output_names: list[str],
    target: Path,
) -> None:
    import torch

    inputs = tuple(torch.from_numpy(array) for array in examples(specs, EXAMPLE_BATCH))
    names = [spec.name for spec in specs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if weight_format is WeightFormat.TORCHSCRIPT:
            axes = {name: axes for name, axes in dynamic_axes(specs).items() if axes}
            torch.onnx.export(
                source,
                inputs,
                str(target),
                dynamo=False,
                input_names=names,
                output_names=output_names or None,
                opset_version=17,
                dynamic_axes={**axes, **{name: {0: "batch"} for name in output_names}},
            )
            return
        program = exported_program(source, weight_format, specs, inputs)
        onnx_program = torch.onnx.export(
            program,
            inputs,
            dynamo=True,
            input_names=names,
            output_names=output_names or None,
            opset_version=ONNX_OPSET,
        )
        assert onnx_program is not None
        onnx_program.save(str(target))


def exported_program(
    source: Any, weight_format: WeightFormat, specs: list[InputSpec], inputs: tuple[Any, ...]
) -> Any:
    """The source as a ``torch.export`` program whose dimensions declared -1 are dynamic: a
    ``.pt2`` as it was exported, a module exported."""
    import torch

    if weight_format is WeightFormat.TORCH_EXPORT:
        return source  # keeps the dynamic shapes it was exported with
    module = source
    shapes = tuple(
        {
            axis: torch.export.Dim(f"{spec.name}_{axis}", min=1, max=65536)
            for axis, dim in enumerate(spec.shape)
            if dim == -1
        }
        or None
        for spec in specs
    )
    return torch.export.export(module, inputs, dynamic_shapes=shapes)


def use_host_compiler() -> None:
    """Inductor set to run the host's C++ compiler from the cage: by its full path under
    /usr (a g++ run as /bin/g++ looks for its headers and programs under /lib and
    /include), with a PATH to find the assembler and linker (the cage has none), and no
    pool of compiler processes."""
    os.environ["PATH"] = COMPILER_SEARCH_PATH
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1
    compiler = shutil.which(os.environ.get("CXX", "g++"), path=COMPILER_SEARCH_PATH)
    if compiler is not None:
        inductor_config.cpp.cxx = (None, compiler)


def to_aotinductor(
    source: Any, weight_format: WeightFormat, specs: list[InputSpec], target: Path, workdir: Path
) -> None:
    """Compile a ``torch.export`` program ahead of time into an AOTInductor package at
    ``target``; the compiler's files stay in ``workdir`` (the step's scratch folder)."""
    if weight_format is not WeightFormat.TORCH_EXPORT:
        raise ValueError(
            f"AOTInductor is compiled from a torch.export program only, not {weight_format.value}"
        )
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(workdir / "inductor-cache"))
    use_host_compiler()
    import torch

    inputs = tuple(torch.from_numpy(array) for array in examples(specs, EXAMPLE_BATCH))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = exported_program(source, weight_format, specs, inputs)
        # Inductor wants a package name ending in .pt2.
        package = target.with_name(target.name + ".pt2")
        torch._inductor.aoti_compile_and_package(program, package_path=str(package))
    package.replace(target)


def torch_function(source: Any) -> Function:
    import torch
    from torch.utils._pytree import tree_leaves

    module = callable_module(source)

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            outputs = module(*(torch.from_numpy(array) for array in arrays))
        return [t.numpy() for t in tree_leaves(outputs) if isinstance(t, torch.Tensor)]

    return run


def torchscript_function(path: Path) -> Function:
    import torch

    return torch_function(torch.jit.load(str(path), map_location="cpu").eval())


def load_aotinductor(path: Path) -> Any:
    """An AOTInductor package loaded for the CPU: a callable taking the model's inputs."""
    import torch

    use_host_compiler()  # loading probes the CPU with small compiled programs
    with open(path, "rb") as package:  # by name, torch wants it to end in .pt2
        return torch._inductor.aoti_load_package(package)


def aotinductor_function(path: Path) -> Function:
    return torch_function(load_aotinductor(path))


def onnx_function(path: Path, specs: list[InputSpec]) -> Function:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return list(session.run(None, dict(zip(names, arrays, strict=True))))

    return run


def verify(
    source: Function, variant: Function, specs: list[InputSpec], weight_format: WeightFormat
) -> ConversionCheck:
    """Source and variant on the same random inputs at each verification batch size."""
    batch_axis = all(spec.has_batch_axis for spec in specs)
    batches = list(VERIFY_BATCHES) if batch_axis else [1]
    max_abs = max_rel = 0.0
    for seed, batch in enumerate(batches, start=1):
        arrays = examples(specs, batch, seed)
        expected, actual = source(arrays), variant(arrays)
        if len(expected) != len(actual):
            raise ValueError(f"{len(actual)} outputs where the source has {len(expected)}")
        for want, got in zip(expected, actual, strict=True):
            if want.shape != got.shape:
                raise ValueError(f"output shape {got.shape} where the source gives {want.shape}")
            difference = np.abs(got.astype(np.float64) - want.astype(np.float64))
            scale = float(np.abs(want).max()) if want.size else 0.0
            largest = float(difference.max()) if difference.size else 0.0
            max_abs = max(max_abs, largest)
            max_rel = max(max_rel, largest / scale if scale > 0 else largest)
    return ConversionCheck(
        source_engine=WEIGHT_FORMATS[weight_format].engine,
        batch_sizes=batches if batch_axis else [1],
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        tolerance=TOLERANCE,
    )
