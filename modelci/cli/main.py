"""The ``modelci`` command, built from its groups: the client commands, which speak to a
hub only through the public client (models, jobs, recommend, aliases), then the commands
that run or administer a hub on this machine (hub, tokens, archives)."""

from __future__ import annotations

import typer

from .alias_commands import alias_app
from .archive_commands import export_archive, import_archive
from .hub_commands import export_schema, init_env, serve, worker
from .job_commands import cancel, convert, jobs, profile
from .model_commands import download, ls, register, rm, show
from .recommend_commands import recommend
from .tag_commands import tag_app
from .token_commands import token_app

app = typer.Typer(
    help="ModelCI Hub: a model registry and profiling service with a GraphQL API.",
    no_args_is_help=True,
    add_completion=False,
    # Markdown joins a docstring's wrapped lines into one paragraph; rich's markup kept
    # each line break, so help broke lines mid-sentence.
    rich_markup_mode="markdown",
)

# In the order `modelci --help` lists them.
app.command()(register)
app.command()(ls)
app.command()(show)
app.command()(download)
app.command()(convert)
app.command()(profile)
app.command()(cancel)
app.command()(rm)
app.command()(jobs)
app.command()(recommend)
app.add_typer(alias_app, name="alias")
app.add_typer(tag_app, name="tag")

app.command()(serve)
app.command("init-env")(init_env)
app.command("export-schema")(export_schema)
app.command()(worker)
app.add_typer(token_app, name="token")
app.command("export")(export_archive)
app.command("import")(import_archive)


if __name__ == "__main__":
    app()
