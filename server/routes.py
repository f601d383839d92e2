"""The plain HTTP routes beside GraphQL: weight downloads, the landing page, the
dashboard and the health checks."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from modelci import __version__
from modelci.profiling.cage import cage_kind
from modelci.schema.auth import Scope
from modelci.schema.errors import Forbidden, HubError

from . import embedded
from .http import error_response
from .services import services_of

logger = logging.getLogger("modelci.server")

READY_TIMEOUT_S = 2.0
STATIC_DIR = Path(__file__).parent / "static"


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
    # The cage this machine's workers run uploaded models in (`profiling/cage.py`).
    cage = await asyncio.to_thread(cage_kind)
    return JSONResponse({"status": "ready", "database": "ok", "cage": cage})


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
