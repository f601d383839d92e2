"""GraphQL over HTTP and WebSockets: Strawberry's ASGI view, with multipart uploads
streamed into staging, refusals in the API's error shape and the request context
built from the running services."""

from __future__ import annotations

import asyncio
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
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from modelci.core.domain import READ_AFTER_HEADER, WRITE_TIME_HEADER
from modelci.core.errors import BadUserInput, HubError, TooManyRequests
from modelci.core.identity import Identity
from modelci.core.identity import Scope as TokenScope
from modelci.schema.context import HubContext, Loaders

from .authentication import identity_from_header
from .http import (
    MULTIPART,
    AnswerResponse,
    encode_answer,
    error_response,
    idle_poll_var,
    media_type,
)
from .job_watch import ConnectionLease, OperationSlot
from .read_model import parsed_time, read_after_var, time_text
from .routes import graphiql_page, opens_graphiql
from .services import services_of
from .uploads import graphql_multipart

CDN = "https://unpkg.com/"
LOCAL_ASSETS = "/static/graphiql/"


LEASE = "websocket_lease"  # the connection's ConnectionLease, in the scope's state
# The close code of a connection refused by a cap (the protocol's own codes are 44xx
# from the HTTP statuses; 429: too many).
TOO_MANY_CONNECTIONS = 4429


class ConnectionRefused(Exception):
    """A WebSocket connection past its caller's cap: closed with a code and the reason."""

    def __init__(self, refusal: TooManyRequests) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal

    @property
    def reason(self) -> str:
        # A close frame's reason has room for 123 bytes.
        return self.refusal.message.encode()[:123].decode(errors="ignore")


def lease_of(context: HubContext) -> ConnectionLease | None:
    lease = context.request.scope.get("state", {}).get(LEASE)
    return lease if isinstance(lease, ConnectionLease) else None


def refusal_payload(refusal: HubError) -> dict[str, Any]:
    """A refused operation as a GraphQL error, with its code in ``extensions``."""
    return {"message": refusal.message, "extensions": refusal.extensions}


class OperationSlots:
    """Each running operation's slot under the caps, freed when the operation ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots: dict[str, OperationSlot] = {}

    async def cleanup_operation(self, operation_id: str) -> None:
        """The client completed the operation, or the connection ends: its slot is free
        before the next message is read."""
        slot = self.slots.get(operation_id)
        if slot is not None:
            self.release(operation_id, slot)
        await super().cleanup_operation(operation_id)  # type: ignore[misc]

    def release(self, operation_id: str, slot: OperationSlot) -> None:
        slot.release()
        if self.slots.get(operation_id) is slot:
            del self.slots[operation_id]


class HubTransportWS(OperationSlots, BaseGraphQLTransportWSHandler[HubContext, None]):
    """graphql-transport-ws with the caps of ``WatchLimits``: a connection refused is
    closed with 4429 and why; an operation past a cap is refused with an error message
    (TOO_MANY_REQUESTS), and the connection goes on."""

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except ConnectionRefused as refused:
            await self.websocket.close(code=TOO_MANY_CONNECTIONS, reason=refused.reason)

    async def handle_subscribe(self, message: Any) -> None:
        lease = lease_of(self.context)
        operation_id = message["id"]
        if not self.connection_acknowledged or lease is None or operation_id in self.operations:
            await super().handle_subscribe(message)  # refused by the protocol: it closes
            return
        try:
            slot = lease.start_operation()
        except TooManyRequests as refusal:
            payload = [refusal_payload(refusal)]
            error = {"id": operation_id, "type": "error", "payload": payload}
            await self.websocket.send_json(error)
            return
        await super().handle_subscribe(message)
        operation = self.operations.get(operation_id)
        if operation is None or operation.task is None:
            slot.release()
            return
        self.slots[operation_id] = slot
        operation.task.add_done_callback(lambda _: self.release(operation_id, slot))


class HubGraphQLWS(OperationSlots, BaseGraphQLWSHandler[HubContext, None]):
    """The older graphql-ws protocol, under the same caps as ``HubTransportWS``."""

    async def handle(self) -> None:
        # graphql-transport-ws closes a connection that never sends connection_init;
        # this protocol would keep one open for good, outside the caps (taken at init).
        deadline = asyncio.create_task(self.close_unless_initialised())
        try:
            await super().handle()
        finally:
            deadline.cancel()

    async def close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except ConnectionRefused as refused:
            payload = refusal_payload(refused.refusal)
            await self.send_message({"type": "connection_error", "payload": payload})
            await self.websocket.close(code=TOO_MANY_CONNECTIONS, reason=refused.reason)

    async def handle_start(self, message: Any) -> None:
        lease = lease_of(self.context)
        operation_id = message["id"]
        if operation_id in self.tasks:
            await self.cleanup_operation(operation_id)
        if not self.connection_acknowledged or lease is None:
            await super().handle_start(message)  # refused by the protocol: it closes
            return
        try:
            slot = lease.start_operation()
        except TooManyRequests as refusal:
            payload = refusal_payload(refusal)
            error = {"type": "error", "id": operation_id, "payload": payload}
            await self.websocket.send_json(error)
            return
        await super().handle_start(message)
        task = self.tasks.get(operation_id)
        if task is None:
            slot.release()
            return
        self.slots[operation_id] = slot
        task.add_done_callback(lambda _: self.release(operation_id, slot))


class HubGraphQL(GraphQL[HubContext, None]):
    # The hub's own caps (``WatchLimits``) replace Strawberry's, which refuse with no
    # error code.
    max_subscriptions_per_connection = None
    graphql_transport_ws_handler_class = HubTransportWS
    graphql_ws_handler_class = HubGraphQLWS

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
        if scope["type"] == "websocket":
            try:
                await super().__call__(scope, receive, send)
            finally:  # however the connection ended, it no longer counts against its caller
                lease = scope.get("state", {}).get(LEASE)
                if isinstance(lease, ConnectionLease):
                    lease.close()
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        # Read-your-writes: the caller's latest write (from any server process) is what
        # this request's reads must see; a write made here is answered with its time.
        writes = services_of(request).writes
        written_before = writes.last
        read_after = read_after_var.set(parsed_time(request.headers.get(READ_AFTER_HEADER)))
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
        finally:
            read_after_var.reset(read_after)
        if writes.last is not None and writes.last != written_before:
            response.headers[WRITE_TIME_HEADER] = time_text(writes.last)
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
            registry=services.model_reads,
            jobs=services.jobs,
            devices=services.devices,
            aliases=services.alias_reads,
            model_service=services.model_service,
            job_service=services.job_service,
            events=services.feed,
            webhooks=services.webhook_service,
            loaders=Loaders.of(services.model_reads, services.alias_reads),
            request_id=request.scope.get("state", {}).get("request_id", "-"),
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        query = request.query_params.get("query")
        return opens_graphiql(request.method, query, request.headers.get("accept", ""))

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with its scripts and styles served from here, not from a CDN."""
        return HTMLResponse(graphiql_page(self.graphql_ide_html.replace(CDN, LOCAL_ASSETS)))

    async def on_ws_connect(self, context: HubContext) -> Any:
        """WebSockets carry the token in connection_init: {"Authorization": "Bearer …"}.

        A connection is counted against its caller from here on (``WatchLimits``); one
        past the caller's cap is refused (``ConnectionRefused``)."""
        services = services_of(context.request)
        if services.auth_enabled:
            params = context.connection_params or {}
            header = str(params.get("Authorization") or params.get("authorization") or "")
            context.identity = await identity_from_header(services.tokens, header)
            if context.identity is None:
                raise ConnectionRejectionError({"message": "authentication required"})
            context.credential = header.partition(" ")[2].strip()  # checked on every operation
            caller = f"token {context.identity.name}"
        else:  # loopback only: every local client is one caller
            client = context.request.client
            caller = f"client {client.host if client else 'anonymous'}"
        state = context.request.scope.setdefault("state", {})
        if LEASE not in state:  # a second connection_init is closed by the protocol
            try:
                state[LEASE] = services.watch_limits.connect(caller)
            except TooManyRequests as refusal:
                raise ConnectionRefused(refusal) from None
        return await super().on_ws_connect(context)
