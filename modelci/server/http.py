"""HTTP plumbing around the API: request ids, request size limits, CSRF guard, error bodies."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelci.core.domain import printable
from modelci.core.errors import BadUserInput, HubError, PayloadTooLarge

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# Set while answering a request not worth an access-log line at INFO: a worker's claim
# that found no job (each worker lane asks every two seconds).
idle_poll_var: ContextVar[bool] = ContextVar("idle_poll", default=False)

REQUEST_ID_HEADER = "x-request-id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# A browser sends none of these on a "simple" cross-site request, so requiring one
# on multipart requests stops cross-site form posts (the Apollo convention).
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


MULTIPART = "multipart/form-data"


def media_type(headers: Headers) -> str:
    """The Content-Type without its parameters, lower-cased."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


def error_response(
    error: HubError, status_code: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A HubError as an HTTP response with a GraphQL-shaped body (with the error's own
    HTTP status unless another is given)."""
    return AnswerResponse(
        {"errors": [{"message": error.message, "extensions": error.extensions}]},
        status_code=status_code or error.http_status,
        headers=headers,
    )


def encode_answer(data: object) -> str:
    """An answer as JSON text, the one encoder of every GraphQL answer and refusal.

    orjson: a page of 100 full models is 250 KB of JSON, which the standard library
    encodes about ten times slower. What orjson refuses (a message quoting a caller's
    lone surrogate, the JSON escape of U+D800, which is not UTF-8) goes through the
    standard library, which escapes it; Starlette's own encoding of it failed with a
    plain-text 500."""
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"))


class AnswerResponse(JSONResponse):
    """A JSON response encoded by ``encode_answer``."""

    def render(self, content: Any) -> bytes:
        return encode_answer(content).encode()


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request id, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class RequestLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class IdlePollFilter(logging.Filter):
    """Drops the access-log line of an idle poll unless the access log is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not idle_poll_var.get() or logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class RequestIdMiddleware:
    """Give each request an id (the client's ``X-Request-ID`` if sane), for logs and replies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodyTooLarge(Exception):
    pass


class BodyStalled(Exception):
    pass


class RequestLimitsMiddleware:
    """Cap request bodies (multipart uploads and JSON apart) and guard multipart against CSRF.

    A declared Content-Length over the cap is refused before any byte is read; a body
    that turns out larger is cut off as soon as it passes the cap.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_upload_bytes: int,
        max_json_bytes: int,
        body_idle_timeout_s: float = 30.0,
    ) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_json_bytes = max_json_bytes
        # A body that sends nothing this long is cut off: stalled uploads held a
        # connection and a staging file each, for ever.
        self.body_idle_timeout_s = body_idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if media_type(headers) == MULTIPART:
            if not any(name in headers for name in PREFLIGHT_HEADERS):
                refusal = BadUserInput(
                    "multipart requests must carry one of the headers "
                    + ", ".join(PREFLIGHT_HEADERS)
                    + " (CSRF protection)"
                )
                await error_response(refusal)(scope, receive, send)
                return
            limit = self.max_upload_bytes
        else:
            limit = self.max_json_bytes
        too_large = PayloadTooLarge(f"request body larger than {limit} bytes", limit=limit)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(too_large)(scope, receive, send)
            return

        received = 0
        response_started = False

        body_done = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # waiting for a disconnect, say: not the client's body
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_idle_timeout_s)
            except TimeoutError:
                raise BodyStalled from None
            body_done = not message.get("more_body", False)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await error_response(too_large)(scope, receive, send)
        except BodyStalled:
            if not response_started:
                stalled = BadUserInput(
                    f"the request body sent nothing for {self.body_idle_timeout_s:g} s"
                )
                await error_response(stalled, 408, headers={"connection": "close"})(
                    scope, receive, send
                )


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class TextLogFormatter(logging.Formatter):
    """Log lines as text, without control characters: messages quote what uploaded models
    said (a conversion's error, say), and the log is often read on a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestLogFilter())
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json" else TextLogFormatter(LOG_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per worker request
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(known, IdlePollFilter) for known in access.filters):
        access.addFilter(IdlePollFilter())
