"""Permissions are declared on each root field (``auth.needs``) and read back from the
built schema: no field goes without one, and renaming a field does not change its scope."""

from __future__ import annotations

import pytest
import strawberry
from graphql import OperationType, parse
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter

from modelci.core.identity import Scope
from modelci.schema import schema
from modelci.schema.api import Mutation, Query, Subscription
from modelci.schema.permissions import SCOPE, UndeclaredScope, needs, required_scopes, root_scopes
from modelci.schema.types import LONG_SCALAR, Long


def test_every_root_field_declares_its_scope() -> None:
    graphql_schema = schema._schema
    roots = {
        "mutation": graphql_schema.mutation_type,
        "subscription": graphql_schema.subscription_type,
        "query": graphql_schema.query_type,
    }
    undeclared = []
    for kind, root in roots.items():
        assert root is not None and root.fields, kind
        for name, field in root.fields.items():
            definition = field.extensions[GraphQLCoreConverter.DEFINITION_BACKREF]
            if not isinstance((definition.metadata or {}).get(SCOPE), Scope):
                undeclared.append(f"{kind} {name}")
    assert undeclared == [], "give these metadata=needs(Scope.…)"


def test_the_declared_scopes() -> None:
    """What each kind of caller may do (the README's table of scopes)."""
    scopes = root_scopes(schema._schema)
    mutations = scopes[OperationType.MUTATION]
    assert {name for name, scope in mutations.items() if scope is Scope.worker} == {
        "claimProfilingJob",
        "heartbeatProfilingJob",
        "releaseProfilingJob",
        "finishProfilingJob",
        "recordProfilingSweep",
        "registerConvertedModel",
    }
    assert {name for name, scope in mutations.items() if scope is Scope.admin} == {
        "createApiToken",
        "revokeApiToken",
        "createWebhook",
        "updateWebhook",
        "deleteWebhook",
        "testWebhook",
    }
    assert set(mutations.values()) == {Scope.write, Scope.worker, Scope.admin}
    # Choosing a model: everyone who reads may ask; moving an alias is a write.
    assert {name: mutations[name] for name in ("setModelAlias", "deleteModelAlias")} == {
        "setModelAlias": Scope.write,
        "deleteModelAlias": Scope.write,
    }
    queries = scopes[OperationType.QUERY]
    assert {name for name, scope in queries.items() if scope is not Scope.read} == {
        "apiTokens",
        "webhooks",
        "webhookDeliveries",
    }
    assert {"recommend", "compareModels", "modelAliases", "model"} <= set(queries)
    assert set(scopes[OperationType.SUBSCRIPTION].values()) == {Scope.read}


def test_a_field_without_a_scope_is_refused() -> None:
    @strawberry.type
    class Root:
        @strawberry.field(metadata=needs(Scope.read))
        def ping(self) -> str:
            return "pong"

    @strawberry.type
    class Unguarded:
        @strawberry.mutation
        def wipe(self) -> bool:
            return True

    unguarded = strawberry.Schema(query=Root, mutation=Unguarded)
    with pytest.raises(UndeclaredScope, match="wipe"):
        root_scopes(unguarded._schema)


def test_a_renamed_field_keeps_its_scope() -> None:
    """The same resolvers under other GraphQL names need the same scopes: the scope is
    found through the field, not through its name."""
    snake_case = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=False, scalar_map={Long: LONG_SCALAR}),
    )
    camel = root_scopes(schema._schema)
    snake = root_scopes(snake_case._schema)
    assert snake[OperationType.MUTATION]["claim_profiling_job"] is Scope.worker
    assert "claimProfilingJob" not in snake[OperationType.MUTATION]
    for operation, fields in camel.items():
        renamed = {name: snake[operation][to_snake_case(name)] for name in fields}
        assert renamed == fields, operation

    @strawberry.type
    class Root:
        @strawberry.field(metadata=needs(Scope.read))
        def ping(self) -> str:
            return "pong"

    @strawberry.type
    class Workers:
        @strawberry.mutation(name="takeJob", metadata=needs(Scope.worker))
        def claim(self) -> bool:
            return True

    named = strawberry.Schema(query=Root, mutation=Workers)
    document = parse("mutation { takeJob }")
    assert required_scopes(named._schema, document, None) == {Scope.worker}


def to_snake_case(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


@pytest.mark.parametrize(
    ("operation", "needed"),
    [
        ("{ models { nodes { id } } devices { host } }", {Scope.read}),
        ("{ __typename apiTokens { name } }", {Scope.read, Scope.admin}),
        ('mutation { deleteModel(id: "x") { id } }', {Scope.write}),
        ('mutation { setModelAlias(alias: "a", modelId: "x") { alias } }', {Scope.write}),
        ('mutation { deleteModelAlias(alias: "a") { alias } }', {Scope.write}),
        ("{ recommend(task: Other) { options { batch } } }", {Scope.read}),
        ('{ compareModels(ids: ["x"]) { rows { batch } } }', {Scope.read}),
        ('{ modelAliases { alias } model(alias: "a") { id } }', {Scope.read}),
        # Aliases and fragments do not hide a field from the check.
        (
            "mutation { ...F } fragment F on Mutation { c: claimProfilingJob { id } }",
            {Scope.worker},
        ),
        ("subscription { profilingJob(id: 1) { id } }", {Scope.read}),
        # A field the schema lacks needs what its kind of operation needs at least: a
        # caller without it learns nothing from the validation message.
        ("mutation { noSuchField }", {Scope.write}),
        ("{ noSuchField }", {Scope.read}),
    ],
)
def test_required_scopes(operation: str, needed: set[Scope]) -> None:
    assert required_scopes(schema._schema, parse(operation), None) == needed


def test_the_operation_named_is_the_one_checked() -> None:
    document = parse(
        'query Q { models { nodes { id } } } mutation M { deleteModel(id: "x") { id } }'
    )
    assert required_scopes(schema._schema, document, "Q") == {Scope.read}
    assert required_scopes(schema._schema, document, "M") == {Scope.write}
