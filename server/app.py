"""The Starlette application: GraphQL at /graphql, weight downloads, health checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from modelci.schema import schema
from modelci.schema.context import HubContext, Loaders
from modelci.schema.errors import HubError

from .http import RequestIdMiddleware, RequestLimitsMiddleware, error_response
from .inspection import ModelInspector
from .jobs import MongoJobQueue
from .registry import MongoModelRegistry
from .settings import Settings
from .storage import DEVICES, JOBS, MODELS, ensure_indexes
from .weights import FileWeightStore, GridFSWeightStore, Staging, WeightStore

logger = logging.getLogger("modelci.server")

READY_TIMEOUT_S = 2.0


@dataclass
class Services:
    """What the running app holds between requests; built at start-up."""

    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    weights: WeightStore
    registry: MongoModelRegistry
    jobs: MongoJobQueue


def services_of(request: Request | WebSocket) -> Services:
    services: Services = request.app.state.services
    return services


class HubGraphQL(GraphQL[HubContext, None]):
    async def get_context(self, request: Request | WebSocket, response: Any) -> HubContext:
        services = services_of(request)
        return HubContext(
            request=request,
            response=response,
            registry=services.registry,
            jobs=services.jobs,
            loaders=Loaders.of(services.registry),
            request_id=request.scope.get("state", {}).get("request_id", "-"),
        )


async def download_weight(request: Request) -> Response:
    """The weight bytes, streamed, with Content-Length and the sha256 as ETag."""
    services = services_of(request)
    try:
        model = await services.registry.get(request.path_params["model_id"])
    except HubError as error:
        return error_response(error)
    weight = model.weight
    etag = f'"{weight.sha256}"'
    headers = {
        "ETag": etag,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(weight.filename)}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-cache",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(weight.size)
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/octet-stream")
    return StreamingResponse(
        services.weights.open_reader(weight.sha256),
        media_type="application/octet-stream",
        headers=headers,
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await asyncio.wait_for(services_of(request).db.command("ping"), READY_TIMEOUT_S)
    except Exception as error:  # any failure means "not ready"; say which
        logger.warning("database not ready: %s", error)
        return JSONResponse({"status": "unavailable", "database": "no answer"}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


def create_app(settings: Settings, mongodb_url: str | None = None) -> Starlette:
    """The app; ``mongodb_url`` overrides the settings' (the embedded database's address)."""
    url = mongodb_url or settings.mongodb_url
    if url is None:
        raise ValueError("create_app needs a MongoDB URL (settings.mongodb_url or mongodb_url)")
    use_gridfs = settings.weight_store == "gridfs" or (
        settings.weight_store == "auto" and settings.mongodb_url is not None
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
        inspector: ModelInspector | None = None
        try:
            db = client[settings.database]
            await ensure_indexes(db)
            staging = Staging(settings.staging_dir)
            weights: WeightStore = (
                GridFSWeightStore(db, staging)
                if use_gridfs
                else FileWeightStore(settings.weights_dir, staging)
            )
            inspector = ModelInspector(allow_pickle=settings.allow_pickle)
            registry = MongoModelRegistry(db[MODELS], weights, inspector)
            await registry.collect_orphans()
            jobs = MongoJobQueue(db[JOBS], db[DEVICES])
            app.state.services = Services(
                client=client, db=db, weights=weights, registry=registry, jobs=jobs
            )
            logger.info(
                "ModelCI Hub ready: database %s, weights in %s",
                settings.database,
                "GridFS" if use_gridfs else settings.weights_dir,
            )
            yield
        finally:
            if inspector is not None:
                inspector.close()
            await client.close()

    graphql = HubGraphQL(schema, multipart_uploads_enabled=True)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/models/{model_id}/weight", download_weight, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(
                RequestLimitsMiddleware,
                max_upload_bytes=settings.max_upload_bytes,
                max_json_bytes=settings.max_json_bytes,
            ),
        ],
        lifespan=lifespan,
    )
