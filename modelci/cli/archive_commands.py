"""`modelci export / import`: a whole hub in one tar file, written from or loaded into
the database and weight store of a hub on this machine (the server's archive module,
imported inside the commands)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .console import counted, printable
from .hub_commands import DataDirOption, hub_database
from .options import DEFAULT_SERVER, Server, Token

if TYPE_CHECKING:
    from modelci.server.settings import Settings

MongoDbUrlOption = Annotated[
    str | None,
    typer.Option("--mongodb-url", help="The hub's MongoDB instead of the embedded database."),
]


def archive_settings(
    data_dir: Path | None, mongodb_url: str | None, allow_pickle: bool = False
) -> Settings:
    from modelci.server.settings import Settings

    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "mongodb_url": mongodb_url,
        "allow_pickle": allow_pickle or None,
    }
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def on_archive_hub(
    settings: Settings, label: str, action: Callable[..., Awaitable[Any]], *, writing: bool
) -> Any:
    """Run ``action(db, weights, progress)`` on the hub's database and weight store, with a
    progress bar of the weight bytes on a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from modelci.server.archive import opened_hub

    console = Console(stderr=True)
    columns = (TextColumn(label), BarColumn(), DownloadColumn())
    shown = console.is_terminal
    with Progress(*columns, console=console, transient=True, disable=not shown) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async def run(url: str) -> Any:
            async with opened_hub(settings, url, writing=writing) as hub:
                return await action(hub.db, hub.weights, progress)

        with hub_database(settings) as url:
            return asyncio.run(run(url))


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    scaled = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if scaled < 1024 or unit == "GiB":
            break
        scaled /= 1024
    return f"{scaled:.1f} {unit}"


def export_archive(
    path: Annotated[Path, typer.Argument(help="The archive to write (a tar file).")],
    data_dir: DataDirOption = None,
    mongodb_url: MongoDbUrlOption = None,
) -> None:
    """Write every model, its weights, profiles, lineage, aliases and finished jobs into one
    archive.

    API tokens are not exported: secrets stay with their hub.
    """
    from modelci.server.archive import ExportError, export_hub
    from modelci.server.embedded import EmbeddedDatabaseError

    if not path.parent.is_dir():
        typer.echo(f"error: no folder {path.parent} to write {path.name} into", err=True)
        raise typer.Exit(1)
    settings = archive_settings(data_dir, mongodb_url)
    try:
        summary = on_archive_hub(
            settings,
            "exporting",
            lambda db, weights, progress: export_hub(db, weights, path, progress),
            writing=False,
        )
    except (ExportError, EmbeddedDatabaseError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"exported {counted(summary.models, 'model')}, "
        f"{counted(summary.jobs, 'finished job')}, {counted(summary.aliases, 'alias', 'aliases')} "
        f"and {counted(summary.weights, 'weight')} ({size_text(summary.bytes)}) to {path}"
    )
    if summary.jobs_left_out:
        typer.echo(
            f"left out {counted(summary.jobs_left_out, 'job')} (queued, running, or of deleted "
            "models); API tokens are never exported",
            err=True,
        )
    if summary.sources_missing:
        typer.echo(
            f"{len(summary.sources_missing)} converted variants whose source model is gone "
            f"were exported without their link to it: {', '.join(summary.sources_missing)}",
            err=True,
        )


def import_archive(
    path: Annotated[
        Path | None, typer.Argument(help="An archive written by `modelci export`.")
    ] = None,
    data_dir: DataDirOption = None,
    mongodb_url: MongoDbUrlOption = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            help="Accept pickled PyTorch weights, as `serve --allow-pickle` does: unpickling "
            "runs arbitrary code."
        ),
    ] = False,
    from_mlflow: Annotated[
        str | None,
        typer.Option(
            "--from-mlflow",
            metavar="URL",
            help="Copy an MLflow registry (its tracking server's URL) into the hub at --server.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="With --from-mlflow: say what would be copied, copy nothing.")
    ] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Load an archive into this hub: all of it or nothing; models already here are skipped.

    Every weight is inspected as a registration inspects it. Only finished jobs are
    imported: queued or running ones are left out (queue them again here).

    Exit status 2: the archive is damaged or holds a weight this hub refuses (nothing
    written); 1: it clashes with this hub.

    With --from-mlflow URL instead of an archive: every registered model's versions (ONNX,
    torch.export and TorchScript weights), descriptions, tags, aliases and source runs'
    metrics and params, into the hub at --server; versions copied before are skipped.
    Exit status 1: a version could not be copied.
    """
    if from_mlflow is not None and path is None:
        from .mlflow_import import import_from_mlflow

        import_from_mlflow(from_mlflow, server, token, allow_pickle=allow_pickle, dry_run=dry_run)
        return
    if path is None or from_mlflow is not None or dry_run:
        typer.echo("error: give an archive file, or --from-mlflow URL (and --dry-run)", err=True)
        raise typer.Exit(2)
    from modelci.server.archive import ArchiveError, ImportConflict, import_hub
    from modelci.server.embedded import EmbeddedDatabaseError

    if not path.is_file():
        typer.echo(f"error: {path}: no such file", err=True)
        raise typer.Exit(2)
    settings = archive_settings(data_dir, mongodb_url, allow_pickle)
    try:
        summary = on_archive_hub(
            settings,
            "verifying",
            lambda db, weights, progress: import_hub(db, weights, path, settings, progress),
            writing=True,
        )
    except ArchiveError as error:
        message = archive_text(str(error)).replace("\n", " ")
        typer.echo(f"error: refused {path}, nothing imported: {message}", err=True)
        raise typer.Exit(2) from None
    except (ImportConflict, EmbeddedDatabaseError) as error:
        typer.echo(f"error: {archive_text(str(error))}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"imported {counted(summary.models, 'model')} ({summary.models_skipped} skipped: "
        f"already here), {counted(summary.jobs, 'job')} ({summary.jobs_skipped} skipped), "
        f"{counted(summary.aliases, 'alias', 'aliases')} ({summary.aliases_skipped} skipped), "
        f"{counted(summary.weights, 'weight')} verified ({size_text(summary.bytes)}), "
        f"{summary.weights_committed} stored"
    )
    if summary.jobs_unfinished:
        typer.echo(
            f"left out {counted(summary.jobs_unfinished, 'job')} queued or running in the "
            "archive: only finished jobs are imported; queue them again here",
            err=True,
        )


def archive_text(text: str) -> str:
    """A message quoting what an archive holds (names, keys), safe for any terminal: no
    control characters, and lone surrogates escaped."""
    return printable(text).encode("utf-8", "backslashreplace").decode("utf-8")
