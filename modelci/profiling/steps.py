"""A profiling job's steps in the cage (``modelci.cage``): one step on one model.

    python -m modelci.profiling.steps < request.json

Steps: ``static``, ``convert`` and ``profile``. Messages (see ``modelci.cage.program``):
``log``, ``static``, ``variant``, ``not_produced``, ``plan``, ``dynamic``, ``sweep_end``
and ``error``. The worker outside reads them and reports to the hub.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.cage import program
from modelci.cage.formats import UnsupportedModel, detect_format
from modelci.cage.program import send
from modelci.cage.tensors import InputSpec, onnx_input_specs
from modelci.core.domain import (
    DynamicProfileResult,
    Engine,
    IOShape,
    StaticProfileResult,
    WeightFormat,
)

if TYPE_CHECKING:
    from .sweep import SweepStop


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
COMPILED_NOT_COUNTED = (
    "no static profile: an AOTInductor package is compiled code with no graph to count "
    "(its source's static profile holds: the same parameters, FLOPs and memory)"
)


def run_static(path: Path, request: dict[str, Any]) -> None:
    model_format, specs = model_specs(path, request)
    if model_format is WeightFormat.TORCH_PICKLE:
        raise UnsupportedModel(NOT_PROFILED)
    if model_format is WeightFormat.AOTI_PACKAGE:
        send("log", message=COMPILED_NOT_COUNTED)  # measured all the same, by the profile step
        return
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


def main() -> None:
    program.main(
        {
            "static": lambda path, scratch, request: run_static(path, request),
            "convert": run_convert,
            "profile": lambda path, scratch, request: run_profile(path, request),
        }
    )


if __name__ == "__main__":
    main()
