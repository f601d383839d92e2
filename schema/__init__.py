"""The domain and the GraphQL surface of ModelCI Hub."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

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
CACHE_SIZE = 512


# The depth and alias limits are validation rules. Their classes are made once, here:
# ValidationCache keys on the rules, and fresh classes per request would never hit it.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


@strawberry.type
class Query(ModelQueries, JobQueries, TokenQueries):
    pass


@strawberry.type
class Mutation(ModelMutations, JobMutations, TokenMutations):
    pass


@strawberry.type
class Subscription(JobSubscriptions):
    pass


class HubSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context = execution_context.context if execution_context else None
        assign_codes(errors, getattr(context, "request_id", None))


def build_schema(**kwargs: Any) -> strawberry.Schema:
    return HubSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            ObserveOperations,
            Authorization,
            lambda: AddValidationRules(LIMIT_RULES),
            lambda: MaxTokensLimiter(max_token_count=MAX_QUERY_TOKENS),
            # Fresh instances per request share one module-level LRU per maxsize.
            lambda: ParserCache(maxsize=CACHE_SIZE),
            lambda: ValidationCache(maxsize=CACHE_SIZE),
        ],
        config=StrawberryConfig(scalar_map={Long: LONG_SCALAR}),
        **kwargs,
    )


schema = build_schema()
