"""What every client command shares to speak to a hub and to the user: the hub client
with its refusals turned into messages, next steps and exit codes (``hub_client``,
``fail``, ``EXIT_CODES``), the consoles that print what the hub says without its control
characters, JSON output, id tables and the transfer bar."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer
from platformdirs import user_cache_dir
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelci.client import ModelHub
from modelci.core.domain import printable
from modelci.core.errors import (
    BadUserInput,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)

# By the hub's error code (``HubError.code``).
EXIT_CODES = {
    BadUserInput.code: 2,
    Unauthenticated.code: 3,
    Forbidden.code: 3,
    NotFound.code: 4,
    Conflict.code: 5,
    PayloadTooLarge.code: 6,
    TooManyRequests.code: 9,
}
EXIT_JOB_UNSUCCESSFUL = 7
EXIT_UNREACHABLE = 8
EXIT_OTHER = 1

# What to do next, after the hub's own message: a sentence, or one chosen from the error
# itself (its ``field`` extension and message) where one code covers unlike refusals.
Advice = str | Callable[[HubError], str]

# What to do next, after the hub's own message, when a command has nothing better to say.
NEXT_STEPS: dict[str, Advice] = {
    BadUserInput.code: "check the arguments (this command's --help lists them)",
    Unauthenticated.code: "pass --token or set MODELCI_TOKEN (an admin makes one with "
    "`modelci token create`)",
    Forbidden.code: "use a token with the scope this needs (read, write, worker or admin)",
    NotFound.code: "`modelci ls` lists the models, `modelci jobs` the jobs",
    Conflict.code: "`modelci ls` shows what is there already",
    PayloadTooLarge.code: "the file is over the hub's upload limit; ask its operator",
    TooManyRequests.code: "wait for your uploads or queued jobs to finish, then retry",
}


class HubConsole(Console):
    """A console for what the hub says: every string it renders (table cells included)
    loses its control characters, and is markup only where a call asks for it."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(printable(text), **kwargs)


# Piped output is not cut to 80 columns: tables keep their rows on one line each.
console = HubConsole(width=None if sys.stdout.isatty() else 200, markup=False)
errors = HubConsole(stderr=True, width=None if sys.stderr.isatty() else 200, markup=False)

ID_WIDTH = 24  # an ObjectId in hex: never cut, whatever the terminal's width


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 alias``, ``2 aliases``, ``0 models``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def error_fields(error: HubError) -> set[str]:
    """The inputs an error names (its ``field`` or ``fields`` extension), by their top name:
    ``input.inputs[0].shape`` is ``inputs``."""
    named = [error.extensions.get("field"), *(error.extensions.get("fields") or [])]
    fields = set()
    for name in named:
        if isinstance(name, str) and name:
            top = name.removeprefix("input.").split(".")[0].split("[")[0]
            fields.add(top)
    return fields


def fail(message: str, next_step: str, code: int) -> typer.Exit:
    errors.print(f"[red]error[/red]: {escape(message)}", markup=True, highlight=False)
    errors.print(f"  next: {next_step}", highlight=False)
    return typer.Exit(code)


def write_times_file() -> Path:
    return Path(user_cache_dir("modelci", appauthor=False)) / "write-times.json"


def remembered_write_times() -> dict[str, str]:
    """The time of the latest write a command made on each hub, by its URL: the next
    command's reads see it, whichever of the hub's server processes answers them."""
    try:
        times = json.loads(write_times_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(times, dict):
        return {}
    return {server: time for server, time in times.items() if isinstance(time, str)}


def remember_write_time(server: str, time: str | None) -> None:
    times = remembered_write_times()
    if time is None or times.get(server) == time:
        return
    times[server] = time
    path = write_times_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
            json.dump(times, handle)
        os.replace(handle.name, path)
    except OSError:
        pass  # a hint for the next command's reads, not worth failing this one


@contextmanager
def hub_client(
    server: str, token: str | None, next_steps: Mapping[str, Advice] | None = None
) -> Iterator[ModelHub]:
    """A client; hub errors and unreachable hubs become messages, with what to do next,
    and exit codes. ``next_steps`` (by error code) override the general advice."""
    try:
        client = ModelHub(server, token)
        client.python_errors = False  # the hub's own words, which the next steps here follow
    except ValueError as error:  # a malformed --server
        raise fail(
            str(error), "pass --server http://HOST:PORT", EXIT_CODES[BadUserInput.code]
        ) from None
    client.write_time = remembered_write_times().get(server)
    try:
        with client as hub:
            try:
                yield hub
            finally:
                remember_write_time(server, hub.write_time)
    except HubError as error:
        advice = {**NEXT_STEPS, **(next_steps or {})}.get(error.code)
        step = advice(error) if callable(advice) else advice
        raise fail(
            f"({error.code}) {error.message}",
            step or "retry; if it persists, the hub's log has the request id",
            EXIT_CODES.get(error.code, EXIT_OTHER),
        ) from None
    except httpx.HTTPError as error:
        raise fail(
            str(error)
            if "cannot reach" in str(error)
            else f"cannot reach the hub at {server} ({error})",
            "start it with `modelci serve`, or point --server / MODELCI_SERVER at it",
            EXIT_UNREACHABLE,
        ) from None


def print_json(value: Any) -> None:
    if isinstance(value, list):
        value = [item.model_dump(mode="json") for item in value]
    elif hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    console.print_json(json.dumps(value))


def transfer_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=errors,
        transient=True,
    )


def id_table(*columns: str, title: str | None = None) -> Table:
    """A table whose first column is an id, shown whole (other columns fold first)."""
    table = Table(title=title)
    table.add_column(columns[0], no_wrap=True, min_width=ID_WIDTH)
    for column in columns[1:]:
        table.add_column(column, overflow="fold")
    return table
