"""`modelci serve / worker / init-env / export-schema`: the commands that run a hub's own
processes (the server with its embedded database, a profiling worker) or write what it
reads (its settings file, its schema); and ``hub_database``, the database of a hub on
this machine, which the token and archive commands open too.

The server, schema and profiling modules are imported inside each command: the client
commands and ``modelci --help`` never load them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from modelci.server.settings import Settings


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
    from modelci.server.http import configure_logging
    from modelci.server.serving import StopRequested, stop_signals_raise
    from modelci.server.settings import Settings

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
    from modelci.server.embedded import EmbeddedDatabase, EmbeddedDatabaseError
    from modelci.server.serving import run_server, stop_signals_ignored

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
    from modelci.server.serving import STARTUP_FAILURE

    if not started:
        typer.echo("error: the server could not start (see the log above)", err=True)
        raise typer.Exit(STARTUP_FAILURE)


def init_env(
    path: Annotated[Path, typer.Argument(help="File to write.")] = Path(".env"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented .env file listing every setting and its default."""
    from modelci.server.settings import env_file_text

    if path.exists() and not force:
        typer.echo(f"error: {path} exists; pass --force to overwrite it", err=True)
        raise typer.Exit(1)
    path.write_text(env_file_text())
    typer.echo(f"wrote {path}")


def export_schema(
    path: Annotated[Path, typer.Argument(help="File to write.")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) of this version, as `strawberry export-schema` does."""
    from modelci.schema import schema

    path.write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {path}")


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
    from modelci.server.http import configure_logging
    from modelci.server.settings import Settings

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


DataDirOption = Annotated[Path | None, typer.Option(help="The hub's data directory.")]


@contextmanager
def hub_database(settings: Settings) -> Iterator[str]:
    """The hub's database: MONGODB_URL, the embedded one a running server holds, or started."""
    from modelci.server.embedded import EmbeddedDatabase, running_database_url

    if settings.mongodb_url:
        yield settings.mongodb_url
        return
    running = running_database_url(settings.embedded_db_dir)
    if running:
        yield running
        return
    with EmbeddedDatabase(settings.embedded_db_dir) as database:
        yield database.url
