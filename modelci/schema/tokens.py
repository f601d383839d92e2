"""API token management over GraphQL, for admins (the `modelci token` CLI does the same)."""

from __future__ import annotations

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic

from modelci.core import identity as auth
from modelci.core.identity import Scope

from .context import HubInfo
from .permissions import needs

strawberry.enum(Scope)


@strawberry_pydantic.type(model=auth.ApiToken, description="An API token; its secret is not kept.")
class ApiToken:
    id: strawberry.ID
    name: strawberry.auto
    scopes: strawberry.auto
    create_time: strawberry.auto
    last_used: strawberry.auto
    revoked: strawberry.auto


@strawberry.type
class NewApiToken:
    token: str = strawberry.field(description="The secret: shown now, never again.")
    api_token: auth.ApiToken = strawberry.field(graphql_type=ApiToken)


@strawberry.type
class TokenQueries:
    @strawberry.field(
        description="Every API token (admin).",
        metadata=needs(Scope.admin),
        graphql_type=list[ApiToken],
    )
    async def api_tokens(self, info: HubInfo) -> list[auth.ApiToken]:
        return await info.context.tokens.list_all()


@strawberry.type
class TokenMutations:
    @strawberry.mutation(
        description="Create an API token (admin); the secret is returned once.",
        metadata=needs(Scope.admin),
    )
    async def create_api_token(self, info: HubInfo, name: str, scopes: list[Scope]) -> NewApiToken:
        record, secret = await info.context.tokens.create(name, scopes)
        return NewApiToken(token=secret, api_token=record)

    @strawberry.mutation(
        description="Revoke a token by id, or every token with a name (admin).",
        metadata=needs(Scope.admin),
        graphql_type=list[ApiToken],
    )
    async def revoke_api_token(self, info: HubInfo, id_or_name: str) -> list[auth.ApiToken]:
        return await info.context.tokens.revoke(id_or_name)
