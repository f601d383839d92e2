"""The GraphQL schema of ModelCI Hub: the root types composed from each area, and the
schema object with its query limits (``modelci.schema.schema``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from .auth import Authorization
from .error_codes import assign_codes
from .jobs import JobMutations, JobQueries, JobSubscriptions
from .models import ModelMutations, ModelQueries
from .observing import ObserveOperations
from .tokens import TokenMutations, TokenQueries
from .types import LONG_SCALAR, Long

MAX_QUERY_DEPTH = 12
MAX_QUERY_TOKENS = 4000
MAX_ALIASES = 32
# Fields a query may select once its fragments are spread out. Every check that walks
# the query (depth, aliases, graphql-core's own rules) expands fragment spreads, so a
# few hundred bytes of nested spreads would cost them exponential time: the expanded
# size is counted first, in time linear in the text, and a query over it is refused.
MAX_EXPANDED_FIELDS = 10_000
CACHE_SIZE = 512
MAX_CACHED_QUERY_CHARS = 16_384  # longer texts are prepared each time, never kept

# Every operation is validated with graphql-core's rules plus the depth and alias limits.
VALIDATION_RULES = (
    *specified_rules,
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


@strawberry.type
class Query(ModelQueries, JobQueries, TokenQueries):
    pass


@strawberry.type
class Mutation(ModelMutations, JobMutations, TokenMutations):
    pass


@strawberry.type
class Subscription(JobSubscriptions):
    pass


@dataclass(frozen=True)
class PreparedDocument:
    """A query text parsed (within the token limit) and validated, once."""

    document: DocumentNode
    errors: tuple[GraphQLError, ...]


class HubSchema(strawberry.Schema):
    """The schema, with each distinct query text parsed and validated once.

    The prepared document is keyed by the query text itself, so a repeated operation
    costs a dictionary lookup: no parse, no validation, and no hash of the syntax tree
    (which is what Strawberry's ParserCache and ValidationCache pair cost per request).
    It is attached as the operation's execution context is made, the one step every
    path shares (HTTP, multipart, WebSocket subscriptions); the extensions' hooks then
    run as before, so the authorization check still refuses a caller before any
    validation message is returned. Text that does not parse is never kept: Strawberry
    parses it again and reports the syntax error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The limits are applied where the context is made: refuse to start, rather than
        # serve without them, on a Strawberry that no longer makes it there.
        if not hasattr(strawberry.Schema, "_create_execution_context"):
            raise RuntimeError("this Strawberry version has no Schema._create_execution_context")
        super().__init__(*args, **kwargs)
        self._prepare_cached = lru_cache(maxsize=CACHE_SIZE)(self._prepare)

    def prepare(self, query: str) -> PreparedDocument:
        """The query parsed and validated; a GraphQLError if it does not parse."""
        if len(query) > MAX_CACHED_QUERY_CHARS:
            return self._prepare(query)
        return self._prepare_cached(query)

    def _prepare(self, query: str) -> PreparedDocument:
        document = parse(query, max_tokens=MAX_QUERY_TOKENS)
        if expanded_fields(document) > MAX_EXPANDED_FIELDS:
            refusal = GraphQLError(
                f"the query selects more than {MAX_EXPANDED_FIELDS} fields once its "
                "fragments are spread out; select less or page through the results"
            )
            return PreparedDocument(document, (refusal,))
        errors = validate(self._schema, document, VALIDATION_RULES)
        return PreparedDocument(document, tuple(errors))

    def _create_execution_context(
        self,
        query: str | None,
        allowed_operation_types: Iterable[OperationType],
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionContext:
        context = super()._create_execution_context(
            query,
            allowed_operation_types,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
        )
        # For the text that does not parse here: Strawberry's own parse of it must fail
        # the same way. (Everything that parses arrives validated, so Strawberry never
        # runs validation itself.)
        context.parse_options["max_tokens"] = MAX_QUERY_TOKENS
        if query:
            try:
                prepared = self.prepare(query)
            except GraphQLError:
                return context
            context.graphql_document = prepared.document
            context.pre_execution_errors = list(prepared.errors)
        return context

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        assign_codes(errors, getattr(context, "request_id", None))


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the document selects with every fragment spread out, counted
    once per fragment (memoised), so in time linear in the document; a fragment that
    spreads itself (refused by validation later) counts as nothing more."""
    fragments = {
        definition.name.value: definition.selection_set
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def size(selections: SelectionSetNode | None) -> int:
        total = 0
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                total += 1 + size(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += size(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment_size(selection.name.value)
            if total > MAX_EXPANDED_FIELDS:  # counts can grow exponentially: stop early
                return total
        return total

    def fragment_size(name: str) -> int:
        if name not in sizes:
            sizes[name] = 0  # while it is being counted: a cycle adds nothing
            sizes[name] = size(fragments.get(name))
        return sizes[name]

    return max(
        (
            size(definition.selection_set)
            for definition in document.definitions
            if not isinstance(definition, FragmentDefinitionNode)
            and hasattr(definition, "selection_set")
        ),
        default=0,
    )


def build_schema(**kwargs: Any) -> strawberry.Schema:
    return HubSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            ObserveOperations,
            Authorization,
        ],
        config=StrawberryConfig(scalar_map={Long: LONG_SCALAR}),
        **kwargs,
    )


schema = build_schema()
