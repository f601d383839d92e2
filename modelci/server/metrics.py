"""Prometheus metrics at /metrics: requests and latencies by operation, jobs by status.

Each app has its own registry (no module-level state), so several apps in one process
(tests) never mix their counts. Under `serve --processes N` each web process writes its
samples to files in a directory shared by the N (Prometheus' multi-process mode, set
up by the CLI through ``PROMETHEUS_MULTIPROC_DIR``), and a scrape answered by any of
them reports the sum of all.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from pymongo.asynchronous.collection import AsyncCollection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelci.core.domain import JobKind, JobStatus

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "modelci_graphql_operations",
            "GraphQL operations by first root field, type and outcome",
            ["operation", "type", "outcome"],
            registry=self.registry,
        )
        self.operation_seconds = Histogram(
            "modelci_graphql_operation_seconds",
            "GraphQL operation latency",
            ["operation", "type"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "modelci_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "modelci_http_request_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            registry=self.registry,
        )
        # Read from the database at each scrape: the process answering it has the latest.
        self.jobs = Gauge(
            "modelci_jobs",
            "Jobs by kind and status",
            ["kind", "status"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.queue_depth = Gauge(
            "modelci_job_queue_depth",
            "Jobs waiting for a worker",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        self.reads = Counter(
            "modelci_reads",
            "Model and alias reads by what answered them: memory (the read model), or the "
            "database because the read model was loading, resuming, rebuilding, off, "
            "lagging (a write the caller must see not yet applied) or not_held (past its "
            "memory budget)",
            ["answered_by"],
            registry=self.registry,
        )
        # Each web process's own copy; across processes the least complete one shows.
        self.read_model_models = Gauge(
            "modelci_read_model_models",
            "Models held in memory by the read model",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.read_model_bytes = Gauge(
            "modelci_read_model_bytes",
            "Memory the read model takes, as it counts it against its budget",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.read_model_budget_bytes = Gauge(
            "modelci_read_model_budget_bytes",
            "The read model's memory budget (MODELCI_READ_MODEL_MB)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.read_model_complete = Gauge(
            "modelci_read_model_complete",
            "1 while the read model serves and holds every model; 0 while it loads, has "
            "lost its stream, is off, or is past its budget (older models from the database)",
            registry=self.registry,
            multiprocess_mode="livemin",
        )

    def refresh_read_model(self, report: dict[str, Any] | None) -> None:
        if report is None:
            self.read_model_complete.set(0)
            return
        self.read_model_models.set(report["models"])
        self.read_model_bytes.set(report["bytes"])
        self.read_model_budget_bytes.set(report["budgetBytes"])
        self.read_model_complete.set(int(report["state"] == "serving" and report["complete"]))

    def observe(self, operation: str, kind: str, seconds: float, failed: bool) -> None:
        outcome = "error" if failed else "ok"
        self.operations.labels(operation, kind, outcome).inc()
        self.operation_seconds.labels(operation, kind).observe(seconds)

    async def refresh_jobs(self, jobs: AsyncCollection[dict[str, Any]]) -> None:
        counts = {
            (row["_id"]["kind"], row["_id"]["status"]): row["count"]
            async for row in await jobs.aggregate(
                [{"$group": {"_id": {"kind": "$kind", "status": "$status"}, "count": {"$sum": 1}}}]
            )
        }
        for kind in JobKind:
            for status in JobStatus:
                self.jobs.labels(kind.value, status.value).set(
                    counts.get((kind.value, status.value), 0)
                )
        self.queue_depth.set(
            sum(count for (_, status), count in counts.items() if status == JobStatus.QUEUED.value)
        )

    def exposition(self) -> Response:
        registry = self.registry
        if MULTIPROCESS_DIR_ENV in os.environ:  # every web process's samples, summed
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """Counts and times every HTTP request, labelled by its route template (never raw paths)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_template(scope)
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.http_seconds.labels(route, scope["method"]).observe(
                time.perf_counter() - started
            )


def route_template(scope: Scope) -> str:
    for route in scope["app"].routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(route.path)
    return "unmatched"


async def metrics_endpoint(request: Request) -> Response:
    services = request.app.state.services
    await services.metrics.refresh_jobs(services.jobs.jobs)
    read_model = services.read_model
    services.metrics.refresh_read_model(read_model.report() if read_model else None)
    response: Response = services.metrics.exposition()
    return response
