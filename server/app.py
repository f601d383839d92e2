"""The Starlette application: GraphQL at /graphql, weight downloads, health checks."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cross_web import HTTPException
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from modelci import __version__
from modelci.profiling.cage import cage_kind
from modelci.schema import schema
from modelci.schema.auth import Identity
from modelci.schema.auth import Scope as AuthScope
from modelci.schema.context import HubContext, Loaders
from modelci.schema.errors import BadUserInput, Forbidden, HubError, Unauthenticated

from .http import (
    MULTIPART,
    RequestIdMiddleware,
    RequestLimitsMiddleware,
    configure_logging,
    error_response,
    media_type,
)
from .inspection import ModelInspector
from .jobs import MongoJobQueue
from .metrics import HttpMetricsMiddleware, Metrics, metrics_endpoint
from .registry import MongoModelRegistry
from .settings import Settings
from .storage import DEVICES, JOBS, MODELS, TOKENS, ensure_indexes, lists_in_time_slices
from .tokens import TokenStore
from .uploads import UploadSlots, parse_graphql_multipart
from .weights import FileWeightStore, GridFSWeightStore, Staging, WeightStore
from .workers import WorkerProcesses

logger = logging.getLogger("modelci.server")

READY_TIMEOUT_S = 2.0
STATIC_DIR = Path(__file__).parent / "static"
CDN = "https://unpkg.com/"
LOCAL_ASSETS = "/static/graphiql/"
LOCAL_WORKER_TOKEN = "serve-worker"
WORKER_CHECK_S = 2.0  # how often serve looks for workers that died


@dataclass
class Services:
    """What the running app holds between requests; built at start-up."""

    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    weights: WeightStore
    registry: MongoModelRegistry
    jobs: MongoJobQueue
    tokens: TokenStore
    auth_enabled: bool
    metrics: Metrics
    uploads: UploadSlots


def services_of(request: Request | WebSocket) -> Services:
    services: Services = request.app.state.services
    return services


class HubGraphQL(GraphQL[HubContext, None]):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As Strawberry's, but a request it cannot take is refused in the API's JSON shape."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if request.method == "POST" and media_type(request.headers) == MULTIPART:
                response = await self.run_multipart(request)
            else:
                response = await self.run(request)
        except HTTPException as error:
            response = error_response(BadUserInput(error.reason))
        except RecursionError:  # JSON nested thousands deep
            response = error_response(BadUserInput("the request nests too deeply"))
        except HubError as error:
            response = error_response(error)
        await response(scope, receive, send)

    async def run_multipart(self, request: Request) -> Response:
        """A multipart request: files streamed into staging, then the operation runs."""
        services = services_of(request)
        identity = request.scope.get("state", {}).get("identity")
        async with services.uploads.slot(identity.name if identity else "anonymous"):
            operations, uploads = await parse_graphql_multipart(request, services.weights.staging)
            try:
                return await self.execute_operations(request, operations)
            finally:
                for upload in uploads:  # whatever no resolver committed
                    upload.staged.path.unlink(missing_ok=True)

    async def execute_operations(self, request: Request, operations: dict[str, Any]) -> Response:
        """Run the multipart request's operation: a query or a mutation, as Strawberry's own
        view does for JSON, with its refusals in the API's error shape."""
        query, variables = operations.get("query"), operations.get("variables")
        operation_name = operations.get("operationName")
        if not isinstance(query, str) or not query.strip():
            raise BadUserInput("`query` must be a non-empty string")
        if variables is not None and not isinstance(variables, dict):
            raise BadUserInput("`variables` must be a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            raise BadUserInput("`operationName` must be a string")
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=await self.get_context(request, Response()),
                operation_name=operation_name,
                allowed_operation_types={OperationType.QUERY, OperationType.MUTATION},
            )
        except InvalidOperationTypeError as error:
            raise BadUserInput(error.as_http_error_reason("POST")) from None
        except CannotGetOperationTypeError as error:
            raise BadUserInput(error.as_http_error_reason()) from None
        return JSONResponse(await self.process_result(request, result))

    async def get_context(self, request: Request | WebSocket, response: Any) -> HubContext:
        services = services_of(request)
        state = request.scope.get("state", {})
        return HubContext(
            identity=state.get("identity") if services.auth_enabled else Identity.everyone(),
            tokens=services.tokens,
            observer=services.metrics,
            request=request,
            response=response,
            registry=services.registry,
            jobs=services.jobs,
            loaders=Loaders.of(services.registry),
            request_id=request.scope.get("state", {}).get("request_id", "-"),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its scripts and styles served from here, not from a CDN."""
        return HTMLResponse(self.graphql_ide_html.replace(CDN, LOCAL_ASSETS))

    async def on_ws_connect(self, context: HubContext) -> Any:
        """WebSockets carry the token in connection_init: {"Authorization": "Bearer …"}."""
        services = services_of(context.request)
        if not services.auth_enabled:
            return await super().on_ws_connect(context)
        params = context.connection_params or {}
        header = str(params.get("Authorization") or params.get("authorization") or "")
        context.identity = await identity_from_header(services.tokens, header)
        if context.identity is None:
            raise ConnectionRejectionError({"message": "authentication required"})
        context.credential = header.partition(" ")[2].strip()  # checked on every operation
        return await super().on_ws_connect(context)


async def identity_from_header(tokens: TokenStore, header: str) -> Identity | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return await tokens.verify(token.strip())


class AuthMiddleware:
    """With auth on, every request but health checks and the GraphiQL page needs a token.

    With auth off (loopback only), a request must also name a loopback host: a web page
    elsewhere could otherwise reach the hub through a DNS name it points at 127.0.0.1
    (DNS rebinding), and change models with no token to stop it.
    """

    PUBLIC = ("/", "/healthz", "/readyz", "/dashboard")
    PUBLIC_PREFIXES = ("/static/",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        if not services.auth_enabled:
            if not names_loopback(Headers(scope=scope).get("host", "")):
                refusal = BadUserInput("with authentication off, only loopback host names")
                if scope["type"] == "websocket":
                    await WebSocket(scope, receive, send).close(code=4400)
                else:
                    await error_response(refusal)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if (
            scope["type"] != "http"
            or scope["path"] in self.PUBLIC
            or scope["path"].startswith(self.PUBLIC_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        identity = await identity_from_header(services.tokens, headers.get("authorization", ""))
        scope.setdefault("state", {})["identity"] = identity
        graphiql_page = (
            scope["method"] == "GET"
            and scope["path"] == "/graphql"
            and not scope.get("query_string")
            and "text/html" in headers.get("accept", "")
        )
        if identity is None and not graphiql_page:
            refusal = Unauthenticated(
                "this token is unknown or revoked: ask an admin for a new one"
                if headers.get("authorization")
                else "authentication required: send Authorization: Bearer <token>"
            )
            await error_response(refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def names_loopback(host: str) -> bool:
    """Whether a Host header (``name[:port]``, ``[v6]:port``) names this machine's loopback."""
    name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.split(":")[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a DNS name, which anyone can point at 127.0.0.1
        return False


async def download_weight(request: Request) -> Response:
    """The weight bytes, streamed, with Content-Length and the sha256 as ETag."""
    services = services_of(request)
    identity = request.scope.get("state", {}).get("identity")
    if services.auth_enabled and not (identity and identity.allows(AuthScope.read)):
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
        logger.warning("database not ready: %s", error)
        return JSONResponse({"status": "unavailable", "database": "no answer"}, status_code=503)
    # The cage this machine's workers run uploaded models in (`profiling/cage.py`).
    cage = await asyncio.to_thread(cage_kind)
    return JSONResponse({"status": "ready", "database": "ok", "cage": cage})


async def start_workers(settings: Settings, tokens: TokenStore) -> WorkerProcesses:
    """The worker processes `serve` runs beside itself (``workers.py``), with a token of
    their own when auth is on."""
    env = dict(os.environ)
    if settings.auth_enabled() and settings.workers:
        await tokens.revoke_quietly(LOCAL_WORKER_TOKEN)
        _, env["MODELCI_TOKEN"] = await tokens.create(LOCAL_WORKER_TOKEN, [AuthScope.worker])
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    workers = WorkerProcesses(
        f"http://{host}:{settings.port}", settings.workers, env, settings.allow_pickle
    )
    workers.start()
    return workers


def stop_workers(workers: WorkerProcesses) -> list[str]:
    return workers.stop()


async def keep_workers_alive(workers: WorkerProcesses, jobs: MongoJobQueue) -> None:
    """A worker that died (killed, out of memory) is started again, its jobs handed back
    first, so profiling never stays down until the next restart."""
    while True:
        await asyncio.sleep(WORKER_CHECK_S)
        for name in workers.dead():
            await jobs.release_workers([name], "its worker died")
            workers.restart(name)


@asynccontextmanager
async def hub_services(
    settings: Settings, url: str, metrics: Metrics, *, maintenance: bool
) -> AsyncIterator[Services]:
    """The services one server process uses, open for the block.

    ``maintenance`` first clears abandoned uploads and removes weight bytes no model
    references: work for one process while no other serves the same data directory.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, **settings.database_client_options()
    )
    inspector: ModelInspector | None = None
    try:
        db = client[settings.database]
        time_sliced = await lists_in_time_slices(db)
        await ensure_indexes(db, time_sliced=time_sliced)
        staging = Staging(settings.staging_dir)
        weights: WeightStore = (
            GridFSWeightStore(db, staging)
            if settings.uses_gridfs()
            else FileWeightStore(settings.weights_dir, staging)
        )
        inspector = ModelInspector(allow_pickle=settings.allow_pickle)
        registry = MongoModelRegistry(db[MODELS], weights, inspector, time_sliced=time_sliced)
        if maintenance:
            await registry.collect_orphans()
        yield Services(
            client=client,
            db=db,
            weights=weights,
            registry=registry,
            jobs=MongoJobQueue(
                db[JOBS],
                db[DEVICES],
                time_sliced=time_sliced,
                max_queued_per_owner=settings.max_queued_jobs_per_token,
            ),
            tokens=TokenStore(db[TOKENS]),
            auth_enabled=settings.auth_enabled(),
            metrics=metrics,
            uploads=UploadSlots(settings.max_concurrent_uploads, settings.max_uploads_per_token),
        )
    finally:
        if inspector is not None:
            inspector.close()
        await client.close()


async def prepare_processes(settings: Settings, url: str) -> WorkerProcesses:
    """What `serve --processes N` does once before its web processes start: the start-up
    maintenance and the profiling workers, which each of N processes must not repeat."""
    async with hub_services(settings, url, Metrics(), maintenance=True) as services:
        return await start_workers(settings, services.tokens)


async def hand_back_jobs(settings: Settings, url: str, workers: list[str]) -> None:
    """After `serve --processes N` stopped its web processes and then its workers: the
    jobs those workers could not hand back themselves (no web process answered)."""
    async with hub_services(settings, url, Metrics(), maintenance=False) as services:
        released = await services.jobs.release_workers(workers, "stopping (the hub shut down)")
    if released:
        logger.info("jobs handed back at shutdown: %s", ", ".join(released))


PROCESS_SETTINGS_ENV = "MODELCI_PROCESS_SETTINGS"  # serve -> its web processes, internal
PROCESS_DATABASE_ENV = "MODELCI_PROCESS_DATABASE_URL"


def create_process_app() -> Starlette:
    """The app in one of the web processes `serve --processes N` starts (uvicorn factory)."""
    from .serving import HubHttpProtocol

    settings = Settings(**json.loads(os.environ[PROCESS_SETTINGS_ENV]))
    configure_logging(settings.log_level, settings.log_format)
    HubHttpProtocol.head_timeout_s = settings.request_head_timeout_s
    return create_app(settings, os.environ[PROCESS_DATABASE_ENV], maintenance=False)


def create_app(
    settings: Settings, mongodb_url: str | None = None, *, maintenance: bool = True
) -> Starlette:
    """The app; ``mongodb_url`` overrides the settings' (the embedded database's address).

    With ``maintenance`` (one server process) start-up also clears abandoned uploads,
    collects orphaned weights and starts the profiling workers; `serve --processes N`
    does those once, before its processes start (``prepare_processes``).
    """
    url = mongodb_url or settings.mongodb_url
    if url is None:
        raise ValueError("create_app needs a MongoDB URL (settings.mongodb_url or mongodb_url)")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        workers: WorkerProcesses | None = None
        keeper: asyncio.Task[None] | None = None
        async with hub_services(settings, url, metrics, maintenance=maintenance) as services:
            try:
                app.state.services = services
                if not settings.auth_enabled():
                    logger.warning(
                        "authentication is OFF: anyone who can reach %s:%d can change models",
                        settings.host,
                        settings.port,
                    )
                if maintenance:
                    workers = await start_workers(settings, services.tokens)
                    keeper = asyncio.create_task(keep_workers_alive(workers, services.jobs))
                logger.info(
                    "ModelCI Hub ready: database %s, weights in %s",
                    settings.database,
                    "GridFS"
                    if isinstance(services.weights, GridFSWeightStore)
                    else settings.weights_dir,
                )
                yield
            finally:
                if keeper is not None:
                    keeper.cancel()
                # The web server has stopped taking requests: the workers' own hand-backs
                # may not have reached it, so their jobs still RUNNING are handed back here.
                stopped = await asyncio.to_thread(stop_workers, workers) if workers else []
                released = await services.jobs.release_workers(
                    stopped, "stopping (the hub shut down)"
                )
                if released:
                    logger.info("jobs handed back at shutdown: %s", ", ".join(released))

    metrics = Metrics()
    # Multipart uploads are on, handled by HubGraphQL.run_multipart (streamed to staging).
    graphql = HubGraphQL(schema, multipart_uploads_enabled=True)
    return Starlette(
        routes=[
            Route("/", landing),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/models/{model_id}/weight", download_weight, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/dashboard", dashboard),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(HttpMetricsMiddleware, metrics=metrics),
            Middleware(AuthMiddleware),
            Middleware(
                RequestLimitsMiddleware,
                max_upload_bytes=settings.max_upload_bytes,
                max_json_bytes=settings.max_json_bytes,
                body_idle_timeout_s=settings.body_idle_timeout_s,
            ),
        ],
        lifespan=lifespan,
    )
