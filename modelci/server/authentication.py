"""Who is calling: bearer tokens checked before a request reaches the app, and, with
authentication off, only loopback host names let in."""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from modelci.core.errors import BadUserInput, HubError, Unauthenticated
from modelci.core.identity import Identity

from .http import error_response
from .services import Services
from .token_store import TokenStore


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
                refusal: HubError = BadUserInput(
                    "with authentication off, only loopback host names"
                )
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
