"""`modelci register / ls / show / download / profile / rm / jobs`: the hub from a shell.

Every command talks to a hub through ``modelci.client`` (``--server``, ``--token`` or
MODELCI_SERVER / MODELCI_TOKEN), prints tables and progress bars with rich, or JSON
with ``--json``, and exits with a code scripts can rely on (``EXIT_CODES``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelci.client import ModelHub
from modelci.profiling.formats import UnsupportedModel, detect_format
from modelci.schema.domain import Framework, JobStatus, MLModel, ProfilingJob
from modelci.schema.errors import HubError

from .inspection import DECLARED_AS

EXIT_CODES = {
    "BAD_USER_INPUT": 2,
    "UNAUTHENTICATED": 3,
    "FORBIDDEN": 3,
    "NOT_FOUND": 4,
    "CONFLICT": 5,
    "PAYLOAD_TOO_LARGE": 6,
    "TOO_MANY_REQUESTS": 9,
}
EXIT_JOB_UNSUCCESSFUL = 7
EXIT_UNREACHABLE = 8

LINEAGE = """
query Lineage($id: ID!) { model(id: $id) { children { id engine modelStatus } } }
"""

console = Console()
errors = Console(stderr=True)

Server = Annotated[str, typer.Option(envvar="MODELCI_SERVER", help="The hub's URL.")]
Token = Annotated[str | None, typer.Option(envvar="MODELCI_TOKEN", help="API token.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


@contextmanager
def hub_client(server: str, token: str | None) -> Iterator[ModelHub]:
    """A client; hub errors and unreachable hubs become messages and exit codes."""
    try:
        with ModelHub(server, token) as hub:
            yield hub
    except HubError as error:
        errors.print(f"[red]error[/red] ({error.code}): {error.message}")
        raise typer.Exit(EXIT_CODES.get(error.code, 1)) from None
    except httpx.HTTPError as error:
        errors.print(f"[red]error[/red]: cannot reach the hub at {server} ({error})")
        raise typer.Exit(EXIT_UNREACHABLE) from None


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


def models_table(models: list[MLModel]) -> Table:
    table = Table(
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
            str(model.weight.size),
        )
    return table


def jobs_table(jobs: list[ProfilingJob]) -> Table:
    table = Table("id", "model", "kind", "status", "progress", "worker", "error")
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


def inferred_declaration(path: Path) -> tuple[str | None, str | None]:
    """(framework, engine) the file's content implies; (None, None) when it says nothing."""
    try:
        found = detect_format(path)
    except UnsupportedModel:
        return None, None
    engines, framework = DECLARED_AS[found]  # what the hub will accept for this format
    (engine,) = engines
    return (framework or Framework.ONNX).value, engine.value


def register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The weight file.")],
    architecture: Annotated[str, typer.Option(help="e.g. ResNet50.")],
    task: Annotated[str, typer.Option(help="e.g. Image_Classification.")] = "Other",
    dataset: Annotated[str, typer.Option(help="What it was trained on.")] = "unknown",
    version: Annotated[int, typer.Option(help="A positive integer.")] = 1,
    framework: Annotated[str | None, typer.Option(help="Inferred from the file.")] = None,
    engine: Annotated[str | None, typer.Option(help="Inferred from the file.")] = None,
    convert: Annotated[bool, typer.Option(help="Convert to TorchScript/ONNX.")] = True,
    profile: Annotated[bool, typer.Option(help="Profile it (and its variants).")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Register a model file; framework and engine are inferred from its content."""
    inferred_framework, inferred_engine = inferred_declaration(file)
    framework, engine = framework or inferred_framework, engine or inferred_engine
    if framework is None or engine is None:
        errors.print(
            "[red]error[/red]: the file's format says nothing: give --framework and --engine"
        )
        raise typer.Exit(EXIT_CODES["BAD_USER_INPUT"])
    fields = {
        "architecture": architecture,
        "framework": framework,
        "engine": engine,
        "version": version,
        "dataset": dataset,
        "task": task,
    }
    with hub_client(server, token) as hub, transfer_bar() as bar:
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
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List models, newest first."""
    filters = {"architecture": architecture, "task": task, "framework": framework, "engine": engine}
    with hub_client(server, token) as hub:
        models = hub.get_models(limit=limit, **{k: v for k, v in filters.items() if v})
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
        children = hub.execute(LINEAGE, id=model_id)["children"]
    if as_json:
        print_json({**model.model_dump(mode="json"), "children": children})
        return
    console.print(models_table([model]))
    if model.parent_model_id:
        console.print(f"converted from {model.parent_model_id}")
    if children:
        table = Table("variant", "engine", "status", title="variants")
        for child in children:
            table.add_row(child["id"], child["engine"], ",".join(child["modelStatus"]))
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
    if model.profile_result.dynamic_results:
        table = Table(
            "device", "batch", "p50 ms", "p95 ms", "p99 ms", "items/s", "memory", title="dynamic"
        )
        for result in model.profile_result.dynamic_results:
            latency = result.latency.inference_latency
            p99 = f"{latency.p99 * 1e3:.3f}" if latency.p99 is not None else "-"
            table.add_row(
                f"{result.device_id} @ {result.ip}",
                str(result.batch),
                f"{latency.p50 * 1e3:.3f}",
                f"{latency.p95 * 1e3:.3f}",
                p99,
                f"{result.throughput.inference_throughput:,.0f}",
                f"{result.memory.memory_usage:,}",
            )
        console.print(table)


def download(
    model_id: Annotated[str, typer.Argument(help="The model's id.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File or folder.")] = Path("."),
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Download a model's weight file."""
    with hub_client(server, token) as hub, transfer_bar() as bar:
        task = bar.add_task("downloading", total=None)
        path = hub.download_weight(
            model_id,
            output,
            progress=lambda done, total: bar.update(task, completed=done, total=total or None),
        )
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
    """Delete a model and its weight."""
    with hub_client(server, token) as hub:
        deleted = hub.delete_model(model_id, cascade=cascade)
    console.print(f"deleted {deleted.id}")


def jobs(
    model: Annotated[str | None, typer.Option(help="Only this model's jobs.")] = None,
    status: Annotated[str | None, typer.Option(help="e.g. RUNNING.")] = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    with hub_client(server, token) as hub:
        found = hub.get_jobs(model_id=model, status=status)
    print_json(found) if as_json else console.print(jobs_table(found))


COMMANDS: list[Callable[..., None]] = [register, ls, show, download, profile, rm, jobs]


def add_client_commands(app: typer.Typer) -> None:
    for command in COMMANDS:
        app.command()(command)
