"""The ``modelci`` command line."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from .embedded import EmbeddedDatabase, EmbeddedDatabaseError, stop_with_parent
from .http import RequestLogFilter
from .settings import Settings, env_file_text

app = typer.Typer(
    help="ModelCI Hub: a model registry and profiling service with a GraphQL API.",
    no_args_is_help=True,
    add_completion=False,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per worker request


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
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    if settings.mongodb_url is not None:
        run_server(settings, settings.mongodb_url)
        return
    database = EmbeddedDatabase(settings.embedded_db_dir)
    try:
        url = database.start()
    except EmbeddedDatabaseError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        run_server(settings, url)
    finally:
        database.stop()


def run_server(settings: Settings, mongodb_url: str) -> None:
    """uvicorn with the app, plus the configured number of profiling worker processes."""
    from .app import create_app  # after logging is configured

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    workers = [
        start_worker(f"http://{host}:{settings.port}", settings.allow_pickle)
        for _ in range(settings.workers)
    ]
    try:
        uvicorn.run(
            create_app(settings, mongodb_url=mongodb_url),
            host=settings.host,
            port=settings.port,
            log_config=None,
        )
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait()


def start_worker(server: str, allow_pickle: bool) -> subprocess.Popen[bytes]:
    """A worker in its own process: models load there, never in the web process."""
    command = [sys.executable, "-m", "modelci.server.cli", "worker", "--server", server]
    return subprocess.Popen(
        [*command, "--allow-pickle"] if allow_pickle else command,
        stdin=subprocess.DEVNULL,
        preexec_fn=stop_with_parent if sys.platform == "linux" else None,
    )


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
    server: Annotated[str, typer.Option(help="The hub's URL, e.g. http://hub:8000.")],
    token: Annotated[str | None, typer.Option(help="API token, once auth is on.")] = None,
    lease_seconds: Annotated[float, typer.Option(help="Job lease; renewed every third.")] = 60.0,
    poll_seconds: Annotated[float, typer.Option(help="Wait between claims when idle.")] = 2.0,
    window_seconds: Annotated[float | None, typer.Option(help="Timed window length.")] = None,
    min_runs: Annotated[int | None, typer.Option(help="Runs per window, at least.")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Windows before giving up.")] = None,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option(help="Unpickle PyTorch models (runs arbitrary code!).")
    ] = False,
) -> None:
    """Run a profiling worker that claims jobs from a hub (a GPU host, say)."""
    from modelci.profiling.dynamic import MeasurementSettings
    from modelci.profiling.worker import main

    settings = Settings()
    configure_logging(settings.log_level)
    defaults = MeasurementSettings()
    measurement = MeasurementSettings(
        window_s=window_seconds or settings.profile_window_s,
        min_runs=min_runs or settings.profile_min_runs,
        max_windows=max_windows or settings.profile_max_windows,
        threads=threads or settings.profile_threads or defaults.threads,
    )
    main(
        server,
        token,
        lease_seconds,
        poll_seconds,
        measurement,
        allow_pickle or settings.allow_pickle,
    )


if __name__ == "__main__":
    app()
