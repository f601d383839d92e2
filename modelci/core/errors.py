"""Errors a client may see, each with the stable code it carries in ``extensions.code``.

Anything else raised while serving a request is unexpected: it is logged with the
request id and reaches the client as INTERNAL_SERVER_ERROR, with no details.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

# The code of anything unexpected (and of a HubError no subclass names).
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class HubError(Exception):
    """An error the client caused or must handle; its message is safe to show."""

    code: ClassVar[str] = INTERNAL_SERVER_ERROR
    http_status: ClassVar[int] = 500  # when it ends a request before GraphQL runs

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {"code": self.code, **extensions}


class BadUserInput(HubError):
    code = "BAD_USER_INPUT"
    http_status = 400


class NotFound(HubError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(HubError):
    code = "CONFLICT"
    http_status = 409


class Unauthenticated(HubError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(HubError):
    code = "FORBIDDEN"
    http_status = 403


class PayloadTooLarge(HubError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class TooManyRequests(HubError):
    """A quota: too many uploads at once, too many queued jobs; retry later."""

    code = "TOO_MANY_REQUESTS"
    http_status = 429


# Every code a client may meet, with its error class (clients raise these).
ERRORS_BY_CODE: dict[str, type[HubError]] = {
    error.code: error
    for error in (
        BadUserInput,
        NotFound,
        Conflict,
        Unauthenticated,
        Forbidden,
        PayloadTooLarge,
        TooManyRequests,
    )
}


def invalid_input(error: ValidationError, argument: str) -> BadUserInput:
    """A pydantic validation error as BAD_USER_INPUT naming each offending field."""
    problems = []
    fields = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in (argument, *item["loc"]))
        fields.append(path)
        problems.append(f"{path}: {item['msg']}")
    return BadUserInput("invalid input: " + "; ".join(problems), fields=fields)


PydanticModel_co = TypeVar("PydanticModel_co", bound=BaseModel, covariant=True)


class PydanticInput(Protocol[PydanticModel_co]):
    def to_pydantic(self, **kwargs: Any) -> PydanticModel_co: ...


def validated(
    value: PydanticInput[PydanticModel_co], argument: str, **extra: Any
) -> PydanticModel_co:
    """The domain object behind a GraphQL input, or BAD_USER_INPUT naming the fields."""
    try:
        return value.to_pydantic(**extra)
    except ValidationError as error:
        raise invalid_input(error, argument) from None
