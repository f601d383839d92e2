"""One error convention for the whole API: every error carries ``extensions.code``.

Errors the client caused keep their message; anything unexpected is logged with the
request id and reaches the client as INTERNAL_SERVER_ERROR without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from .errors import INTERNAL_SERVER_ERROR, BadUserInput, HubError

logger = logging.getLogger("modelci.errors")


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [self.coded(error) for error in result.errors]

    def request_id(self) -> str | None:
        return getattr(self.execution_context.context, "request_id", None)

    def coded(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, HubError):
            return self.rebuilt(error, original.message, original.extensions)
        if original is None or error.path is None:
            # Parse, validation and variable coercion errors: graphql-core's messages
            # name the offending argument or field and reveal nothing internal.
            extensions = {"code": BadUserInput.code, **(error.extensions or {})}
            return self.rebuilt(error, error.message, extensions)
        request_id = self.request_id()
        logger.error(
            "unexpected error in %s (request %s)",
            ".".join(str(part) for part in error.path),
            request_id,
            exc_info=original,
        )
        return self.rebuilt(
            error,
            f"Internal server error (request id {request_id})",
            {"code": INTERNAL_SERVER_ERROR, "requestId": request_id},
        )

    @staticmethod
    def rebuilt(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions,
        )
