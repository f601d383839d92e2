"""The plain HTTP routes beside GraphQL: weight downloads, the landing page, the
dashboard and the health checks."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from modelci import __version__
from modelci.cage.runner import cage_kind
from modelci.core.errors import Forbidden, HubError
from modelci.core.identity import Scope

from . import embedded
from .http import error_response
from .services import services_of

logger = logging.getLogger("modelci.server")

READY_TIMEOUT_S = 2.0
STATIC_DIR = Path(__file__).parent / "static"

# What GraphiQL opens with: a query that runs as it is (the stock page opened on comments
# alone, and Run answered "Syntax Error: Unexpected <EOF>").
GRAPHIQL_STARTER = """# ModelCI Hub. Run (the ▶ button, or Ctrl-Enter) lists the newest models.
# Docs (the book on the left) lists every query and mutation and what each argument means.
{
  models(first: 10) {
    nodes {
      id
      architecture
      engine
      version
    }
  }
}
"""
STOCK_EXAMPLE = "const EXAMPLE_QUERY = `"
STOCK_QUERY_PARAMETER = "parameters.q || EXAMPLE_QUERY"
STOCK_DECODE = "decodeURIComponent(entry.slice(eq + 1))"


async def download_weight(request: Request) -> Response:
    """The weight bytes, streamed, with Content-Length and the sha256 as ETag."""
    services = services_of(request)
    identity = request.scope.get("state", {}).get("identity")
    if services.auth_enabled and not (identity and identity.allows(Scope.read)):
        return error_response(Forbidden("this token lacks the scope read"))
    try:
        model = await services.registry.get(request.path_params["model_id"])
    except HubError as error:
        return error_response(error)
    weight = model.weight
    etag = f'"{weight.sha256}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": content_disposition(weight.filename),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
    }
    wanted = {
        tag.strip().removeprefix("W/")
        for tag in request.headers.get("if-none-match", "").split(",")
    }
    if etag in wanted or weight.sha256 in wanted or "*" in wanted:  # quoted, as sent, or bare
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(weight.size)
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        services.weights.open_reader(weight.sha256),
        media_type="application/octet-stream",
        headers=headers,
    )


def content_disposition(filename: str) -> str:
    """An attachment header that keeps the file's name: ``filename*`` (RFC 6266/8187, the
    name in UTF-8) for clients that read it, and an ASCII ``filename`` for those that do
    not (``curl -OJ`` among them). Both keep the last path part only, without control
    characters, quotes or leading dots, so no client saves outside its folder (or a hidden
    file) or misparses the header."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if char == '"' or not char.isprintable() else char for char in base)
    name = name.strip(" .")
    name = name or "weight"
    fallback = "".join(char if 32 <= ord(char) < 127 else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def graphiql_page(stock: str) -> str:
    """Strawberry's GraphiQL page opened on ``GRAPHIQL_STARTER``, or on the query a link
    gives (``/graphql?query=…``, as a GET request to the API takes it; ``q`` is the
    page's own). A page of another Strawberry version, laid out otherwise, is left as it
    is (the browser tests say so)."""
    start = stock.find(STOCK_EXAMPLE)
    end = stock.find("`;", start)
    if start < 0 or end < 0 or STOCK_QUERY_PARAMETER not in stock:
        logger.warning("GraphiQL's page is not the one expected: served as Strawberry wrote it")
        return stock
    page = f"{stock[:start]}const EXAMPLE_QUERY = {json.dumps(GRAPHIQL_STARTER)};{stock[end + 2 :]}"
    page = page.replace(STOCK_QUERY_PARAMETER, "parameters.q || parameters.query || EXAMPLE_QUERY")
    # A query typed into the address bar may come form-encoded: a space as "+".
    return page.replace(
        STOCK_DECODE, 'decodeURIComponent(entry.slice(eq + 1).replace(/\\+/g, " "))'
    )


def opens_graphiql(method: str, query: str | None, accept: str) -> bool:
    """Whether a request to /graphql is a browser opening GraphiQL: a GET that accepts
    HTML, with a query only when it asks for HTML by name (a browser's link to a query
    opens it in the editor; ``curl '/graphql?query=…'`` gets the answer)."""
    if method != "GET":
        return False
    if query is None:
        return "text/html" in accept or "*/*" in accept
    return "text/html" in accept


async def landing(request: Request) -> Response:
    """What this server is and where to go: the API, its explorer, the dashboard, health."""
    return JSONResponse(
        {
            "service": "ModelCI Hub",
            "version": __version__,
            "about": "The GraphQL API is at /graphql; open it in a browser for GraphiQL.",
            "links": {
                "graphql": "/graphql",
                "dashboard": "/dashboard",
                "healthz": "/healthz",
                "readyz": "/readyz",
                "metrics": "/metrics",
                "weight": "/models/{id}/weight",
            },
        }
    )


async def dashboard(request: Request) -> Response:
    """Models, their variants, latency and throughput against batch size per device."""
    return FileResponse(STATIC_DIR / "dashboard.html")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await asyncio.wait_for(services_of(request).db.command("ping"), READY_TIMEOUT_S)
    except Exception as error:  # any failure means "not ready"; say which
        reason = not_ready_reason(error)
        logger.warning("database not ready: %s", reason)
        return JSONResponse(
            {"status": "unavailable", "database": "no answer", "reason": reason},
            status_code=503,
        )
    # The cage this machine's workers run uploaded models in (`modelci/cage/runner.py`).
    cage = await asyncio.to_thread(cage_kind)
    read_model = services_of(request).read_model
    # Reads from memory, or (loading, past its budget, its stream lost, off) from the
    # database: ready either way, and saying which.
    memory = read_model.report() if read_model else {"state": "off", "why": "read_model_mb is 0"}
    return JSONResponse({"status": "ready", "database": "ok", "cage": cage, "readModel": memory})


def not_ready_reason(error: Exception) -> str:
    """Why the database did not answer, in words: what the embedded database's supervisor
    knows (it died and is being restarted), else what the client saw."""
    trouble = embedded.database_trouble
    if isinstance(error, TimeoutError):
        seen = f"the database did not answer within {READY_TIMEOUT_S:g} s"
    else:
        # The client's own text ends in its configured timeouts and topology: noise here.
        seen = str(error).split(" (configured timeouts", 1)[0] or type(error).__name__
    return f"{trouble}; {seen}" if trouble else seen
