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
import re

from graphql import GraphQLEnumType, GraphQLError, GraphQLSchema

from modelci.core.errors import INTERNAL_SERVER_ERROR, BadUserInput, HubError

logger = logging.getLogger("modelci.errors")

# graphql-core's words for a value outside an enum, in a variable or a literal; its "Did
# you mean …?" (only for a near miss) stays at the end.
ENUM_MISS = re.compile(
    r"(?P<head>.*?(?:Value '.*' does not exist in '(?P<value_of>\w+)' enum"
    r"|Enum '(?P<enum>\w+)' cannot represent non-\w+ value: .*?))"
    r"\.(?P<tail>( Did you mean .*)?)",
    re.DOTALL,
)
MAX_ENUM_MESSAGE = 4096  # past this (a huge value quoted back), the message is left as is


def assign_codes(errors: list[GraphQLError], request_id: str | None, schema: GraphQLSchema) -> None:
    for error in errors:
        original = error.original_error
        if isinstance(original, HubError):
            error.message = original.message
            error.extensions = dict(original.extensions)
        elif original is None or error.path is None:
            # Parse, validation and variable coercion errors: graphql-core's messages
            # name the offending argument or field and reveal nothing internal.
            error.extensions = {"code": BadUserInput.code, **(error.extensions or {})}
            error.message = with_valid_values(error.message, schema)
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


def with_valid_values(message: str, schema: GraphQLSchema) -> str:
    """An enum error with the enum's values listed (from ``schema``, the one that refused
    the value), so the caller need not look them up."""
    if len(message) > MAX_ENUM_MESSAGE or "num" not in message:  # nothing to scan for
        return message
    match = ENUM_MISS.fullmatch(message)
    if match is None:
        return message
    enum = schema.get_type(match["value_of"] or match["enum"])
    if not isinstance(enum, GraphQLEnumType):
        return message
    return f"{match['head']}; valid values: {', '.join(enum.values)}.{match['tail']}"
