"""`modelci register / ls / show / download / profile / rm / jobs / recommend / alias`: the
hub from a shell.

Every command talks to a hub through ``modelci.client`` (``--server``, ``--token`` or
MODELCI_SERVER / MODELCI_TOKEN), prints tables and progress bars with rich, or JSON
with ``--json``, and exits with a code scripts can rely on (``EXIT_CODES``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelci.cage.formats import DamagedModel, RefusedOnnx, UnsupportedModel, detect_format
from modelci.client import (
    DataType,
    DeviceKind,
    Engine,
    JobKind,
    JobStatus,
    MLModel,
    ModelHub,
    ModelInputFormat,
    ProfilingJob,
    Task,
)
from modelci.core.domain import Framework
from modelci.core.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)
from modelci.core.weight_formats import WEIGHT_FORMATS
from modelci.graphql_client import RecommendationOption
from modelci.server.http import printable

# By the hub's error code (``HubError.code``).
EXIT_CODES = {
    BadUserInput.code: 2,
    Unauthenticated.code: 3,
    Forbidden.code: 3,
    NotFound.code: 4,
    Conflict.code: 5,
    PayloadTooLarge.code: 6,
    TooManyRequests.code: 9,
}
EXIT_JOB_UNSUCCESSFUL = 7
EXIT_UNREACHABLE = 8
EXIT_OTHER = 1

# What to do next, after the hub's own message: a sentence, or one chosen from the error
# itself (its ``field`` extension and message) where one code covers unlike refusals.
Advice = str | Callable[[HubError], str]

# What to do next, after the hub's own message, when a command has nothing better to say.
NEXT_STEPS: dict[str, Advice] = {
    BadUserInput.code: "check the arguments (this command's --help lists them)",
    Unauthenticated.code: "pass --token or set MODELCI_TOKEN (an admin makes one with "
    "`modelci token create`)",
    Forbidden.code: "use a token with the scope this needs (read, write, worker or admin)",
    NotFound.code: "`modelci ls` lists the models, `modelci jobs` the jobs",
    Conflict.code: "`modelci ls` shows what is there already",
    PayloadTooLarge.code: "the file is over the hub's upload limit; ask its operator",
    TooManyRequests.code: "wait for your uploads or queued jobs to finish, then retry",
}


class HubConsole(Console):
    """A console for what the hub says: every string it renders (table cells included)
    loses its control characters, and is markup only where a call asks for it."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(printable(text), **kwargs)


# Piped output is not cut to 80 columns: tables keep their rows on one line each.
console = HubConsole(width=None if sys.stdout.isatty() else 200, markup=False)
errors = HubConsole(stderr=True, width=None if sys.stderr.isatty() else 200, markup=False)

Server = Annotated[str, typer.Option(envvar="MODELCI_SERVER", help="The hub's URL.")]
Token = Annotated[str | None, typer.Option(envvar="MODELCI_TOKEN", help="API token.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
ID_WIDTH = 24  # an ObjectId in hex: never cut, whatever the terminal's width
MODEL_ID = re.compile(r"[0-9a-fA-F]{24}")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 alias``, ``2 aliases``, ``0 models``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def error_fields(error: HubError) -> set[str]:
    """The inputs an error names (its ``field`` or ``fields`` extension), by their top name:
    ``input.inputs[0].shape`` is ``inputs``."""
    named = [error.extensions.get("field"), *(error.extensions.get("fields") or [])]
    fields = set()
    for name in named:
        if isinstance(name, str) and name:
            top = name.removeprefix("input.").split(".")[0].split("[")[0]
            fields.add(top)
    return fields


def fail(message: str, next_step: str, code: int) -> typer.Exit:
    errors.print(f"[red]error[/red]: {escape(message)}", markup=True, highlight=False)
    errors.print(f"  next: {next_step}", highlight=False)
    return typer.Exit(code)


@contextmanager
def hub_client(
    server: str, token: str | None, next_steps: Mapping[str, Advice] | None = None
) -> Iterator[ModelHub]:
    """A client; hub errors and unreachable hubs become messages, with what to do next,
    and exit codes. ``next_steps`` (by error code) override the general advice."""
    try:
        client = ModelHub(server, token)
        client.python_errors = False  # the hub's own words, which the next steps here follow
    except ValueError as error:  # a malformed --server
        raise fail(
            str(error), "pass --server http://HOST:PORT", EXIT_CODES[BadUserInput.code]
        ) from None
    try:
        with client as hub:
            yield hub
    except HubError as error:
        advice = {**NEXT_STEPS, **(next_steps or {})}.get(error.code)
        step = advice(error) if callable(advice) else advice
        raise fail(
            f"({error.code}) {error.message}",
            step or "retry; if it persists, the hub's log has the request id",
            EXIT_CODES.get(error.code, EXIT_OTHER),
        ) from None
    except httpx.HTTPError as error:
        raise fail(
            str(error)
            if "cannot reach" in str(error)
            else f"cannot reach the hub at {server} ({error})",
            "start it with `modelci serve`, or point --server / MODELCI_SERVER at it",
            EXIT_UNREACHABLE,
        ) from None


def print_json(value: Any) -> None:
    if isinstance(value, list):
        value = [item.model_dump(mode="json") for item in value]
    elif hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    console.print_json(json.dumps(value))


def transfer_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=errors,
        transient=True,
    )


def id_table(*columns: str, title: str | None = None) -> Table:
    """A table whose first column is an id, shown whole (other columns fold first)."""
    table = Table(title=title)
    table.add_column(columns[0], no_wrap=True, min_width=ID_WIDTH)
    for column in columns[1:]:
        table.add_column(column, overflow="fold")
    return table


def models_table(models: list[MLModel]) -> Table:
    table = id_table(
        "id", "architecture", "framework", "engine", "version", "task", "dataset", "status", "size"
    )
    for model in models:
        table.add_row(
            model.id,
            model.architecture,
            model.framework.value,
            model.engine.value,
            str(model.version),
            model.task.value,
            model.dataset,
            ",".join(status.value for status in model.model_status),
            f"{model.weight.size:,}",
        )
    return table


def jobs_table(jobs: list[ProfilingJob]) -> Table:
    table = id_table("id", "model", "kind", "status", "progress", "worker", "error")
    table.columns[1].no_wrap, table.columns[1].min_width = True, ID_WIDTH
    for job in jobs:
        table.add_row(
            job.id,
            job.model_id,
            job.kind.value,
            job.status.value,
            f"{job.progress:.0%}",
            job.worker or "",
            job.error or "",
        )
    return table


IO_SPEC = re.compile(
    r"^(?P<name>[^:]+):(?P<shape>-?\d+(?:x-?\d+)*):(?P<dtype>\w+)(?::(?P<format>\w+))?$"
)
IO_SPEC_TEMPLATE = "NAME:SHAPE:DTYPE[:FORMAT], e.g. {example} (-1: any size; repeat)"
IO_SPEC_HELP = IO_SPEC_TEMPLATE.format(example="input:-1x3x224x224:FP32")
OUTPUT_SPEC_HELP = IO_SPEC_TEMPLATE.format(example="output:-1x1000:FP32")


def io_shape(spec: str, option: str) -> dict[str, Any]:
    """``input:-1x3x224x224:FP32[:NCHW]`` as an IOShapeInput; a clear error otherwise."""
    found = IO_SPEC.match(spec.strip())
    dtypes = ", ".join(dtype.value.removeprefix("TYPE_") for dtype in DataType)
    if not found:
        raise typer.BadParameter(
            f"{spec!r} is not NAME:SHAPE:DTYPE (e.g. input:-1x3x224x224:FP32); SHAPE is sizes "
            f"joined by 'x' with -1 for a dynamic size, DTYPE one of {dtypes}",
            param_hint=option,
        )
    shape = [int(size) for size in found["shape"].split("x")]
    if any(size == 0 or size < -1 for size in shape):
        raise typer.BadParameter(
            f"{spec!r}: sizes are positive, or -1 for a dynamic size", param_hint=option
        )
    dtype = found["dtype"].upper()
    dtype = dtype if dtype.startswith("TYPE_") else f"TYPE_{dtype}"
    if dtype not in DataType.__members__:
        raise typer.BadParameter(
            f"{spec!r}: unknown DTYPE {found['dtype']!r}; one of {dtypes}", param_hint=option
        )
    shape_input: dict[str, Any] = {"name": found["name"], "shape": shape, "dtype": dtype}
    if found["format"]:
        layout = found["format"].upper()
        layout = layout if layout.startswith("FORMAT_") else f"FORMAT_{layout}"
        if layout not in ModelInputFormat.__members__:
            formats = ", ".join(f.value.removeprefix("FORMAT_") for f in ModelInputFormat)
            raise typer.BadParameter(
                f"{spec!r}: unknown FORMAT {found['format']!r}; one of {formats}",
                param_hint=option,
            )
        shape_input["format"] = layout
    return shape_input


DURATION = re.compile(
    r"^(?P<value>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*"
    r"(?P<unit>h|min|m|s|ms|us|µs|ns)$"
)
DURATION_UNITS = {
    "h": 3600.0,
    "min": 60.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_duration(text: str, option: str) -> float:
    """``10ms``, ``0.01s``, ``250us`` (or ``250µs``, ``5e-3s``), ``2m`` (or ``2min``),
    ``1h`` in seconds, as the API takes durations; a bare number is refused, since nobody
    can tell 10 of what."""
    found = DURATION.match(text.strip())
    if not found:
        raise typer.BadParameter(
            f"{text!r} is not a duration: a number and a unit, e.g. 10ms, 0.01s, 250us or "
            "2m (units: h, m or min, s, ms, us, ns)",
            param_hint=option,
        )
    seconds = float(found["value"]) * DURATION_UNITS[found["unit"]]
    if seconds <= 0:
        raise typer.BadParameter(f"{text!r}: give a duration above zero", param_hint=option)
    return seconds


def inferred_declaration(path: Path) -> tuple[str | None, str | None]:
    """(framework, engine) the file's content implies; (None, None) when it says nothing.
    An ONNX model the hub would refuse (its weights in files beside it, say) is refused
    here, with the fix, before anything is uploaded."""
    try:
        found = detect_format(path)
    except RefusedOnnx as error:
        raise fail(
            f"{path}: an ONNX model, but {error}",
            "save it as one file as above, then register that",
            EXIT_CODES[BadUserInput.code],
        ) from None
    except DamagedModel as error:
        raise fail(
            f"{path}: {error}",
            "copy or download the file again and compare its size and sha256 with the original's",
            EXIT_CODES[BadUserInput.code],
        ) from None
    except UnsupportedModel:
        return None, None
    rule = WEIGHT_FORMATS[found]  # what the hub will accept for this format
    return (rule.framework or Framework.ONNX).value, rule.engine.value


INPUT_EXAMPLE = "input:-1x3x224x224:FP32"
DECLARED_AS = re.compile(
    r"register it with (?:framework (?P<framework>\S+), )?engine (?P<engine>\w+)"
)


def register_advice(error: HubError) -> str:
    """What to do about one refused registration, chosen by what the refusal is about: the
    file, its declared inputs, or one of the other options."""
    fields, message = error_fields(error), error.message
    if "weight" in fields:
        declared = DECLARED_AS.search(message)
        if declared:
            options = f"--engine {declared['engine']}"
            if declared["framework"]:
                options = f"--framework {declared['framework']} {options}"
            return (
                f"register it with {options}, or leave --framework and --engine out: they are "
                "read from the file"
            )
        if "damaged" in message:
            return (
                "copy or download the file again and compare its size and sha256 with the "
                "original's"
            )
        if "weights only" in message:
            return "save the network itself, as the message shows, and register that file"
        if "--allow-pickle" in message:
            return (
                "save the model with torch.jit.save (TorchScript) or torch.export.save (.pt2) "
                "and register that file; a hub takes pickles only when started with "
                "`modelci serve --allow-pickle`, for files you trust"
            )
        return (
            "register a TorchScript, torch.export (.pt2) or ONNX file, or give --engine NONE "
            "to store the file without reading it"
        )
    if fields & {"inputs", "outputs"}:
        if "does not say" in message:
            return (
                f"declare each input with --input NAME:SHAPE:DTYPE (e.g. --input {INPUT_EXAMPLE}),"
                " or pass --no-convert to only store the model"
            )
        return (
            "make --input/--output agree with the file, or leave them out: an ONNX or .pt2 "
            "file's are read from its graph"
        )
    if "task" in fields:
        return f"--task is one of {', '.join(task.value for task in Task)}"
    if "engine" in fields:
        return f"--engine is one of {', '.join(engine.value for engine in Engine)}"
    if "version" in fields:
        return "--version is a positive integer"
    return "fix the option the message names (`modelci register --help` lists them)"


def queued_jobs_text(jobs: list[ProfilingJob]) -> list[str]:
    kinds = {JobKind.CONVERT: "conversion", JobKind.PROFILE: "profiling"}
    return [
        f"queued {kinds.get(job.kind, job.kind.value.lower())} job {job.id} ({job.status.value})"
        for job in reversed(jobs)  # oldest first: in the order they were queued
    ]


def register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The weight file.")],
    architecture: Annotated[str, typer.Option(help="e.g. ResNet50.")],
    task: Annotated[str, typer.Option(help="e.g. Image_Classification.")] = "Other",
    dataset: Annotated[str, typer.Option(help="What it was trained on.")] = "unknown",
    version: Annotated[int, typer.Option(help="A positive integer.")] = 1,
    framework: Annotated[str | None, typer.Option(help="Inferred from the file.")] = None,
    engine: Annotated[str | None, typer.Option(help="Inferred from the file.")] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", help=f"An input: {IO_SPEC_HELP}.")
    ] = None,
    outputs: Annotated[
        list[str] | None, typer.Option("--output", help=f"An output: {OUTPUT_SPEC_HELP}.")
    ] = None,
    convert: Annotated[bool, typer.Option(help="Convert to TorchScript/ONNX.")] = True,
    profile: Annotated[bool, typer.Option(help="Profile it (and its variants).")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Register a model file; framework and engine are inferred from its content, and an
    ONNX or .pt2 file's inputs and outputs from its graph (--input/--output otherwise)."""
    declared_inputs = [io_shape(spec, "--input") for spec in inputs or []]
    declared_outputs = [io_shape(spec, "--output") for spec in outputs or []]
    inferred_framework, inferred_engine = inferred_declaration(file)
    framework, engine = framework or inferred_framework, engine or inferred_engine
    if framework is None or engine is None:
        raise fail(
            f"{file.name}: its content says nothing of its framework and engine",
            "give --framework and --engine (e.g. --framework PyTorch --engine NONE)",
            EXIT_CODES[BadUserInput.code],
        )
    fields: dict[str, Any] = {
        "architecture": architecture,
        "framework": framework,
        "engine": engine,
        "version": version,
        "dataset": dataset,
        "task": task,
    }
    if declared_inputs:
        fields["inputs"] = declared_inputs
    if declared_outputs:
        fields["outputs"] = declared_outputs
    next_steps: dict[str, Advice] = {
        Conflict.code: f"it is registered already: `modelci ls --architecture {architecture}` "
        f"shows it; pass another --version (or --dataset) to register this one beside it",
        BadUserInput.code: register_advice,
    }
    with hub_client(server, token, next_steps) as hub:
        with transfer_bar() as bar:
            upload = bar.add_task(escape(f"uploading {file.name}"), total=file.stat().st_size)
            model = hub.register_model(
                file,
                convert=convert,
                profile=profile,
                progress=lambda done, _: bar.update(upload, completed=done),
                **fields,
            )
        # The registration's answer is the model; the jobs it queued are the model's jobs.
        queued = hub.get_jobs(model_id=model.id, limit=20) if convert or profile else []
    if as_json:
        print_json(model)
        return
    console.print(
        f"registered [bold]{model.id}[/bold] ({escape(model.architecture)}, "
        f"{model.framework.value}/{model.engine.value} v{model.version})",
        markup=True,
    )
    for line in queued_jobs_text(queued):
        console.print(line, highlight=False)
    if queued:
        console.print(
            f"  next: `modelci jobs --model {model.id}` shows how they are doing; "
            f"`modelci show {model.id}` the model and what was measured",
            highlight=False,
        )


MEASURED = "Measured (one dynamic result meets all)"
DEVICE_KINDS = {"cpu": DeviceKind.CPU, "cuda": DeviceKind.CUDA, "gpu": DeviceKind.CUDA}


def device_or_kind(device: str | None) -> dict[str, Any]:
    """``--device``: a kind (cpu; cuda or gpu, any GPU), or one device by id or name."""
    if device is None:
        return {}
    kind = DEVICE_KINDS.get(device.lower())
    return {"device_kind": kind} if kind else {"device": device}


def ls(
    architecture: Annotated[str | None, typer.Option()] = None,
    task: Annotated[str | None, typer.Option()] = None,
    framework: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[str | None, typer.Option()] = None,
    version: Annotated[int | None, typer.Option()] = None,
    dataset: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="e.g. PUBLISHED, CONVERTED.")] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Measured on: cpu, cuda (any GPU), or one device by id or name (cuda:1).",
            rich_help_panel=MEASURED,
        ),
    ] = None,
    batch: Annotated[
        int | None, typer.Option(help="At this batch size.", rich_help_panel=MEASURED)
    ] = None,
    min_batch: Annotated[
        int | None, typer.Option(help="At a batch size at least this.", rich_help_panel=MEASURED)
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option(help="At a batch size at most this.", rich_help_panel=MEASURED)
    ] = None,
    p99: Annotated[
        str | None,
        typer.Option(
            "--p99",
            help="Inference p99 latency at most this: 10ms, 0.01s, 250us.",
            rich_help_panel=MEASURED,
        ),
    ] = None,
    p50: Annotated[
        str | None,
        typer.Option("--p50", help="Inference p50 latency at most this.", rich_help_panel=MEASURED),
    ] = None,
    min_throughput: Annotated[
        float | None,
        typer.Option(help="Inference items per second, at least.", rich_help_panel=MEASURED),
    ] = None,
    stable: Annotated[
        bool,
        typer.Option(help="Only measurements that settled.", rich_help_panel=MEASURED),
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List models, newest first; with a measured condition (--device, --batch, --p99, …),
    those with one dynamic result that meets all of them."""
    measured = {
        **device_or_kind(device),
        "batch": batch,
        "min_batch": min_batch,
        "max_batch": max_batch,
        "max_p99_latency": parse_duration(p99, "--p99") if p99 is not None else None,
        "max_p50_latency": parse_duration(p50, "--p50") if p50 is not None else None,
        "min_throughput": min_throughput,
    }
    profile = {name: value for name, value in measured.items() if value is not None}
    if stable:
        profile["stable_only"] = True
    with hub_client(server, token) as hub:
        models = hub.get_models(
            limit=limit,
            architecture=architecture,
            task=task,
            framework=framework,
            engine=engine,
            version=version,
            dataset=dataset,
            status=status,
            profile=profile or None,
        )
    print_json(models) if as_json else console.print(models_table(models))


def show(
    model_id: Annotated[str, typer.Argument(help="The model's id, or an alias naming it.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """A model (by id or alias): metadata, aliases, variants, static and dynamic profiles."""
    next_steps = {NotFound.code: "`modelci ls` lists the models, `modelci alias ls` the aliases"}
    with hub_client(server, token, next_steps) as hub:
        model = model_named(hub, model_id)
        children = hub.get_variants(model.id)
        profiling = latest_profiling_job(hub, model.id)
    dynamic = sorted(
        model.profile_result.dynamic_results, key=lambda r: (r.device_id, r.ip, r.batch)
    )
    if as_json:
        shown = model.model_dump(mode="json")
        shown["profile_result"]["dynamic_results"] = [r.model_dump(mode="json") for r in dynamic]
        print_json(
            {
                **shown,
                "children": [child.model_dump(mode="json") for child in children],
                "profiling_job": profiling.model_dump(mode="json") if profiling else None,
            }
        )
        return
    console.print(models_table([model]))
    if model.aliases:
        console.print(f"aliases: {', '.join(model.aliases)}")
    weight = model.weight
    kind = weight.format.value if weight.format else "unknown format"
    console.print(
        f"weight: {weight.filename} ({kind}, {weight.size:,} bytes, sha256 {weight.sha256})"
    )
    for name, shapes in (("inputs", model.inputs), ("outputs", model.outputs)):
        described = ", ".join(
            f"{s.name}:{'x'.join(map(str, s.shape))}:{s.dtype.value.removeprefix('TYPE_')}"
            for s in shapes
        )
        console.print(f"{name}: {described or 'none declared'}")
    if model.parent_model_id:
        console.print(f"converted from {model.parent_model_id}")
    if children:
        table = id_table("variant", "engine", "format", "status", title="variants")
        for child in children:
            table.add_row(
                child.id,
                child.engine.value,
                child.weight.format.value if child.weight.format else "",
                ",".join(status.value for status in child.model_status),
            )
        console.print(table)
    static = model.profile_result.static_result
    if static:
        table = Table("parameters", "MACs", "FLOPs", "memory", "mread", "mwrite", title="static")
        table.add_row(
            f"{static.parameters:,}",
            f"{static.macs or 0:,}",
            f"{static.flops:,}",
            f"{static.memory:,}",
            f"{static.mread:,}",
            f"{static.mwrite:,}",
        )
        console.print(table)
    if dynamic:
        table = Table(
            "device",
            "batch",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "items/s",
            "memory",
            "measured",
            "sweep",
            title="dynamic",
        )
        for result in dynamic:
            latency = result.latency.inference_latency
            measurement = result.measurement
            # An unstable figure is shown, marked: its windows never agreed.
            mark = "~" if measurement is not None and not measurement.stable else ""
            p99 = f"{mark}{latency.p99 * 1e3:.3f}" if latency.p99 is not None else "-"
            stop = measurement.sweep_stop if measurement is not None else None
            table.add_row(
                f"{result.device_id} @ {result.ip}",
                str(result.batch),
                f"{mark}{latency.p50 * 1e3:.3f}",
                f"{mark}{latency.p95 * 1e3:.3f}",
                p99,
                f"{mark}{result.throughput.inference_throughput:,.0f}",
                f"{result.memory.memory_usage:,}",
                measurement_text(measurement),
                f"stopped: {stop.value}" if stop else "",
            )
        console.print(table)
        if any(r.measurement is not None and not r.measurement.stable for r in dynamic):
            console.print(
                "~ unstable: the last windows never agreed within 10 %, so the figure is "
                "rough (IQR/median: the spread of the runs)"
            )
    if profiling is not None:
        print_profiling_job(profiling)


def measurement_text(measurement: Any) -> str:
    """How sure a dynamic result is: stable or not, windows, samples, IQR/median."""
    if measurement is None:
        return "-"
    return (
        f"{'stable' if measurement.stable else 'unstable'} ({measurement.windows} windows, "
        f"{measurement.samples} samples, IQR/median {measurement.iqr_over_median:.2f})"
    )


def latest_profiling_job(hub: ModelHub, model_id: str) -> ProfilingJob | None:
    """The model's newest profiling job (among its 20 newest jobs), if any."""
    jobs = hub.get_jobs(model_id=model_id, limit=20)
    return next((job for job in jobs if job.kind is JobKind.PROFILE), None)


def print_profiling_job(job: ProfilingJob) -> None:
    """A profiling job's state and, per device, where its sweep stopped and why."""
    state = f"profiling job {job.id}: {job.status.value}"
    if job.status is JobStatus.RUNNING:
        state += f" ({job.progress:.0%}" + (f", {job.log[-1].message}" if job.log else "") + ")"
    limits = [f"budget {job.budget_seconds:g} s" if job.budget_seconds else ""]
    limits.append(f"p99 ≤ {job.max_p99_latency * 1e3:g} ms" if job.max_p99_latency else "")
    limits.append(f"batch ≤ {job.max_batch}" if job.max_batch else "")
    limits.append(f"batch sizes {job.batch_sizes}" if job.batch_sizes else "adaptive sweep")
    console.print(f"{state}; {', '.join(limit for limit in limits if limit)}", highlight=False)
    if job.error:
        console.print(f"  error: {job.error}", highlight=False)
    if job.sweeps:
        table = Table("device", "batches measured", "stopped", "why", title="sweeps")
        for sweep in job.sweeps:
            table.add_row(
                sweep.device_id,
                ", ".join(map(str, sweep.batches)) or "none",
                sweep.reason_code.value,
                sweep.reason,
            )
        console.print(table)


def model_named(hub: ModelHub, reference: str) -> Any:
    """The model ``reference`` names: by id, or by alias; what it is not, said."""
    if MODEL_ID.fullmatch(reference):  # an alias never reads as an id
        return hub.get_model(reference)
    try:
        return hub.get_model(alias=reference)
    except NotFound:
        raise fail(
            f"{reference!r} is neither a model id (24 hexadecimal digits) nor an alias",
            "`modelci ls` lists the models, `modelci alias ls` the aliases",
            EXIT_CODES[NotFound.code],
        ) from None


def model_id_of(hub: ModelHub, reference: str) -> str:
    """The id of the model ``reference`` names: an id as it is, or an alias."""
    if MODEL_ID.fullmatch(reference):
        return reference
    return str(model_named(hub, reference).id)


ModelReference = Annotated[str, typer.Argument(help="The model's id, or an alias naming it.")]


def download(
    model_id: ModelReference,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            help="A file, or a folder to write into (DIR/ : created if missing; the file "
            "takes the hub's name for it).",
        ),
    ] = "./",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Download a model's weight file."""
    try:
        with hub_client(server, token) as hub, transfer_bar() as bar:
            task = bar.add_task("downloading", total=None)
            path = hub.download_weight(
                model_id_of(hub, model_id),
                output,
                progress=lambda done, total: bar.update(task, completed=done, total=total or None),
                overwrite=force,
            )
    except FileExistsError as error:
        raise fail(
            f"{error.args[0]}; nothing was written",
            "pass --force to overwrite it, or -o another file or folder",
            EXIT_OTHER,
        ) from None
    except (IsADirectoryError, NotADirectoryError, PermissionError) as error:
        raise fail(
            f"cannot write {output}: {error.strerror}",
            "pass -o a file you may write, or a folder ending in /",
            EXIT_OTHER,
        ) from None
    console.print(f"saved {path}")


def profile(
    model_id: ModelReference,
    batch: Annotated[
        list[int] | None,
        typer.Option(help="Batch sizes (repeat); none: an adaptive sweep (1, 2, 4, …)."),
    ] = None,
    device: Annotated[list[str] | None, typer.Option(help="Devices, e.g. cuda:0.")] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="Time the job may take, shared by its devices: 2m, 90s, 1h "
            "(default: the hub's, MODELCI_PROFILE_BUDGET_S)."
        ),
    ] = None,
    p99: Annotated[
        str | None,
        typer.Option("--p99", help="The sweep stops past this latency p99: 10ms, 0.01s."),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(help="The largest batch size.")] = None,
    follow: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Queue profiling and follow the job live: an adaptive batch sweep (or --batch sizes)
    under a time budget; each device's sweep says where it stopped and why."""
    budget_s = parse_duration(budget, "--budget") if budget is not None else None
    latency = parse_duration(p99, "--p99") if p99 is not None else None
    with hub_client(server, token) as hub:
        model_id = model_id_of(hub, model_id)
        job = hub.profile_model(
            model_id,
            batch_sizes=batch,
            devices=device,
            budget_seconds=budget_s,
            max_p99_latency=latency,
            max_batch=max_batch,
        )
        if follow:
            job = follow_job(hub, job.id)
    if as_json:
        print_json(job)
    elif follow:
        print_profiling_job(job)
    else:
        console.print(f"job {job.id}: {job.status.value}")
    if follow and job.status is not JobStatus.SUCCEEDED:
        if not as_json:
            errors.print(
                f"  next: `modelci jobs --model {model_id}` shows its log; "
                f"`modelci show {model_id}` what it measured"
            )
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)


def convert(
    model_id: ModelReference,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            help="An engine to convert to (repeat): TORCHSCRIPT, ONNX, TRT; "
            "none: every one the model's format converts to.",
        ),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(help="Profile each variant, those the model already has too."),
    ] = False,
    follow: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Convert a registered model to other formats and follow the job live: each variant
    is checked against the model on random inputs before it is registered."""
    profiling: list[tuple[str, ProfilingJob]] = []  # each variant's, once the job is done
    next_steps: dict[str, Advice] = {BadUserInput.code: convert_advice}
    with hub_client(server, token, next_steps) as hub:
        model_id = model_id_of(hub, model_id)
        job = hub.convert_model(model_id, targets=to, profile=profile)
        if follow:
            job = follow_job(hub, job.id)
        if follow and profile and job.status is JobStatus.SUCCEEDED:
            for variant in hub.get_variants(model_id):
                latest = latest_profiling_job(hub, variant.id)
                if latest is not None:  # the one just queued, or one already under way
                    profiling.append((f"{variant.id} ({variant.engine.value})", latest))
    if as_json:
        print_json(job)
        return
    console.print(f"conversion job {job.id}: {job.status.value}", highlight=False)
    if not follow:
        return
    if job.status is not JobStatus.SUCCEEDED:
        if job.error:
            console.print(f"  error: {job.error}", highlight=False)
        errors.print(f"  next: `modelci jobs --model {model_id}` shows its log")
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)
    summary = next(
        (entry.message for entry in reversed(job.log) if entry.message.startswith("variants ")),
        None,
    )
    if summary:
        console.print(f"  {summary}", highlight=False)
    for named, profiling_job in profiling:
        console.print(
            f"  profiling {named}: job {profiling_job.id} {profiling_job.status.value}",
            highlight=False,
        )
    console.print(
        f"  next: `modelci show {model_id}` lists its variants"
        + ("; `modelci show VARIANT` its profile once measured" if profiling else ""),
        highlight=False,
    )


def convert_advice(error: HubError) -> str:
    if "targets" in error_fields(error):
        return "give --to an engine the message lists, or leave --to out: every one of them"
    return "check the arguments (`modelci convert --help` lists them)"


def follow_job(hub: ModelHub, job_id: str) -> ProfilingJob:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        console=errors,
        transient=True,
    ) as bar:
        task = bar.add_task("queued", total=1.0)

        def show_state(job: ProfilingJob) -> None:
            last = job.log[-1].message if job.log else job.status.value
            shown = escape(printable(f"{job.status.value}: {last}"))  # a progress bar's markup
            bar.update(task, completed=job.progress, description=shown)

        return hub.wait_for_job(job_id, on_update=show_state)


def cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id (`modelci jobs` lists them).")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a queued or running job: nothing more is written for it once this answers."""
    next_steps = {
        Conflict.code: f"the job has ended already; `modelci jobs` shows how (job {job_id})",
        NotFound.code: "`modelci jobs` lists the jobs",
    }
    with hub_client(server, token, next_steps) as hub:
        job = hub.cancel_job(job_id)
    print_json(job) if as_json else console.print(f"job {job.id}: {job.status.value}")


def rm(
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    cascade: Annotated[bool, typer.Option(help="Delete its converted variants too.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Delete a model and its weight (--cascade: its converted variants too)."""
    next_steps = {
        Conflict.code: f"`modelci rm {model_id} --cascade` deletes it with its variants and "
        f"removes its aliases (`modelci show {model_id}` lists both)",
        NotFound.code: "`modelci ls` lists the models there are",
    }
    with hub_client(server, token, next_steps) as hub:
        deleted = hub.delete_model(model_id, cascade=cascade)
    console.print(f"deleted {deleted.id}")


def jobs(
    model: Annotated[str | None, typer.Option(help="Only this model's jobs.")] = None,
    status: Annotated[
        str | None, typer.Option(help="QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    with hub_client(server, token) as hub:
        found = hub.get_jobs(model_id=model, status=status, limit=limit)
    print_json(found) if as_json else console.print(jobs_table(found))


def milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def option_row(option: RecommendationOption) -> list[str]:
    model = option.model
    variant = " (variant)" if model.parent_model_id else ""
    return [
        model.id,
        f"{model.architecture} {model.engine.value} v{model.version}{variant}",
        f"{option.device_id} ({option.device_name})" if option.device_name else option.device_id,
        str(option.batch),
        milliseconds(option.p50),
        milliseconds(option.p99) + ("" if option.stable else " (unstable)"),
        f"{option.throughput:,.1f}",
        "★" if option.on_frontier else "",
    ]


def options_table(options: list[RecommendationOption], title: str, why: bool = False) -> Table:
    columns = ["model", "what", "device", "batch", "p50 ms", "p99 ms", "items/s", "frontier"]
    table = id_table(*columns, *(["why not"] if why else []), title=title)
    for option in options:
        reasons = ", ".join(each.value.lower().replace("_", " ") for each in option.shortfalls)
        table.add_row(*option_row(option), *([reasons] if why else []))
    return table


def goal_text(p99: float | None, min_throughput: float | None, device: str | None) -> str:
    parts = [f"p99 ≤ {p99 * 1e3:g} ms" if p99 is not None else ""]
    parts.append(f"≥ {min_throughput:g} items/s" if min_throughput is not None else "")
    parts.append(f"on {device}" if device else "")
    return " ".join(part for part in parts if part) or "no limits"


def recommend(
    task: Annotated[str, typer.Option(help="e.g. Image_Classification.")],
    architecture: Annotated[str | None, typer.Option(help="Only this architecture.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    p99: Annotated[
        str | None,
        typer.Option("--p99", help="Inference p99 latency at most this: 10ms, 0.01s, 250us."),
    ] = None,
    min_throughput: Annotated[
        float | None, typer.Option(help="Inference items per second, at least.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda (any GPU), or one device by id or name (cuda:1)."),
    ] = None,
    max_batch: Annotated[int | None, typer.Option(help="Batch sizes up to this.")] = None,
    allow_unstable: Annotated[
        bool, typer.Option(help="Admit results whose measurement never settled.")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many options (and rejected).")] = 10,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Which model, device and batch size to serve a task with under a latency goal: the
    most throughput within it first, the latency/throughput frontier marked (★)."""
    latency = parse_duration(p99, "--p99") if p99 is not None else None
    kind = DEVICE_KINDS.get(device.lower()) if device else None
    with hub_client(server, token) as hub:
        found = hub.recommend(
            task,
            architecture=architecture,
            dataset=dataset,
            max_p99_latency=latency,
            min_throughput=min_throughput,
            device=None if kind else device,
            device_kind=kind,
            max_batch=max_batch,
            allow_unstable=allow_unstable,
            first=limit,
        )
    if as_json:
        print_json(found)
        return
    goal = goal_text(latency, min_throughput, device)
    if found.options:
        title = (
            f"meets {goal}: {counted(found.options_found, 'option')} from "
            f"{counted(found.candidates, 'model')}, most throughput first"
        )
        console.print(options_table(found.options, title))
    elif found.closest:
        closest = found.closest
        why = ", ".join(each.value.lower().replace("_", " ") for each in closest.shortfalls)
        console.print(
            f"nothing meets the goal ({goal}); closest: {closest.model.id} "
            f"({closest.model.architecture} {closest.model.engine.value} "
            f"v{closest.model.version}) on {closest.device_id} at batch {closest.batch}: "
            f"p99 {milliseconds(closest.p99)} ms, {closest.throughput:,.1f} items/s ({why})"
        )
    else:
        console.print(
            f"nothing meets the goal ({goal}): none of the {counted(found.candidates, 'model')} "
            "of this task has results there"
        )
    if found.rejected:
        console.print(options_table(found.rejected, "missed the goal, nearest first", why=True))
    if found.not_profiled:
        shown = ", ".join(model.id for model in found.not_profiled[:5])
        more = found.not_profiled_found - min(5, len(found.not_profiled))
        console.print(f"not profiled there: {shown}" + (f" and {more} more" if more > 0 else ""))
    if found.truncated:
        errors.print(
            f"  note: only the {counted(found.candidates, 'newest model')} were weighed; narrow "
            "with "
            "--architecture or --dataset"
        )


alias_app = typer.Typer(
    help="Aliases: one name for one model at a time (resnet50-prod), moved atomically.",
    no_args_is_help=True,
)


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="The alias, e.g. resnet50-prod.")],
    model_id: Annotated[str, typer.Argument(help="The model it is to name.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Point NAME at a model: created, or moved from the model it named."""
    with hub_client(server, token) as hub:
        pointed = hub.set_alias(name, model_id)
    if as_json:
        print_json(pointed)
    else:
        console.print(f"{pointed.alias} → {pointed.model_id}")


@alias_app.command("rm")
def alias_rm(
    name: Annotated[str, typer.Argument(help="The alias.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Remove an alias (the model stays)."""
    with hub_client(server, token, {NotFound.code: "`modelci alias ls` lists the aliases"}) as hub:
        removed = hub.delete_alias(name)
    console.print(f"removed {removed.alias} (it named {removed.model_id})")


@alias_app.command("ls")
def alias_ls(
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the aliases and the models they name."""
    with hub_client(server, token) as hub:
        found = hub.aliases()
    if as_json:
        print_json(found)
        return
    table = Table("alias", "model", "since")
    table.columns[1].no_wrap, table.columns[1].min_width = True, ID_WIDTH
    for alias in found:
        table.add_row(alias.alias, alias.model_id, f"{alias.update_time:%Y-%m-%d %H:%M:%S}")
    console.print(table)


COMMANDS: list[Callable[..., None]] = [
    register,
    ls,
    show,
    download,
    convert,
    profile,
    cancel,
    rm,
    jobs,
    recommend,
]


def add_client_commands(app: typer.Typer) -> None:
    # Markdown joins a docstring's wrapped lines into one paragraph; rich's markup kept
    # each line break, so help broke lines mid-sentence.
    app.rich_markup_mode = "markdown"
    for command in COMMANDS:
        app.command()(command)
    app.add_typer(alias_app, name="alias")
