"""The ``modelci`` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from .embedded import EmbeddedDatabase, EmbeddedDatabaseError
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
) -> None:
    """Start the server (and the embedded database when no MongoDB URL is set)."""
    overrides: dict[str, Any] = {
        name: value
        for name, value in {
            "host": host,
            "port": port,
            "mongodb_url": mongodb_url,
            "data_dir": data_dir,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    from .app import create_app  # after logging is configured

    if settings.mongodb_url is not None:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
        return
    database = EmbeddedDatabase(settings.embedded_db_dir)
    try:
        url = database.start()
    except EmbeddedDatabaseError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    try:
        uvicorn.run(
            create_app(settings, mongodb_url=url),
            host=settings.host,
            port=settings.port,
            log_config=None,
        )
    finally:
        database.stop()


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


if __name__ == "__main__":
    app()
