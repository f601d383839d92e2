"""`modelci tag set / rm`: a model's tags, set and removed one at a time."""

from __future__ import annotations

from typing import Annotated

import typer

from modelci.client import MLModel
from modelci.core.errors import NotFound

from .console import console, hub_client, print_json
from .model_commands import pairs_text
from .options import (
    DEFAULT_SERVER,
    AsJson,
    ModelReference,
    Server,
    Token,
    model_id_of,
    named_values,
)

tag_app = typer.Typer(
    help="Tags: name=value labels on a model (team=vision), set and removed one at a time.",
    no_args_is_help=True,
)


def print_tags(model: MLModel, as_json: bool) -> None:
    if as_json:
        print_json(model)
    else:
        console.print(f"{model.id} tags: {pairs_text(model.tags) or 'none'}", highlight=False)


@tag_app.command("set")
def tag_set(
    model: ModelReference,
    tags: Annotated[
        list[str], typer.Argument(help="NAME=VALUE, one or more: team=vision stage=prod.")
    ],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Set tags of a model (each added, or its value replaced), one write per tag, in the
    order given."""
    pairs = named_values(tags, "TAGS", "team=vision") or {}
    with hub_client(server, token) as hub:
        model_id = model_id_of(hub, model)
        for name, value in pairs.items():
            tagged = hub.set_tag(model_id, name, value)
    print_tags(tagged, as_json)


@tag_app.command("rm")
def tag_rm(
    model: ModelReference,
    names: Annotated[list[str], typer.Argument(help="The tags' names, one or more.")],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Remove tags of a model by name; a name it has no tag of is NOT_FOUND."""
    next_steps = {NotFound.code: f"`modelci show {model}` lists its tags"}
    with hub_client(server, token, next_steps) as hub:
        model_id = model_id_of(hub, model)
        for name in names:
            untagged = hub.remove_tag(model_id, name)
    print_tags(untagged, as_json)
