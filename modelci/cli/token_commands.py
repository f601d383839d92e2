"""`modelci token create / list / revoke`: API tokens, through a running hub's API
(``--server``, with an admin token) or straight on a hub's data directory (``--data-dir``),
whose database the server's token store opens (imported inside the commands that use it)."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelci.core.errors import Forbidden, NotFound, Unauthenticated
from modelci.core.identity import Scope

from .console import hub_client
from .hub_commands import DataDirOption, hub_database

if TYPE_CHECKING:
    from modelci.server.settings import Settings
    from modelci.server.token_store import TokenStore

token_app = typer.Typer(
    help="API tokens: create, list, revoke, through a hub's API (--server, with an admin "
    "token) or straight on a hub's data directory (--data-dir), saying which."
)


def with_tokens(settings: Settings, action: Callable[[TokenStore], Awaitable[Any]]) -> Any:
    from pymongo import AsyncMongoClient

    from modelci.server.storage import TOKENS
    from modelci.server.token_store import TokenStore

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
    from modelci.server.embedded import running_database_url
    from modelci.server.settings import Settings

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
