"""GraphQL over HTTP and WebSockets: Strawberry's ASGI view, with multipart uploads
streamed into staging, refusals in the API's error shape and the request context
built from the running services."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from modelci.schema.auth import Identity
from modelci.schema.auth import Scope as TokenScope
from modelci.schema.context import HubContext, Loaders
from modelci.schema.errors import BadUserInput, HubError

from .access import identity_from_header
from .http import (
    MULTIPART,
    AnswerResponse,
    encode_answer,
    error_response,
    idle_poll_var,
    media_type,
)
from .services import services_of
from .uploads import graphql_multipart

CDN = "https://unpkg.com/"
LOCAL_ASSETS = "/static/graphiql/"


class HubGraphQL(GraphQL[HubContext, None]):
    def encode_json(self, data: object) -> str:
        """``encode_answer``; text, not bytes: Strawberry sends bytes over a WebSocket
        as binary frames, which GraphQL clients refuse."""
        return encode_answer(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Strawberry's answer; a worker's claim that found no job is marked an idle poll,
        left out of the access log at INFO. Only a JSON request from a caller with the
        worker scope qualifies: anyone else's request is logged whatever it answers."""
        if (
            result.errors is None
            and result.data == {"claimProfilingJob": None}
            and media_type(request.headers) != MULTIPART
            and self.from_a_worker(request)
        ):
            idle_poll_var.set(True)
        return await super().process_result(request, result)

    @staticmethod
    def from_a_worker(request: Request) -> bool:
        if not services_of(request).auth_enabled:
            return True  # loopback only: the local user's own workers
        identity = request.scope.get("state", {}).get("identity")
        return isinstance(identity, Identity) and identity.allows(TokenScope.worker)

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
        async with (
            services.uploads.slot(identity.name if identity else "anonymous"),
            graphql_multipart(request, services.weights.staging) as operations,
        ):
            return await self.execute_operations(request, operations)

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
        return AnswerResponse(await self.process_result(request, result))

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
            devices=services.devices,
            aliases=services.aliases,
            loaders=Loaders.of(services.registry, services.aliases),
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
