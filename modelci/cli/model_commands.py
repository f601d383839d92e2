"""`modelci register / ls / show / download / rm`: the models in a hub, from a shell."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelci.client import Engine, JobKind, MLModel, ProfilingJob, Task
from modelci.core.domain import (
    MAX_DESCRIPTION,
    MAX_METADATA_VALUE,
    METADATA_NAME_RULE,
    Framework,
)
from modelci.core.errors import BadUserInput, Conflict, HubError, NotFound
from modelci.core.weight_formats import WEIGHT_FORMATS

from .console import (
    EXIT_CODES,
    EXIT_OTHER,
    Advice,
    console,
    error_fields,
    fail,
    hub_client,
    id_table,
    print_json,
    transfer_bar,
)
from .job_commands import latest_profiling_job, print_profiling_job
from .options import (
    DEFAULT_SERVER,
    IO_SPEC_HELP,
    OUTPUT_SPEC_HELP,
    AsJson,
    Description,
    DescriptionFile,
    Metrics,
    ModelReference,
    Params,
    RunId,
    Server,
    SourceUri,
    Tags,
    Token,
    description_text,
    device_or_kind,
    io_shape,
    model_id_of,
    model_named,
    named_values,
    parse_duration,
)


def models_table(models: list[MLModel]) -> Table:
    """The models, one a row; a tags column where one of them has tags."""
    columns = ["architecture", "framework", "engine", "version", "task", "dataset", "status"]
    tagged = any(model.tags for model in models)
    table = id_table("id", *columns, "size", *(["tags"] if tagged else []))
    for model in models:
        tags = [pairs_text(model.tags)] if tagged else []
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
            *tags,
        )
    return table


def pairs_text(pairs: list[Any]) -> str:
    """Metrics, params or tags as ``name=value, name=value``."""
    return ", ".join(f"{pair.name}={pair.value}" for pair in pairs)


def metadata_lines(model: MLModel) -> list[str]:
    """What a model's registrant said of it: who registered it, its metrics, params, tags,
    source and description (as plain text, each of its lines indented)."""
    lines = [f"created by: {model.created_by or 'not recorded'}"]
    for name, pairs in (("metrics", model.metric), ("params", model.params), ("tags", model.tags)):
        lines.append(f"{name}: {pairs_text(pairs) or 'none'}")
    if model.source is not None:
        run = f" (run {model.source.run_id})" if model.source.run_id else ""
        lines.append(f"source: {model.source.uri}{run}")
    if model.description.strip():
        lines.append("description:")
        lines.extend(f"  {line}".rstrip() for line in model.description.strip("\n").splitlines())
    return lines


def inferred_declaration(path: Path) -> tuple[str | None, str | None]:
    """(framework, engine) the file's content implies; (None, None) when it says nothing.
    An ONNX model the hub would refuse (its weights in files beside it, say) is refused
    here, with the fix, before anything is uploaded."""
    # Imported here: reading formats loads onnx, which only `register` needs.
    from modelci.cage.formats import DamagedModel, RefusedOnnx, UnsupportedModel, detect_format

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
        return "--version is a positive integer, or leave it out to get the next one"
    if fields & {"metric", "metrics"}:
        return f"--metric is NAME=NUMBER, e.g. --metric acc=0.91; names are {METADATA_NAME_RULE}"
    if fields & {"params", "tags"}:
        return (
            f"--param and --tag are NAME=VALUE, e.g. --tag team=vision; names are "
            f"{METADATA_NAME_RULE}, values up to {MAX_METADATA_VALUE} characters"
        )
    if "description" in fields:
        return f"a description is Markdown text, up to {MAX_DESCRIPTION:,} characters"
    if fields & {"source", "run_id"}:
        return "--source is the URI of the run, notebook or commit; --run-id goes with it"
    return "fix the option the message names (`modelci register --help` lists them)"


def registration_metadata(
    metrics: list[str] | None,
    params: list[str] | None,
    tags: list[str] | None,
    description: str | None,
    description_file: Path | None,
    source: str | None,
    run_id: str | None,
) -> dict[str, Any]:
    """The metadata options as ``register_model``'s keyword arguments (those given), each
    read and checked before anything is uploaded."""
    if run_id is not None and source is None:
        raise typer.BadParameter(
            "give --source (the URI of the run, notebook or commit) with it",
            param_hint="--run-id",
        )
    given = {
        "metrics": named_values(metrics, "--metric", "acc=0.91", number=True),
        "params": named_values(params, "--param", "lr=0.1"),
        "tags": named_values(tags, "--tag", "team=vision"),
        "description": description_text(description, description_file),
        "source": source,
        "run_id": run_id,
    }
    return {name: value for name, value in given.items() if value is not None}


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
    version: Annotated[
        int | None,
        typer.Option(help="A positive integer; left out, the hub gives the next one."),
    ] = None,
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
    metrics: Metrics = None,
    params: Params = None,
    tags: Tags = None,
    description: Description = None,
    description_file: DescriptionFile = None,
    source: SourceUri = None,
    run_id: RunId = None,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Register a model file; framework and engine are inferred from its content, and an
    ONNX or .pt2 file's inputs and outputs from its graph (--input/--output otherwise).
    Without --version the hub numbers it: the next version of the architecture, task and
    dataset."""
    metadata = registration_metadata(
        metrics, params, tags, description, description_file, source, run_id
    )
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
        "dataset": dataset,
        "task": task,
        **metadata,
    }
    if version is not None:
        fields["version"] = version
    if declared_inputs:
        fields["inputs"] = declared_inputs
    if declared_outputs:
        fields["outputs"] = declared_outputs
    shown_by = f"`modelci ls --architecture {architecture}` shows it"
    next_steps: dict[str, Advice] = {
        Conflict.code: f"it is registered already: {shown_by}; leave --version out to "
        "register this one as the next version (or pass another --version or --dataset)"
        if version is not None
        else f"{shown_by}; retry, or pass --version",
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
    if version is None:
        console.print(
            f"version {model.version}: the next for {model.architecture}, {model.task.value}, "
            f"{model.dataset} (the hub numbers versions left out; --version gives one)",
            highlight=False,
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
    where: Annotated[
        str | None,
        typer.Option(
            help='A search: "tags.team = vision and metrics.acc > 0.75 and architecture ^= '
            'ResNet" (and, or, not, parentheses; = != > >= < <=, ^= starts with, *= '
            "contains, exists; the README's Find models has the rest).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List models, newest first; with a measured condition (--device, --batch, --p99, …),
    those with one dynamic result that meets all of them; with --where, those the search
    finds too."""
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
            where=where,
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
    for line in metadata_lines(model):
        console.print(line, highlight=False, soft_wrap=True, emoji=False)
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
        # What the figures cannot say by themselves: a busy machine, a missing p99.
        for result in dynamic:
            measurement = result.measurement
            for note in (
                measurement.contention if measurement is not None else None,
                measurement.p99_missing if measurement is not None else None,
            ):
                if note:
                    console.print(f"{result.device_id} batch {result.batch}: {note}")
    if profiling is not None:
        print_profiling_job(profiling)


def measurement_text(measurement: Any) -> str:
    """How sure a dynamic result is: stable or not, windows, samples, IQR/median, and how
    busy the machine was while it was measured."""
    if measurement is None:
        return "-"
    text = (
        f"{'stable' if measurement.stable else 'unstable'} ({measurement.windows} windows, "
        f"{measurement.samples} samples, IQR/median {measurement.iqr_over_median:.2f}"
    )
    if measurement.busy_fraction is not None:
        text += f", machine {measurement.busy_fraction:.0%} busy"
    return text + ")"


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
