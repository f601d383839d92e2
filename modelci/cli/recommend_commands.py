"""`modelci recommend`: which model, device and batch size to serve a task with under a
latency goal, from the profiles a hub holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelci.graphql_client import RecommendationOption

from .console import console, counted, errors, hub_client, id_table, print_json
from .options import DEFAULT_SERVER, DEVICE_KINDS, AsJson, Server, Token, parse_duration


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
