"""The ``modelci`` command line."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pymongo import AsyncMongoClient

from modelci.core.errors import Forbidden, NotFound, Unauthenticated
from modelci.core.identity import Scope
from modelci.server.embedded import EmbeddedDatabase, EmbeddedDatabaseError, running_database_url
from modelci.server.http import configure_logging, printable
from modelci.server.serving import (
    STARTUP_FAILURE,
    StopRequested,
    run_server,
    stop_signals_ignored,
    stop_signals_raise,
)
from modelci.server.settings import Settings, env_file_text
from modelci.server.storage import TOKENS
from modelci.server.token_store import TokenStore

from .commands import add_client_commands, counted, hub_client

app = typer.Typer(
    help="ModelCI Hub: a model registry and profiling service with a GraphQL API.",
    no_args_is_help=True,
    add_completion=False,
)

add_client_commands(app)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    mongodb_url: Annotated[
        str | None,
        typer.Option("--mongodb-url", help="Use this MongoDB instead of the embedded database."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the embedded database and weight files live."),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(help="Accept pickled PyTorch models: unpickling runs arbitrary code."),
    ] = False,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No tokens needed (loopback only).")
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(help="Web server processes on the one port (default 1); more use more cores."),
    ] = None,
) -> None:
    """Start the server (and the embedded database when no MongoDB URL is set)."""
    overrides: dict[str, Any] = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "mongodb_url": mongodb_url,
            "data_dir": data_dir,
            "allow_pickle": allow_pickle or None,
            "auth": "off" if no_auth else None,
            "processes": processes,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    if settings.auth == "off" and not settings.listens_on_loopback():
        typer.echo(
            f"error: authentication can be off only on loopback, not on {settings.host}", err=True
        )
        raise typer.Exit(2)
    with stop_signals_raise():
        try:
            serve_until_stopped(settings)
        except StopRequested as stop:
            typer.echo(f"stopped by {stop} before the server was ready", err=True)


def serve_until_stopped(settings: Settings) -> None:
    """The server (on the embedded database unless a URL is set) until a stop signal;
    the database is stopped after the server, whatever stopped it."""
    if settings.mongodb_url is not None:
        finish(run_server(settings, settings.mongodb_url))
        return
    database = EmbeddedDatabase(
        settings.embedded_db_dir,
        holder="modelci serve",
        serving=f"http://{settings.host}:{settings.port}",
    )
    try:
        try:
            url = database.start()
        except EmbeddedDatabaseError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        # A database that will not come back stops the hub, which then exits 1 for its
        # own supervisor to restart it.
        database.supervise(give_up=lambda why: os.kill(os.getpid(), signal.SIGTERM))
        started = run_server(settings, url)
    finally:
        with stop_signals_ignored():
            database.stop()
        if database.failure:
            typer.echo(f"error: {database.failure}", err=True)
            raise typer.Exit(1)
    finish(started)


def finish(started: bool) -> None:
    if not started:
        typer.echo("error: the server could not start (see the log above)", err=True)
        raise typer.Exit(STARTUP_FAILURE)


@app.command("init-env")
def init_env(
    path: Annotated[Path, typer.Argument(help="File to write.")] = Path(".env"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented .env file listing every setting and its default."""
    if path.exists() and not force:
        typer.echo(f"error: {path} exists; pass --force to overwrite it", err=True)
        raise typer.Exit(1)
    path.write_text(env_file_text())
    typer.echo(f"wrote {path}")


@app.command("export-schema")
def export_schema(
    path: Annotated[Path, typer.Argument(help="File to write.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) of this version, as `strawberry export-schema` does."""
    from modelci.schema import schema

    path.write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {path}")


@app.command()
def worker(
    server: Annotated[
        str, typer.Option(envvar="MODELCI_SERVER", help="The hub's URL, e.g. http://hub:8000.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None, typer.Option(help="API token with the worker scope (or MODELCI_TOKEN).")
    ] = None,
    lease_seconds: Annotated[float, typer.Option(help="Job lease; renewed every third.")] = 60.0,
    poll_seconds: Annotated[float, typer.Option(help="Wait between claims when idle.")] = 2.0,
    window_seconds: Annotated[float | None, typer.Option(help="Timed window length.")] = None,
    min_runs: Annotated[int | None, typer.Option(help="Runs per window, at least.")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Windows before giving up.")] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Unpickle PyTorch models (runs arbitrary code!).")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(help="The worker's name on its jobs (default: host:pid:random)."),
    ] = None,
    lane: Annotated[
        list[str] | None,
        typer.Option(
            help="Lanes to claim jobs in (repeat; default both): device (profiling, one job "
            "at a time: it needs the devices to itself) and light (conversions, run beside it)."
        ),
    ] = None,
) -> None:
    """Run a profiling worker that claims jobs from a hub (a GPU host, say).

    It claims in two lanes at once: profiling jobs one at a time, conversions beside
    them, so that a long profile never holds a conversion behind it.

    SIGTERM or SIGINT stops it gracefully: the jobs under way stop at their next check and
    are handed back to the queue at once, and the worker exits 0; a second signal stops
    it at once."""
    from modelci.profiling.dynamic import MeasurementSettings
    from modelci.profiling.worker import LANES, main

    unknown = sorted(set(lane or []) - set(LANES))
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: the lanes are {', '.join(LANES)}", param_hint="--lane"
        )

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    defaults = MeasurementSettings()
    measurement = MeasurementSettings(
        window_s=window_seconds or settings.profile_window_s,
        min_runs=min_runs or settings.profile_min_runs,
        max_windows=max_windows or settings.profile_max_windows,
        threads=threads or settings.profile_threads or defaults.threads,
    )
    main(
        server,
        token or settings.token,
        lease_seconds,
        poll_seconds,
        measurement,
        allow_pickle or settings.allow_pickle,
        name,
        tuple(dict.fromkeys(lane)) if lane else tuple(LANES),
    )


token_app = typer.Typer(
    help="API tokens: create, list, revoke, through a hub's API (--server, with an admin "
    "token) or straight on a hub's data directory (--data-dir), saying which."
)
app.add_typer(token_app, name="token")


@contextmanager
def hub_database(settings: Settings) -> Iterator[str]:
    """The hub's database: MONGODB_URL, the embedded one a running server holds, or started."""
    if settings.mongodb_url:
        yield settings.mongodb_url
        return
    running = running_database_url(settings.embedded_db_dir)
    if running:
        yield running
        return
    with EmbeddedDatabase(settings.embedded_db_dir) as database:
        yield database.url


def with_tokens(settings: Settings, action: Callable[[TokenStore], Awaitable[Any]]) -> Any:
    async def run(url: str) -> Any:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, **settings.database_client_options()
        )
        try:
            return await action(TokenStore(client[settings.database][TOKENS]))
        finally:
            await client.close()

    with hub_database(settings) as url:
        return asyncio.run(run(url))


DataDirOption = Annotated[Path | None, typer.Option(help="The hub's data directory.")]
TokenServerOption = Annotated[
    str | None,
    typer.Option(
        help="Go through this running hub's API (or MODELCI_SERVER), with an admin --token; "
        "without it, the data directory's database is used.",
        show_default=False,
    ),
]
AdminTokenOption = Annotated[
    str | None,
    typer.Option(envvar="MODELCI_TOKEN", help="With --server: an admin token (or MODELCI_TOKEN)."),
]

# Through --server, a refusal says what the token commands need.
ADMIN_NEEDED = (
    "token commands through --server need an admin token: --token or MODELCI_TOKEN (make "
    "the first one with `modelci token create --scope admin --data-dir DIR` on the hub's "
    "machine)"
)
TOKEN_NEXT_STEPS = {Unauthenticated.code: ADMIN_NEEDED, Forbidden.code: ADMIN_NEEDED}


def token_server(server: str | None, data_dir: Path | None) -> str | None:
    """The hub to go through: --server, else MODELCI_SERVER unless --data-dir says where."""
    if server and data_dir:
        typer.echo(
            "error: give --server (a running hub) or --data-dir (its data), not both", err=True
        )
        raise typer.Exit(2)
    if server or data_dir:
        return server
    return os.environ.get("MODELCI_SERVER") or None


def redacted(url: str) -> str:
    """A database URL without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def data_dir_tokens(data_dir: Path | None, *, init: bool = False) -> Settings:
    """The settings of the hub whose data is in ``data_dir`` (default: the user's), after
    saying on stderr which database the tokens go to; refused when that folder holds no
    hub data, unless ``init`` (then the tokens work only on a hub serving it)."""
    settings = Settings(data_dir=data_dir) if data_dir else Settings()
    if settings.mongodb_url:
        typer.echo(
            f"using the tokens of database {settings.database!r} on MongoDB at "
            f"{redacted(settings.mongodb_url)} (MODELCI_MONGODB_URL)",
            err=True,
        )
        return settings
    folder, db = settings.data_dir, settings.embedded_db_dir
    serve = f"modelci serve --data-dir {folder}"
    if not db.is_dir():
        if not init:
            typer.echo(
                f"error: {folder} holds no hub data (no {db.name} folder). Give the data "
                f"directory of the hub that is to accept the token (--data-dir), go through "
                f"a running hub with --server URL, or pass --init to create its database "
                f"here for a hub you will start with `{serve}`",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(
            f"warning: {folder} held no hub data; creating its database in {db}: the token "
            f"works only on a hub serving this folder (`{serve}`)",
            err=True,
        )
    elif running_database_url(db):
        typer.echo(
            f"using the tokens of the running hub's embedded database in {db} "
            f"(database {settings.database!r})",
            err=True,
        )
    else:
        typer.echo(
            f"using the tokens of the embedded database in {db} (database "
            f"{settings.database!r}); no hub serves it now: they work on one started with "
            f"`{serve}`",
            err=True,
        )
    return settings


def scopes_text(scopes: list[str]) -> str:
    return ",".join(scopes)


def print_tokens(tokens: list[tuple[str, str, list[str], bool]]) -> None:
    if not tokens:
        typer.echo("no tokens")
        return
    for token_id, name, scopes, revoked in tokens:
        state = "revoked" if revoked else "live"
        typer.echo(f"{token_id}  {name:<24} {scopes_text(scopes):<24} {state}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. ci.")],
    scope: Annotated[list[Scope], typer.Option(help="read, write, worker or admin.")],
    server: TokenServerOption = None,
    token: AdminTokenOption = None,
    data_dir: DataDirOption = None,
    init: Annotated[
        bool,
        typer.Option(help="Create the hub database in a data directory that has none yet."),
    ] = False,
) -> None:
    """Create a token and print it, once: only a salted hash is stored."""
    hub = token_server(server, data_dir)
    if hub:
        with hub_client(hub, token, TOKEN_NEXT_STEPS) as client:
            created = client.create_token(name, [wanted.value for wanted in scope])
        record = created.api_token
        typer.echo(created.token)
        typer.echo(
            f"created token {record.id} ({record.name}: "
            f"{scopes_text([each.value for each in record.scopes])}) "
            f"on the hub at {hub}",
            err=True,
        )
        return
    settings = data_dir_tokens(data_dir, init=init)
    made, secret = with_tokens(settings, lambda store: store.create(name, scope))
    typer.echo(secret)
    scopes = ", ".join(each.value for each in made.scopes)
    typer.echo(f"created token {made.id} ({made.name}: {scopes})", err=True)


@token_app.command("list")
def token_list(
    server: TokenServerOption = None,
    token: AdminTokenOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List tokens (never their secrets)."""
    hub = token_server(server, data_dir)
    if hub:
        with hub_client(hub, token, TOKEN_NEXT_STEPS) as client:
            listed = client.get_tokens()
        print_tokens(
            [
                (item.id, item.name, [each.value for each in item.scopes], item.revoked)
                for item in listed
            ]
        )
        return
    records = with_tokens(data_dir_tokens(data_dir), lambda store: store.list_all())
    print_tokens(
        [
            (record.id, record.name, [each.value for each in record.scopes], record.revoked)
            for record in records
        ]
    )


@token_app.command("revoke")
def token_revoke(
    id_or_name: Annotated[str, typer.Argument(help="A token id, or a name (all its tokens).")],
    server: TokenServerOption = None,
    token: AdminTokenOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Revoke tokens: they stop working at once."""
    hub = token_server(server, data_dir)
    if hub:
        with hub_client(hub, token, TOKEN_NEXT_STEPS) as client:
            revoked_here = client.api.revoke_api_token(id_or_name).revoke_api_token
        for item in revoked_here:
            typer.echo(f"revoked {item.id} ({item.name})")
        return
    settings = data_dir_tokens(data_dir)
    try:
        revoked = with_tokens(settings, lambda store: store.revoke(id_or_name))
    except NotFound as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from None
    for record in revoked:
        typer.echo(f"revoked {record.id} ({record.name})")


# Export and import (server/archive.py): a whole hub in one tar file.

MongoDbUrlOption = Annotated[
    str | None,
    typer.Option("--mongodb-url", help="The hub's MongoDB instead of the embedded database."),
]


def archive_settings(
    data_dir: Path | None, mongodb_url: str | None, allow_pickle: bool = False
) -> Settings:
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


@app.command("export")
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


@app.command("import")
def import_archive(
    path: Annotated[Path, typer.Argument(help="An archive written by `modelci export`.")],
    data_dir: DataDirOption = None,
    mongodb_url: MongoDbUrlOption = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            help="Accept pickled PyTorch weights, as `serve --allow-pickle` does: unpickling "
            "runs arbitrary code."
        ),
    ] = False,
) -> None:
    """Load an archive into this hub: all of it or nothing; models already here are skipped.

    Every weight is inspected as a registration inspects it. Only finished jobs are
    imported: queued or running ones are left out (queue them again here).

    Exit status 2: the archive is damaged or holds a weight this hub refuses (nothing
    written); 1: it clashes with this hub.
    """
    from modelci.server.archive import ArchiveError, ImportConflict, import_hub

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


if __name__ == "__main__":
    app()
