"""What runs inside the cage (``cage.py``): one step of a job on one uploaded model.

    python -m modelci.profiling.caged < request.json

The request (JSON on stdin) names the step (``static``, ``convert`` or ``profile``),
the input file, the scratch folder and the job's parameters. The answer is JSON
lines on stdout, one message each: ``log``, ``static``, ``variant``, ``not_produced``,
``dynamic``, ``sweep_end`` and, when the step cannot be done, ``error``. Nothing here
talks to the hub or sees its token: the worker outside reads these lines and reports.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from modelci.schema.domain import Engine, IOShape, StaticProfileResult, WeightFormat

from .formats import UnsupportedModel, detect_format
from .tensors import InputSpec, batch_sizes_allowed, onnx_input_specs

MESSAGES: list[TextIO] = []  # the messages' own channel, opened by main()


def send(kind: str, **fields: Any) -> None:
    MESSAGES[0].write(json.dumps({"type": kind, **fields}) + "\n")
    MESSAGES[0].flush()


def model_specs(path: Path, request: dict[str, Any]) -> tuple[WeightFormat, list[InputSpec]]:
    model_format = detect_format(path)
    specs = [InputSpec.of(IOShape.model_validate(io)) for io in request["inputs"]]
    if not specs and model_format is WeightFormat.ONNX:
        specs = onnx_input_specs(path)
    if not specs:
        raise UnsupportedModel("the model declares no inputs: nothing to feed it")
    return model_format, specs


def static_figures(
    path: Path, model_format: WeightFormat, specs: list[InputSpec]
) -> StaticProfileResult:
    from .static import onnx_static_profile, torch_static_profile

    if model_format is WeightFormat.ONNX:
        import onnx

        return onnx_static_profile(onnx.load(str(path)), specs)
    import numpy as np
    import torch

    if model_format is WeightFormat.TORCHSCRIPT:
        module = torch.jit.load(str(path), map_location="cpu")
    else:
        module = torch.export.load(str(path)).module()
    rng = np.random.default_rng(0)
    inputs = [torch.from_numpy(spec.random(1, rng)) for spec in specs]
    return torch_static_profile(module, inputs)


NOT_PROFILED = (
    "a pickled PyTorch model is not profiled directly (unpickling runs arbitrary code); "
    "profile its converted variants"
)


def run_static(path: Path, request: dict[str, Any]) -> None:
    model_format, specs = model_specs(path, request)
    if model_format is WeightFormat.TORCH_PICKLE:
        raise UnsupportedModel(NOT_PROFILED)
    send("static", result=static_figures(path, model_format, specs).model_dump(mode="json"))


def run_convert(path: Path, scratch: Path, request: dict[str, Any]) -> None:
    from .conversion import NotProduced, convert

    model_format, specs = model_specs(path, request)
    send("log", message=f"converting a {model_format.value} model to {request['targets']}")
    outcomes = convert(
        path,
        model_format,
        specs,
        request["outputs"],
        [Engine(target) for target in request["targets"]],
        scratch,
        bool(request.get("allow_pickle")),
    )
    for outcome in outcomes:
        if isinstance(outcome, NotProduced):
            send(
                "not_produced",
                engine=outcome.engine.value,
                reason=outcome.reason,
                skipped=outcome.skipped,
            )
        else:
            send(
                "variant",
                engine=outcome.engine.value,
                file=outcome.path.relative_to(scratch).as_posix(),
                check=outcome.check.model_dump(mode="json"),
            )


def run_profile(path: Path, request: dict[str, Any]) -> None:
    from .devices import LocalDevice
    from .dynamic import MeasurementSettings, OutOfDeviceMemory, load_runner, measure

    model_format, specs = model_specs(path, request)
    if model_format is WeightFormat.TORCH_PICKLE:
        raise UnsupportedModel(NOT_PROFILED)
    batches, note = batch_sizes_allowed(specs, request["batch_sizes"])
    if note:
        send("log", message=note)
    send("plan", batches=batches)
    device = LocalDevice(**request["device"])
    settings = MeasurementSettings(**request["measurement"])
    runner, load_s = load_runner(path, model_format, device, settings.threads)
    try:
        for batch in batches:
            try:
                result = measure(runner, specs, batch, device, request["ip"], load_s, settings)
            except OutOfDeviceMemory as error:
                send("sweep_end", batch=batch, reason=f"batch {batch} ran out of memory ({error})")
                return
            send(
                "dynamic",
                batch=batch,
                result=result.model_dump(mode="json", exclude={"create_time"}),
            )
    finally:
        runner.close()


def main() -> None:
    # Messages go to stdout as it was when the cage started; anything else printed to
    # stdout (exporters print, native code writes to fd 1) goes to stderr instead.
    MESSAGES.append(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    request = json.loads(sys.stdin.read())
    path, scratch = Path(request["input"]), Path(request["scratch"])
    try:
        if request["step"] == "static":
            run_static(path, request)
        elif request["step"] == "convert":
            run_convert(path, scratch, request)
        elif request["step"] == "profile":
            run_profile(path, request)
        else:
            raise ValueError(f"unknown step {request['step']!r}")
    except UnsupportedModel as error:
        send("error", permanent=True, message=f"UnsupportedModel: {error}")
    except MemoryError:
        send("error", permanent=True, message="MemoryError: the step ran out of its memory")
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        send("error", permanent=False, message=f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
