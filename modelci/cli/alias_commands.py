"""`modelci alias set / rm / ls`: one name for one model at a time, moved atomically."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelci.core.errors import NotFound

from .console import ID_WIDTH, console, hub_client, print_json
from .options import DEFAULT_SERVER, AsJson, Server, Token

alias_app = typer.Typer(
    help="Aliases: one name for one model at a time (resnet50-prod), moved atomically.",
    no_args_is_help=True,
)


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="The alias, e.g. resnet50-prod.")],
    model_id: Annotated[str, typer.Argument(help="The model it is to name.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Point NAME at a model: created, or moved from the model it named."""
    with hub_client(server, token) as hub:
        pointed = hub.set_alias(name, model_id)
    if as_json:
        print_json(pointed)
    else:
        console.print(f"{pointed.alias} → {pointed.model_id}")


@alias_app.command("rm")
def alias_rm(
    name: Annotated[str, typer.Argument(help="The alias.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Remove an alias (the model stays)."""
    with hub_client(server, token, {NotFound.code: "`modelci alias ls` lists the aliases"}) as hub:
        removed = hub.delete_alias(name)
    console.print(f"removed {removed.alias} (it named {removed.model_id})")


@alias_app.command("ls")
def alias_ls(
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the aliases and the models they name."""
    with hub_client(server, token) as hub:
        found = hub.aliases()
    if as_json:
        print_json(found)
        return
    table = Table("alias", "model", "since")
    table.columns[1].no_wrap, table.columns[1].min_width = True, ID_WIDTH
    for alias in found:
        table.add_row(alias.alias, alias.model_id, f"{alias.update_time:%Y-%m-%d %H:%M:%S}")
    console.print(table)
