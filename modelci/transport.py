"""GraphQL over HTTP for the generated operations (``modelci.graphql_client``).

Small on purpose: a request is one ``json.dumps``, one write on a kept-alive
``http.client`` connection and one ``orjson.loads``; httpx spends more CPU per request
than the hub spends answering a ``model(id)`` query. Connections are pooled (one per
thread at a time), so a worker's heartbeat thread and its main thread share a client.
Uploads (the ``Upload`` scalar) go as GraphQL multipart requests streamed from disk in
chunks, with a progress callback and the ``Apollo-Require-Preflight`` header the hub
asks of every multipart request. Errors come back as the hub's typed errors
(``modelci.core.errors``, by ``extensions.code``); a hub that cannot be reached is a
``HubUnreachable``, an ``httpx.TransportError``, as it was when the client used httpx.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import BaseModel

from .core.domain import READ_AFTER_HEADER, WRITE_TIME_HEADER, write_time_parts
from .core.errors import ERRORS_BY_CODE, INTERNAL_SERVER_ERROR, HubError

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)
CHUNK_SIZE = 1024 * 1024
# A connection the server closed while it sat idle fails on its next use: one retry on a
# fresh connection, for requests whose body can be sent again.
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class OneWrite:
    """An http.client connection that sends a request's head and a bytes body in one
    write, with Nagle's algorithm off: two small writes let delayed ACKs hold the second
    (Python 3.11's http.client writes them apart)."""

    sock: socket.socket | None
    _buffer: list[bytes]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        assert self.sock is not None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes):
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        self._buffer.extend((b"", b""))
        head = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(head + message_body)  # type: ignore[attr-defined]


class Connection(OneWrite, http.client.HTTPConnection):
    pass


class SecureConnection(OneWrite, http.client.HTTPSConnection):
    pass


class InternalServerError(HubError):
    code = INTERNAL_SERVER_ERROR


class HubUnreachable(httpx.TransportError):
    """No answer from the hub: refused, reset, timed out, or not HTTP."""


class CountingReader(io.RawIOBase):
    """A readable file that knows how much of it has been read (``size_of``)."""

    def __init__(self, file: IO[bytes], total: int) -> None:
        super().__init__()
        self.file, self.total, self.done = file, total, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.file.read(size)
        self.done += len(chunk)
        return chunk


def size_of(file: Any) -> int:
    """Bytes left to read in a file object (``total`` of a CountingReader)."""
    if isinstance(file, CountingReader):
        return file.total - file.done
    try:
        return os.fstat(file.fileno()).st_size - file.tell()
    except (AttributeError, OSError, io.UnsupportedOperation):
        position = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(position)
        return int(end - position)


def json_ready(value: Any) -> Any:
    """Variables as JSON values: pydantic inputs by their GraphQL (alias) names."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, exclude_unset=True, mode="json")
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def is_unset(value: Any) -> bool:
    # The generated package's UNSET (an argument not given: left out of the variables).
    return type(value).__name__ == "UnsetType"


def is_upload(value: Any) -> bool:
    # The generated package's Upload class; recognised by shape, as this module is
    # imported by that package.
    return hasattr(value, "content") and hasattr(value, "content_type")


def raise_for(body: Any, status: int) -> None:
    """The hub's typed error for a response that carries one."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        if status >= 400 or not isinstance(body, dict) or "data" not in body:
            raise InternalServerError(f"HTTP {status}: unexpected answer {str(body)[:200]}")
        return
    error = errors[0]
    extensions = dict(error.get("extensions") or {})
    code = extensions.pop("code", INTERNAL_SERVER_ERROR)
    raise ERRORS_BY_CODE.get(code, InternalServerError)(error.get("message", code), **extensions)


class Transport:
    """A hub at ``url``; ``token`` for hubs with authentication on.

    Every request carries the latest write time a response gave this transport
    (``write_time``), so that whichever server process of the hub answers, it answers
    with every write this client made applied.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a hub URL: {url!r} (e.g. http://127.0.0.1:8000)")
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.idle: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.write_time: str | None = None

    def saw_write(self, time: str | None) -> None:
        """Keep ``time`` if it is later than the write time kept (from a response, or
        another client's ``write_time``)."""
        with self.lock:
            if (write_time_parts(time) or (0, 0)) > (write_time_parts(self.write_time) or (0, 0)):
                self.write_time = time

    # Connections

    def connect(self) -> http.client.HTTPConnection:
        kind = SecureConnection if self.https else Connection
        return kind(self.host, self.port, timeout=self.timeout)

    def checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        """(a connection, whether it was used before)."""
        with self.lock:
            while self.idle:
                connection = self.idle.pop()
                sock = connection.sock
                # Readable while idle: the server closed it (or sent something unasked).
                if sock is not None and not select.select([sock], [], [], 0)[0]:
                    return connection, True
                connection.close()
        return self.connect(), False

    def checkin(self, connection: http.client.HTTPConnection) -> None:
        with self.lock:
            self.idle.append(connection)

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one request on a kept-alive connection."""
        with self.response(method, path, body, headers) as (response, _):
            return response.status, response.read()

    def response(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ResponseContext:
        return ResponseContext(self, method, self.prefix + path, body, headers or self.headers)

    # GraphQL (what the generated operations call)

    def execute(
        self,
        query: str,
        operation_name: str | None = None,
        variables: dict[str, Any] | None = None,
        progress: Progress | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run one operation; the response body, parsed."""
        variables = {
            key: json_ready(value)
            for key, value in (variables or {}).items()
            if not is_unset(value)
        }
        uploads = {key: value for key, value in variables.items() if is_upload(value)}
        if uploads:
            return self.execute_multipart(query, operation_name, variables, uploads, progress)
        payload = {"query": query, "operationName": operation_name, "variables": variables}
        status, raw = self.request("POST", "/graphql", json.dumps(payload).encode())
        try:
            return status, orjson.loads(raw)
        except ValueError:
            raise InternalServerError(f"HTTP {status}: {raw[:200]!r}") from None

    def execute_multipart(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any],
        uploads: dict[str, Any],
        progress: Progress | None,
    ) -> Any:
        """The GraphQL multipart request spec, streamed: operations, map, then each file
        in CHUNK_SIZE pieces with a Content-Length computed beforehand."""
        names = list(uploads)
        operations = {
            "query": query,
            "operationName": operation_name,
            "variables": {
                key: None if key in uploads else value for key, value in variables.items()
            },
        }
        file_map = {str(index): [f"variables.{name}"] for index, name in enumerate(names)}
        boundary = uuid.uuid4().hex
        head = bytearray()
        for field, value in (("operations", operations), ("map", file_map)):
            head += (
                f'--{boundary}\r\ncontent-disposition: form-data; name="{field}"\r\n\r\n'
                f"{json.dumps(value)}\r\n"
            ).encode()
        parts: list[tuple[bytes, Any, int]] = []
        for index, name in enumerate(names):
            upload = uploads[name]
            filename = str(upload.filename).replace('"', "%22").replace("\r", "").replace("\n", "")
            part_head = (
                f'--{boundary}\r\ncontent-disposition: form-data; name="{index}"; '
                f'filename="{filename}"\r\ncontent-type: {upload.content_type}\r\n\r\n'
            ).encode()
            parts.append((part_head, upload.content, size_of(upload.content)))
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head) + sum(len(h) + size for h, _, size in parts) + 2 * (len(parts) - 1)
        length += len(tail)
        total = sum(size for _, _, size in parts)

        def body() -> Iterator[bytes]:
            done = 0
            yield bytes(head)
            for index, (part_head, content, _) in enumerate(parts):
                if index:
                    yield b"\r\n"
                yield part_head
                while chunk := content.read(CHUNK_SIZE):
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
                    yield chunk
            yield tail

        headers = {
            **self.headers,
            "content-type": f"multipart/form-data; boundary={boundary}",
            "content-length": str(length),
            # The hub refuses multipart requests without a non-simple header (CSRF).
            "apollo-require-preflight": "true",
        }
        status, raw = self.request("POST", "/graphql", body(), headers)
        try:
            return status, orjson.loads(raw)
        except ValueError:
            raise InternalServerError(f"HTTP {status}: {raw[:200]!r}") from None

    def get_data(self, response: Any) -> dict[str, Any]:
        status, body = response
        raise_for(body, status)
        data: dict[str, Any] = body["data"]
        return data


class ResponseContext:
    """A response being read on a pooled connection; the connection goes back to the
    pool once the body has been read to its end, and is closed otherwise."""

    def __init__(
        self,
        transport: Transport,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None,
        headers: dict[str, str],
    ) -> None:
        self.transport, self.method, self.path = transport, method, path
        self.body, self.headers = body, headers
        self.connection: http.client.HTTPConnection | None = None

    def __enter__(self) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        transport = self.transport
        replayable = not isinstance(self.body, Iterator)
        try:
            connection, reused = transport.checkout()
            try:
                response = self.send(connection)
            except STALE_CONNECTION:
                connection.close()
                if not (reused and replayable):
                    raise
                connection = transport.connect()
                response = self.send(connection)
        except (OSError, http.client.HTTPException) as error:
            raise HubUnreachable(f"cannot reach the hub at {transport.url}: {error}") from None
        self.connection, self.response = connection, response
        return response, connection

    def send(self, connection: http.client.HTTPConnection) -> http.client.HTTPResponse:
        self.connection = connection
        headers, written = self.headers, self.transport.write_time
        if written is not None:
            headers = {**headers, READ_AFTER_HEADER: written}
        connection.request(self.method, self.path, body=self.body, headers=headers)
        response = connection.getresponse()
        self.transport.saw_write(response.getheader(WRITE_TIME_HEADER))
        return response

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        connection = self.connection
        if connection is None:
            return
        if kind is None and self.response.isclosed() and not self.response.will_close:
            self.transport.checkin(connection)
        else:
            connection.close()
