"""`modelci profile / convert / cancel / jobs`: queue a model's jobs and follow them live,
cancel one, list them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress
from rich.table import Table

from modelci.client import JobKind, JobStatus, ModelHub, ProfilingJob
from modelci.core.errors import BadUserInput, Conflict, HubError, NotFound

from .console import (
    EXIT_JOB_UNSUCCESSFUL,
    ID_WIDTH,
    Advice,
    console,
    error_fields,
    errors,
    hub_client,
    id_table,
    print_json,
    printable,
)
from .options import (
    DEFAULT_SERVER,
    AsJson,
    ModelReference,
    Server,
    Token,
    model_id_of,
    parse_duration,
)


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
            help="An engine to convert to (repeat): AOTINDUCTOR, ONNX, TORCHSCRIPT, TRT; "
            "none: the model's format's default targets.",
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
