"""What runs inside the cage (``cage.py``): one step on one uploaded model.

    python -m modelci.profiling.caged < request.json

The request (JSON on stdin) names the step (``static``, ``convert`` or ``profile`` of a
job; ``inspect``, the server's load of an uploaded TorchScript archive before it is
stored), the input file, the scratch folder and the step's parameters. The answer is JSON
lines on stdout, one message each: ``log``, ``static``, ``variant``, ``not_produced``,
``plan``, ``dynamic``, ``sweep_end`` and, when the step cannot be done, ``error``.
Nothing here talks to the hub or sees its token: the worker outside reads these lines
and reports.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modelci.schema.domain import (
    DynamicProfileResult,
    Engine,
    IOShape,
    StaticProfileResult,
    WeightFormat,
)

from .cage import MAX_TEXT
from .formats import UnsupportedModel, detect_format
from .tensors import InputSpec, onnx_input_specs

if TYPE_CHECKING:
    from .sweep import SweepStop

MESSAGES: list[TextIO] = []  # the messages' own channel, opened by main()


def send(kind: str, **fields: Any) -> None:
    # The worker refuses a text over MAX_TEXT (an exporter's error can be far longer).
    shortened = {
        name: value[: MAX_TEXT - 1] + "…"
        if isinstance(value, str) and len(value) > MAX_TEXT
        else value
        for name, value in fields.items()
    }
    MESSAGES[0].write(json.dumps({"type": kind, **shortened}) + "\n")
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
    send("log", message=f"converting the {model_format.value} model to {request['targets']}")
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
    """The batch sweep on one device (``sweep.py``), under the request's budget.

    Request keys: ``batch_sizes`` (a list; empty: adaptive), and optional ``adaptive``
    (climb the given sizes adaptively), ``budget_s`` (this step's share of the job's
    budget, counted from the step's start, model loading included), ``max_batch``,
    ``max_p99_latency_s``. Messages: ``plan``, then a ``dynamic`` per batch measured
    (``sweep_stop`` set on the batch where the sweep stops), then ``sweep_end``."""
    started = time.monotonic()
    from .devices import LocalDevice
    from .dynamic import MeasurementSettings, load_runner
    from .sweep import nothing_to_sweep, plan_sweep, sweep

    model_format, specs = model_specs(path, request)
    if model_format is WeightFormat.TORCH_PICKLE:
        raise UnsupportedModel(NOT_PROFILED)
    plan = plan_sweep(
        specs,
        request.get("batch_sizes"),
        adaptive=request.get("adaptive"),
        budget_s=request.get("budget_s"),
        max_p99_latency_s=request.get("max_p99_latency_s"),
        max_batch=request.get("max_batch"),
    )
    for note in plan.notes:
        send("log", message=note)
    send(
        "plan",
        batches=list(plan.batches),
        adaptive=plan.adaptive,
        budget_s=plan.budget_s,
        max_p99_latency_s=plan.max_p99_latency_s,
    )
    device = LocalDevice(**request["device"])
    settings = MeasurementSettings(**request["measurement"])

    def published(result: DynamicProfileResult, stop: SweepStop | None) -> None:
        send(
            "dynamic",
            batch=result.batch,
            result=result.model_dump(mode="json", exclude={"create_time"}),
            sweep_stop=None if stop is None else stop.as_message(),
        )

    if plan.batches:
        runner, load_s = load_runner(path, model_format, device, settings.threads)
        try:
            outcome = sweep(
                runner, specs, device, request["ip"], load_s, settings, plan, started, published
            )
        finally:
            runner.close()
    else:
        outcome = nothing_to_sweep(plan)
    measured = outcome.batches
    send(
        "sweep_end",
        batch=outcome.stopped_at,
        last_batch=measured[-1] if measured else None,
        batches=measured,
        stable=[
            record.result.measurement is not None and record.result.measurement.stable
            for record in outcome.records
        ],
        elapsed_s=round(time.monotonic() - started, 3),
        budget_s=plan.budget_s,
        **outcome.stop.as_message(),
    )


# What the inspect step logs: torch is imported (the hub times the load from then), and
# the verdict that the archive loaded and every graph passed.
INSPECT_LOADING = "torch imported: loading the archive"
INSPECT_PASSED = "loaded: its graphs call allowed operators only"


def run_inspect(path: Path, request: dict[str, Any]) -> None:
    """Load an uploaded TorchScript archive as registration checks it: ``torch.jit.load``
    runs the archive's ``__setstate__`` methods, so the load is the upload's own code.

    Request key: ``budget``, the bytes of address space the load may add to what importing
    torch took (torch's own mappings are the hub's cost, not the upload's). Messages: the
    ``log`` lines ``INSPECT_LOADING`` then ``INSPECT_PASSED``, or an ``error``."""
    import resource

    import torch

    from .formats import check_torchscript_graphs

    torch.set_num_threads(1)
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + int(request["budget"])
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    send("log", message=INSPECT_LOADING)
    check_torchscript_graphs(str(path))
    send("log", message=INSPECT_PASSED)


def main() -> None:
    # Messages go to stdout as it was when the cage started; anything else printed to
    # stdout (exporters print, native code writes to fd 1) goes to stderr instead.
    MESSAGES.append(os.fdopen(os.dup(1), "w"))
    os.dup2(2, 1)
    request = json.loads(sys.stdin.read())
    if request.get("processes"):  # before any of the model's code runs (see cage.py)
        resource.setrlimit(resource.RLIMIT_NPROC, (request["processes"], request["processes"]))
    path, scratch = Path(request["input"]), Path(request["scratch"])
    try:
        if request["step"] == "static":
            run_static(path, request)
        elif request["step"] == "convert":
            run_convert(path, scratch, request)
        elif request["step"] == "profile":
            run_profile(path, request)
        elif request["step"] == "inspect":
            run_inspect(path, request)
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
