"""The GraphQL schema of ModelCI Hub: the root types composed from each area, and the
schema object with its query limits (``modelci.schema.schema``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

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
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from modelci.core.errors import BadUserInput
from modelci.core.registry_events import acting_as

from .error_extensions import assign_codes
from .events import EventMutations, EventQueries, EventSubscriptions
from .execution import MAX_CACHED_QUERY_CHARS, HubExecutionContext
from .jobs import JobMutations, JobQueries, JobSubscriptions
from .models import ModelMutations, ModelQueries
from .observing import observe
from .permissions import Authorization
from .recommendations import ChoiceMutations, ChoiceQueries
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

# Every operation is validated with the rules Strawberry runs (graphql-core's and its own
# for Maybe and @oneOf inputs) plus the depth and alias limits.
VALIDATION_RULES = (
    *specified_rules,
    MaybeNullValidationRule,
    OneOfInputValidationRule,
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)


@strawberry.type
class Query(ModelQueries, JobQueries, TokenQueries, ChoiceQueries, EventQueries):
    pass


@strawberry.type
class Mutation(ModelMutations, JobMutations, TokenMutations, ChoiceMutations, EventMutations):
    pass


@strawberry.type
class Subscription(JobSubscriptions, EventSubscriptions):
    pass


@dataclass(frozen=True)
class PreparedDocument:
    """A query text parsed (within the token limit) and validated, once."""

    document: DocumentNode
    errors: tuple[GraphQLError, ...]


def not_over_http() -> BadUserInput:
    return BadUserInput(
        "subscriptions are served over a WebSocket at /graphql (graphql-transport-ws or "
        "graphql-ws), not in an HTTP request"
    )


class HubSchema(strawberry.Schema):
    """The schema, with each distinct query text parsed and validated once (``prepare``),
    and the error codes assigned to every error it reports (``process_errors``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """As Strawberry's, but never a subscription: executed as one request it would
        answer nothing, so it is refused saying where subscriptions are served."""
        allowed = set(allowed_operation_types or OperationType) - {OperationType.SUBSCRIPTION}
        try:
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed,
                operation_extensions,
            )
        except InvalidOperationTypeError as refused:
            if refused.operation_type is not OperationType.SUBSCRIPTION:
                raise
        raise not_over_http()

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        assign_codes(errors, getattr(context, "request_id", None), self._schema)


class HubOperation(SchemaExtension):
    """Every operation's prepared document, handed to Strawberry before its parsing step,
    and the operation observed for the metrics (``observing.observe``).

    The document is cached by the query text itself, so a repeated operation costs a
    dictionary lookup: no parse, no validation, and no hash of the syntax tree (which is
    what Strawberry's ParserCache and ValidationCache pair cost per request). Strawberry
    parses only when ``execution_context.graphql_document`` is empty and validates only
    when ``pre_execution_errors`` is None, on every path (HTTP, multipart, WebSocket
    subscriptions). The validation messages are returned only after the validation
    step, where the authorization extension refuses a caller first. Text that does not
    parse is never kept: Strawberry parses it again, under the same token limit, and
    reports its own syntax error.

    One extension does both in ``on_operation``: Strawberry wraps each hook of each
    extension in context managers on every request, and a hook of its own in the
    parsing step cost about 8 µs an operation (a tenth of the lifecycle; measured in
    process, call by call, against a hook in ``on_operation``: within 1 µs).
    """

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = MAX_QUERY_TOKENS
        if context.query and context.graphql_document is None:
            try:
                prepared = cast(HubSchema, context.schema).prepare(context.query)
            except GraphQLError:
                pass
            else:
                context.graphql_document = prepared.document
                context.pre_execution_errors = list(prepared.errors)
        # The events a change makes name who made it (``core.registry_events.current_actor``); a
        # mutation's events are published as soon as it has run.
        hub = context.context
        identity = getattr(hub, "identity", None)
        with acting_as(identity.name if identity is not None else None):
            yield from observe(context)
        stream = getattr(hub, "events", None)
        if stream is not None and is_mutation(context):
            stream.written()


def is_mutation(context: ExecutionContext) -> bool:
    try:
        return context.operation_type is OperationType.MUTATION
    except (RuntimeError, GraphQLError):  # no document, or no operation of that name
        return False


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
    # Plain attributes completed by a plan per selection (``execution.py``).
    kwargs.setdefault("execution_context_class", HubExecutionContext)
    return HubSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            HubOperation,
            Authorization,
        ],
        config=StrawberryConfig(scalar_map={Long: LONG_SCALAR}),
        **kwargs,
    )


schema = build_schema()
