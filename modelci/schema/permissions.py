"""The check on every operation: each root field declares the scope it needs where it is
defined (``needs``; the scopes are ``modelci.core.identity``'s); the check reads those
declarations back from the built schema and runs before the operation is validated, so
a caller without the scope learns nothing of the schema from validation messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter

from modelci.core.errors import Forbidden, HubError, Unauthenticated
from modelci.core.identity import Identity, Scope

SCOPE = "modelci.scope"  # the key of a root field's declared scope in its metadata


def needs(scope: Scope) -> dict[str, Scope]:
    """The metadata that declares the scope a root field needs, where the field is:
    ``@strawberry.mutation(description=..., metadata=needs(Scope.worker))``. It is read
    back from the built schema (``root_scopes``), so a renamed field keeps its scope."""
    return {SCOPE: scope}


# What a root field the schema does not have needs (validation refuses it afterwards):
# a caller without even this learns nothing from the validation message.
UNKNOWN_FIELD_SCOPE = {
    OperationType.QUERY: Scope.read,
    OperationType.MUTATION: Scope.write,
    OperationType.SUBSCRIPTION: Scope.read,
}


class UndeclaredScope(Exception):
    """A root field declares no scope: the schema is not served with a field unguarded."""


@lru_cache(maxsize=8)
def root_scopes(schema: GraphQLSchema) -> dict[OperationType, dict[str, Scope]]:
    """The scope each root field declares (``needs``), by operation type and GraphQL
    name; UndeclaredScope names a root field that declares none."""
    roots = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }
    scopes: dict[OperationType, dict[str, Scope]] = {operation: {} for operation in roots}
    for operation, root in roots.items():
        if root is None:
            continue
        for name, field in root.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            scope = (getattr(definition, "metadata", None) or {}).get(SCOPE)
            if not isinstance(scope, Scope):
                raise UndeclaredScope(
                    f"{root.name}.{name} declares no scope: give it metadata=needs(Scope.…)"
                )
            scopes[operation][name] = scope
    return scopes


def required_scopes(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> set[Scope]:
    """The scopes the operation that will run needs, in time linear in the document."""
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    chosen = [op for op in operations if operation_name is None or _name(op) == operation_name]
    if len(chosen) != 1:
        return {Scope.read}  # graphql-core refuses the request anyway
    operation = chosen[0]
    declared = root_scopes(schema)[operation.operation]
    unknown = UNKNOWN_FIELD_SCOPE[operation.operation]
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return {
        declared.get(name, unknown) for name in root_fields(operation.selection_set, fragments)
    } or {unknown}


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
        needed = required_scopes(
            self.execution_context.schema._schema, document, self.execution_context.operation_name
        )
        missing = sorted(scope.value for scope in needed if not identity.allows(scope))
        if missing:
            return Forbidden(f"this token lacks the scope {', '.join(missing)}")
        return None
