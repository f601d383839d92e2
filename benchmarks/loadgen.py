"""A light HTTP/1.1 load generator: one keep-alive connection per simulated client.

httpx spends about 2 ms of CPU per request on the 2-core development machine, more
than our server spends answering it, so at 16 concurrent clients the load generator
took the cores the servers were being measured on. This client writes each request
with one `write` and parses the response with httptools (the parser uvicorn uses),
nothing else, so what a benchmark measures is the servers.

    async with await Connection.open("http://127.0.0.1:8000") as connection:
        response = await connection.request("POST", "/graphql", json_body={...})
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import httptools


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise RuntimeError(f"HTTP {self.status}: {self.body[:500]!r}")


class _ResponseProtocol(asyncio.Protocol):
    """Feeds the socket to httptools and completes one future per response."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.waiter is not None
        self.waiter.set_result(Response(self.parser.get_status_code(), bytes(self.body)))


class Connection:
    """One keep-alive connection; requests on it go one after another."""

    def __init__(self, host: str, protocol: _ResponseProtocol) -> None:
        self.host = host
        self.protocol = protocol

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        url = urlsplit(base_url)
        assert url.hostname is not None and url.port is not None
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_ResponseProtocol, url.hostname, url.port)
        return cls(url.netloc, protocol)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = {"Host": self.host, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        if body or method in ("POST", "PUT"):
            all_headers["Content-Length"] = str(len(body))
        target = f"{path}?{urlencode(params)}" if params else path
        head = "".join(f"{name}: {value}\r\n" for name, value in all_headers.items())
        waiter = asyncio.get_running_loop().create_future()
        self.protocol.waiter = waiter
        assert self.protocol.transport is not None
        self.protocol.transport.write(f"{method} {target} HTTP/1.1\r\n{head}\r\n".encode() + body)
        return await waiter

    def close(self) -> None:
        if self.protocol.transport is not None:
            self.protocol.transport.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type: text fields, then files."""
    boundary = "loadgen-boundary-7d1f3c"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, content) in files.items():
        parts.append(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
