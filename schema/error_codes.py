"""One error convention for the whole API: every error carries ``extensions.code``.

Errors the client caused keep their message; anything unexpected is logged with the
request id and reaches the client as INTERNAL_SERVER_ERROR without internals.

This runs from ``Schema.process_errors``, which Strawberry calls once for every
error list on every path (parse, validation, execution, and failures that escape
extensions), unlike an extension's ``on_operation``, which a parse failure skips.
The errors are rewritten in place because that list is what the client receives.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError

from .errors import INTERNAL_SERVER_ERROR, BadUserInput, HubError

logger = logging.getLogger("modelci.errors")


def assign_codes(errors: list[GraphQLError], request_id: str | None) -> None:
    for error in errors:
        original = error.original_error
        if isinstance(original, HubError):
            error.message = original.message
            error.extensions = dict(original.extensions)
        elif original is None or error.path is None:
            # Parse, validation and variable coercion errors: graphql-core's messages
            # name the offending argument or field and reveal nothing internal.
            error.extensions = {"code": BadUserInput.code, **(error.extensions or {})}
        else:
            logger.error(
                "unexpected error in %s (request %s)",
                ".".join(str(part) for part in error.path),
                request_id,
                exc_info=original,
            )
            error.message = f"Internal server error (request id {request_id})"
            error.extensions = {"code": INTERNAL_SERVER_ERROR, "requestId": request_id}
            error.original_error = None
