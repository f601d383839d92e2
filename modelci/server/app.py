"""The Starlette application: GraphQL at /graphql, weight downloads, health checks.

Its rooms: the GraphQL view (``graphql_view.py``), who may call (``authentication.py``), the
plain routes (``routes.py``), the services built at start-up (``services.py``) and the
profiling workers kept beside the server (``workers.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from modelci.schema import schema

from .authentication import AuthMiddleware
from .graphql_view import HubGraphQL
from .http import RequestIdMiddleware, RequestLimitsMiddleware
from .metrics import HttpMetricsMiddleware, Metrics, metrics_endpoint
from .routes import STATIC_DIR, dashboard, download_weight, healthz, landing, readyz
from .services import hub_services
from .settings import Settings
from .weights import GridFSWeightStore
from .workers import WorkerProcesses, keep_workers_alive, release_stopped, start_workers

logger = logging.getLogger("modelci.server")


def create_app(
    settings: Settings, mongodb_url: str | None = None, *, maintenance: bool = True
) -> Starlette:
    """The app; ``mongodb_url`` overrides the settings' (the embedded database's address).

    With ``maintenance`` (one server process) start-up also clears abandoned uploads,
    collects orphaned weights and starts the profiling workers; `serve --processes N`
    does those once, before its processes start (``workers.prepare_processes``).
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
                services.relay.start()
                services.webhooks.start()
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
                await services.webhooks.close()
                await services.relay.close()
                if keeper is not None:
                    keeper.cancel()
                # The web server has stopped taking requests: the workers' own hand-backs
                # may not have reached it, so their jobs still RUNNING are handed back here.
                stopped = await asyncio.to_thread(workers.stop) if workers else []
                await release_stopped(services.jobs, stopped)

    metrics = Metrics()
    # Multipart uploads are on, handled by HubGraphQL.run_multipart (streamed to staging).
    graphql = HubGraphQL(
        schema,
        multipart_uploads_enabled=True,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
    )
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
