"""`modelci register / ls / show / download / profile / rm / jobs`: the hub from a shell.

Every command talks to a hub through ``modelci.client`` (``--server``, ``--token`` or
MODELCI_SERVER / MODELCI_TOKEN), prints tables and progress bars with rich, or JSON
with ``--json``, and exits with a code scripts can rely on (``EXIT_CODES``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelci.client import (
    DataType,
    JobStatus,
    MLModel,
    ModelHub,
    ModelInputFormat,
    ProfilingJob,
)
from modelci.profiling.formats import UnsupportedModel, detect_format
from modelci.schema.domain import Framework
from modelci.schema.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)
from modelci.schema.weight_formats import WEIGHT_FORMATS

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

# What to do next, after the hub's own message, when a command has nothing better to say.
NEXT_STEPS = {
    BadUserInput.code: "check the arguments (`modelci COMMAND --help`)",
    Unauthenticated.code: "pass --token or set MODELCI_TOKEN (an admin makes one with "
    "`modelci token create`)",
    Forbidden.code: "use a token with the scope this needs (read, write, worker or admin)",
    NotFound.code: "`modelci ls` lists the models, `modelci jobs` the jobs",
    Conflict.code: "`modelci ls` shows what is there already",
    PayloadTooLarge.code: "the file is over the hub's upload limit; ask its operator",
    TooManyRequests.code: "wait for your uploads or queued jobs to finish, then retry",
}

# Piped output is not cut to 80 columns: tables keep their rows on one line each.
console = Console(width=None if sys.stdout.isatty() else 200)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

Server = Annotated[str, typer.Option(envvar="MODELCI_SERVER", help="The hub's URL.")]
Token = Annotated[str | None, typer.Option(envvar="MODELCI_TOKEN", help="API token.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
ID_WIDTH = 24  # an ObjectId in hex: never cut, whatever the terminal's width


def fail(message: str, next_step: str, code: int) -> typer.Exit:
    errors.print(f"[red]error[/red]: {message}", markup=True, highlight=False)
    errors.print(f"  next: {next_step}", highlight=False)
    return typer.Exit(code)


@contextmanager
def hub_client(
    server: str, token: str | None, next_steps: dict[str, str] | None = None
) -> Iterator[ModelHub]:
    """A client; hub errors and unreachable hubs become messages, with what to do next,
    and exit codes. ``next_steps`` (by error code) override the general advice."""
    try:
        client = ModelHub(server, token)
    except ValueError as error:  # a malformed --server
        raise fail(
            str(error), "pass --server http://HOST:PORT", EXIT_CODES[BadUserInput.code]
        ) from None
    try:
        with client as hub:
            yield hub
    except HubError as error:
        advice = {**NEXT_STEPS, **(next_steps or {})}
        raise fail(
            f"({error.code}) {error.message}",
            advice.get(error.code, "retry; if it persists, the hub's log has the request id"),
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


def inferred_declaration(path: Path) -> tuple[str | None, str | None]:
    """(framework, engine) the file's content implies; (None, None) when it says nothing."""
    try:
        found = detect_format(path)
    except UnsupportedModel:
        return None, None
    rule = WEIGHT_FORMATS[found]  # what the hub will accept for this format
    return (rule.framework or Framework.ONNX).value, rule.engine.value


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
    next_steps = {
        Conflict.code: f"it is registered already: `modelci ls --architecture {architecture}` "
        f"shows it; pass another --version (or --dataset) to register this one beside it",
        BadUserInput.code: "fix what the message names; a model's inputs are declared with "
        f"--input {IO_SPEC_HELP.split(', e.g. ')[1].split(' (')[0]}, and --no-convert "
        "registers it without converting",
    }
    with hub_client(server, token, next_steps) as hub, transfer_bar() as bar:
        upload = bar.add_task(f"uploading {file.name}", total=file.stat().st_size)
        model = hub.register_model(
            file,
            convert=convert,
            profile=profile,
            progress=lambda done, _: bar.update(upload, completed=done),
            **fields,
        )
    if as_json:
        print_json(model)
    else:
        console.print(
            f"registered [bold]{model.id}[/bold] ({model.architecture}, "
            f"{model.framework.value}/{model.engine.value} v{model.version})"
        )


def ls(
    architecture: Annotated[str | None, typer.Option()] = None,
    task: Annotated[str | None, typer.Option()] = None,
    framework: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[str | None, typer.Option()] = None,
    version: Annotated[int | None, typer.Option()] = None,
    dataset: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="e.g. PUBLISHED, CONVERTED.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List models, newest first."""
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
        )
    print_json(models) if as_json else console.print(models_table(models))


def show(
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """A model: metadata, variants, static and dynamic profiles."""
    with hub_client(server, token) as hub:
        model = hub.get_by_id(model_id)
        children = hub.get_variants(model_id)
    dynamic = sorted(
        model.profile_result.dynamic_results, key=lambda r: (r.device_id, r.ip, r.batch)
    )
    if as_json:
        shown = model.model_dump(mode="json")
        shown["profile_result"]["dynamic_results"] = [r.model_dump(mode="json") for r in dynamic]
        print_json({**shown, "children": [child.model_dump(mode="json") for child in children]})
        return
    console.print(models_table([model]))
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
            "device", "batch", "p50 ms", "p95 ms", "p99 ms", "items/s", "memory", title="dynamic"
        )
        for result in dynamic:
            latency = result.latency.inference_latency
            p99 = f"{latency.p99 * 1e3:.3f}" if latency.p99 is not None else "-"
            unstable = result.measurement is not None and not result.measurement.stable
            table.add_row(
                f"{result.device_id} @ {result.ip}",
                str(result.batch),
                f"{latency.p50 * 1e3:.3f}" + (" (unstable)" if unstable else ""),
                f"{latency.p95 * 1e3:.3f}",
                p99,
                f"{result.throughput.inference_throughput:,.0f}",
                f"{result.memory.memory_usage:,}",
            )
        console.print(table)


def download(
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
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
                model_id,
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
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    batch: Annotated[list[int] | None, typer.Option(help="Batch sizes (repeat).")] = None,
    device: Annotated[list[str] | None, typer.Option(help="Devices, e.g. cuda:0.")] = None,
    follow: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Queue profiling and follow the job live."""
    with hub_client(server, token) as hub:
        job = hub.profile_model(model_id, batch_sizes=batch, devices=device)
        if follow:
            job = follow_job(hub, job.id)
    if as_json:
        print_json(job)
    else:
        console.print(
            f"job {job.id}: {job.status.value}" + (f" ({job.error})" if job.error else "")
        )
    if follow and job.status is not JobStatus.SUCCEEDED:
        if not as_json:
            errors.print(
                f"  next: `modelci jobs --model {model_id}` shows its log; "
                f"`modelci show {model_id}` what it measured"
            )
        raise typer.Exit(EXIT_JOB_UNSUCCESSFUL)


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
            bar.update(task, completed=job.progress, description=f"{job.status.value}: {last}")

        return hub.wait_for_job(job_id, on_update=show_state)


def rm(
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    cascade: Annotated[bool, typer.Option(help="Delete its converted variants too.")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Delete a model and its weight (--cascade: its converted variants too)."""
    next_steps = {
        Conflict.code: f"`modelci rm {model_id} --cascade` deletes it with its variants "
        f"(`modelci show {model_id}` lists them)",
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


COMMANDS: list[Callable[..., None]] = [register, ls, show, download, profile, rm, jobs]


def add_client_commands(app: typer.Typer) -> None:
    for command in COMMANDS:
        app.command()(command)
