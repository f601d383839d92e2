"""Who may do what: token scopes, the caller's identity, and the check on every operation.

Scopes: ``read`` (queries, subscriptions, weight downloads), ``write`` (read, plus the
mutations on models and jobs), ``worker`` (write, plus claiming and reporting jobs),
``admin`` (everything, token management included). The check runs before the
operation is validated, so a caller without the scope learns nothing of the schema
from validation messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from pydantic import BaseModel, Field
from strawberry.extensions import SchemaExtension

from .errors import Forbidden, HubError, Unauthenticated


class Scope(Enum):
    read = "read"
    write = "write"
    worker = "worker"
    admin = "admin"


IMPLIED = {
    Scope.read: {Scope.read},
    Scope.write: {Scope.read, Scope.write},
    Scope.worker: {Scope.read, Scope.write, Scope.worker},
    Scope.admin: set(Scope),
}


class ApiToken(BaseModel):
    """A token's record; the secret itself is shown once and stored only as a salted hash."""

    id: str
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope]
    create_time: datetime
    last_used: datetime | None = None
    revoked: bool = False


# Root fields that need more than their operation type's default scope.
FIELD_SCOPES = {
    "claimProfilingJob": Scope.worker,
    "heartbeatProfilingJob": Scope.worker,
    "finishProfilingJob": Scope.worker,
    "releaseProfilingJob": Scope.worker,
    "registerConvertedModel": Scope.worker,
    "apiTokens": Scope.admin,
    "createApiToken": Scope.admin,
    "revokeApiToken": Scope.admin,
}


@dataclass(frozen=True)
class Identity:
    name: str
    scopes: frozenset[Scope]

    @classmethod
    def with_scopes(cls, name: str, scopes: list[Scope]) -> Identity:
        granted: set[Scope] = set()
        for scope in scopes:
            granted |= IMPLIED[scope]
        return cls(name, frozenset(granted))

    @classmethod
    def everyone(cls) -> Identity:
        """The caller when auth is off (local use on loopback only)."""
        return cls.with_scopes("anonymous", [Scope.admin])

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


def required_scopes(document: DocumentNode, operation_name: str | None) -> set[Scope]:
    """The scopes the operation that will run needs."""
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    chosen = [op for op in operations if operation_name is None or _name(op) == operation_name]
    if len(chosen) != 1:
        return {Scope.read}  # graphql-core refuses the request anyway
    operation = chosen[0]
    default = Scope.write if operation.operation is OperationType.MUTATION else Scope.read
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return {
        FIELD_SCOPES.get(name, default) for name in root_fields(operation.selection_set, fragments)
    } or {default}


def _name(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def root_fields(
    selections: SelectionSetNode,
    fragments: dict[str, SelectionSetNode],
    seen: set[str] | None = None,
) -> Iterator[str]:
    """The names of the root fields, each fragment visited once: linear in the document
    however its spreads nest (visiting a fragment once per spread was exponential)."""
    seen = set() if seen is None else seen
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                seen.add(name)
                yield from root_fields(fragments[name], fragments, seen)


class Authorization(SchemaExtension):
    """Refuses an operation whose root fields need a scope the caller lacks."""

    async def on_validate(self) -> AsyncIterator[None]:
        document = self.execution_context.graphql_document
        if document is not None:
            context = self.execution_context.context
            refusal = await self.refusal(context, document)
            if refusal is not None and getattr(context, "credential", None) is None:
                raise refusal  # over HTTP: answered with its status by the view
            if refusal is not None:
                # Over a WebSocket: an `error` message for this operation.
                error = GraphQLError(refusal.message, original_error=refusal)
                self.execution_context.pre_execution_errors = [error]
        yield

    async def refusal(self, context: Any, document: DocumentNode) -> HubError | None:
        identity: Identity | None = getattr(context, "identity", None)
        credential: str | None = getattr(context, "credential", None)
        if credential is not None:  # a WebSocket's token, perhaps revoked since it connected
            identity = context.identity = await context.tokens.verify(credential)
            if identity is None:
                return Unauthenticated("the token of this connection is no longer valid")
        if identity is None:
            return Unauthenticated("authentication required: send Authorization: Bearer <token>")
        needed = required_scopes(document, self.execution_context.operation_name)
        missing = sorted(scope.value for scope in needed if not identity.allows(scope))
        if missing:
            return Forbidden(f"this token lacks the scope {', '.join(missing)}")
        return None
