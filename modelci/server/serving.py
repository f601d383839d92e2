"""Running the server as a service: uvicorn in one or several processes, stopped in order.

Supervisors stop services with a signal: systemd and Docker send SIGTERM, a terminal
SIGINT, a closed session SIGHUP. Each one stops `modelci serve` the same way, in
order: the server stops taking connections and finishes (or, past a bound, aborts)
the requests in flight, the profiling workers hand their jobs back, the embedded
database stops cleanly, and the process exits 0.

Uvicorn alone does not do that: after its graceful shutdown it raises the signal it
caught again, so the process died by SIGTERM before the embedded database could be
stopped (and the database, stopped with its parent, was then SIGKILLed); SIGHUP
killed the process outright; and with several processes SIGHUP restarted them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
from collections.abc import Generator, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from .http import configure_logging
from .settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

logger = logging.getLogger("modelci.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Requests still running this long after a stop was asked for are cut off.
GRACEFUL_SHUTDOWN_S = 10
# Uvicorn's exit code when the app could not start (a port in use, say).
STARTUP_FAILURE = 3


class HubHttpProtocol(HttpToolsProtocol):
    """Uvicorn's HTTP protocol with a deadline on each request's head.

    Uvicorn bounds idle keep-alive connections but not a client that sends its
    headers a byte at a time: 500 such connections held 500 descriptors for as long as
    they liked. Bodies have their own idle bound (``http.RequestLimitsMiddleware``).
    """

    # Seconds from a connection's start, or its previous response, to its request's
    # headers (``Settings.request_head_timeout_s``, set where the server is built).
    head_timeout_s = 10.0
    head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.await_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_deadline is None:
            self.await_head()

    def on_headers_complete(self) -> None:
        self.head_arrived()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.head_arrived()  # uvicorn's keep-alive timeout takes over

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_arrived()
        super().connection_lost(exc)

    def await_head(self) -> None:
        self.head_deadline = self.loop.call_later(self.head_timeout_s, self.head_too_slow)

    def head_arrived(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def head_too_slow(self) -> None:
        self.head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class StopRequested(Exception):
    """A stop signal arrived while `serve` was starting or waiting; it stops in order."""


class HubServer(uvicorn.Server):
    """Uvicorn's server, stopped by SIGTERM, SIGINT or SIGHUP, and not killed afterwards."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with stop_signals_handled_by(self.handle_exit):
            yield
        # Uvicorn raises the caught signal again here, which killed the process before
        # `serve` could stop the embedded database; this server returns instead.


class HubMultiprocess(Multiprocess):
    """Uvicorn's process supervisor, with SIGHUP stopping the service as SIGTERM does."""

    def handle_hup(self) -> None:
        logger.info("Received SIGHUP, exiting.")
        self.should_exit.set()


def raise_stop(sig: int, frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(sig).name)


@contextlib.contextmanager
def stop_signals_handled_by(handler: Any) -> Iterator[None]:
    """Every stop signal handled by ``handler`` for the block, then as before."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)


def stop_signals_raise() -> contextlib.AbstractContextManager[None]:
    """Outside uvicorn's own handling, a stop signal raises ``StopRequested``."""
    return stop_signals_handled_by(raise_stop)


def stop_signals_ignored() -> contextlib.AbstractContextManager[None]:
    """While the service winds down: a second signal must not cut the database's stop short."""
    return stop_signals_handled_by(signal.SIG_IGN)


def server_config(settings: Settings, app: Any, **options: Any) -> uvicorn.Config:
    """Uvicorn's configuration for the hub: its address, bounded stops and request heads."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        http=HubHttpProtocol,
        **options,
    )


PROCESS_SETTINGS_ENV = "MODELCI_PROCESS_SETTINGS"  # serve -> its web processes, internal
PROCESS_DATABASE_ENV = "MODELCI_PROCESS_DATABASE_URL"


def create_process_app() -> Starlette:
    """The app in one of the web processes `serve --processes N` starts (uvicorn factory)."""
    from .app import create_app

    settings = Settings(**json.loads(os.environ[PROCESS_SETTINGS_ENV]))
    configure_logging(settings.log_level, settings.log_format)
    HubHttpProtocol.head_timeout_s = settings.request_head_timeout_s
    return create_app(settings, os.environ[PROCESS_DATABASE_ENV], maintenance=False)


def run_server(settings: Settings, mongodb_url: str) -> bool:
    """Serve until a stop signal; False when the app could not start."""
    # Imported here, after logging is configured.
    from .app import create_app
    from .metrics import MULTIPROCESS_DIR_ENV
    from .workers import hand_back_jobs, prepare_processes

    HubHttpProtocol.head_timeout_s = settings.request_head_timeout_s
    if settings.processes == 1:
        config = server_config(settings, create_app(settings, mongodb_url=mongodb_url))
        server = HubServer(config)
        server.run()
        return server.started
    # Several processes: start-up maintenance and profiling workers once, here; each web
    # process builds its app from the settings handed down in its environment.
    workers = asyncio.run(prepare_processes(settings, mongodb_url))
    os.environ[PROCESS_SETTINGS_ENV] = settings.model_dump_json()
    os.environ[PROCESS_DATABASE_ENV] = mongodb_url
    try:
        # The processes' metrics meet in files here, so any of them answers a scrape
        # with the totals; a fresh directory each run, removed at exit.
        with tempfile.TemporaryDirectory(prefix="modelci-metrics-") as metrics_dir:
            os.environ[MULTIPROCESS_DIR_ENV] = metrics_dir
            config = server_config(
                settings,
                "modelci.server.serving:create_process_app",
                factory=True,
                workers=settings.processes,
            )
            HubMultiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        with stop_signals_ignored():
            stopped = workers.stop()
            asyncio.run(hand_back_jobs(settings, mongodb_url, stopped))
    return True
