"""The hub's executor (``schema.execution``) answers exactly as graphql-core's: the same
data, the same errors at the same paths, for plain data and for the values its plan
hands back to graphql-core (nulls where the schema says non-null, values a serialiser
refuses, objects of the wrong type, missing attributes)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import strawberry
from conftest import Api, dynamic_result
from starlette.requests import Request
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from modelci.schema.api import build_schema
from modelci.schema.execution import HubExecutionContext
from modelci.server.graphql_view import HubGraphQL

FRAGMENTS = (
    Path(__file__).parent.parent / "modelci" / "operations" / "fragments.graphql"
).read_text()


@strawberry.enum
class Colour(Enum):
    RED = "red"
    GREEN = "green"


@strawberry.type
class Leaf:
    name: str
    size: int
    ratio: float | None
    colour: Colour
    when: datetime
    tags: list[str]
    flags: list[bool | None] | None


@strawberry.type
class Branch:
    label: str
    leaf: Leaf | None
    leaves: list[Leaf]

    @strawberry.field
    def shout(self) -> str:
        return self.label.upper()


def leaf(**overrides: Any) -> Leaf:
    fields: dict[str, Any] = {
        "name": "a",
        "size": 3,
        "ratio": 0.5,
        "colour": Colour.GREEN,
        "when": datetime(2026, 1, 2, tzinfo=UTC),
        "tags": ["x", "y"],
        "flags": [True, None],
    }
    fields.update(overrides)
    return Leaf(**fields)


class NotALeaf:
    name = "impostor"


class Missing:
    """A leaf without its attributes."""


BRANCHES: dict[str, list[Any]] = {
    "plain": [Branch(label="b", leaf=leaf(), leaves=[leaf(), leaf(name="c", ratio=None)])],
    "null in a non-null leaf": [Branch(label="b", leaf=leaf(name=None), leaves=[leaf()])],
    "null in a non-null list item": [
        Branch(label="b", leaf=None, leaves=[leaf(), leaf(tags=["x", None])])
    ],
    "an int out of range": [Branch(label="b", leaf=leaf(size=2**40), leaves=[])],
    "an int as a float": [Branch(label="b", leaf=leaf(ratio=2), leaves=[])],
    "infinity": [Branch(label="b", leaf=leaf(ratio=math.inf), leaves=[leaf(ratio=math.nan)])],
    "a string for an int": [Branch(label="b", leaf=leaf(size="7"), leaves=[leaf(size="x")])],
    "a value outside the enum": [Branch(label="b", leaf=leaf(colour="blue"), leaves=[])],
    "the wrong object": [Branch(label="b", leaf=NotALeaf(), leaves=[leaf(), NotALeaf()])],  # type: ignore[arg-type]
    "a missing attribute": [Branch(label="b", leaf=Missing(), leaves=[Missing()])],  # type: ignore[arg-type]
    "a tuple for a list": [Branch(label="b", leaf=leaf(tags=("x",)), leaves=[])],
    "a string for a list": [Branch(label="b", leaf=leaf(tags="xy"), leaves=[])],
    "null for a list": [Branch(label="b", leaf=leaf(flags=None), leaves=[])],
}

OPERATIONS = {
    "everything": """{ branches { label shout leaf { ...L } leaves { ...L } } }
        fragment L on Leaf { name size ratio colour when tags flags __typename }""",
    "aliases and repeats": """{ branches { a: label b: label leaf { n: name name size }
        leaf { ratio } leaves { colour } } }""",
    "conditions": """query q($with: Boolean!) { branches { label @include(if: $with)
        leaf @skip(if: $with) { name } leaves { ... on Leaf @include(if: $with) { size } } } }""",
}


@strawberry.type
class Query:
    @strawberry.field
    def branches(self, case: str) -> list[Branch]:
        return BRANCHES[case]


def answers(schema: strawberry.Schema, operation: str, case: str, with_: bool) -> Any:
    result = schema.execute_sync(
        operation.replace("{ branches", f'{{ branches(case: "{case}")', 1),
        variable_values={"with": with_},
    )
    errors = [(error.message, error.path, error.locations) for error in result.errors or []]
    return result.data, sorted(errors, key=repr)


@pytest.mark.parametrize("case", list(BRANCHES))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_answer_and_error_is_graphql_cores(case: str, operation: str) -> None:
    plain = strawberry.Schema(query=Query)
    planned = strawberry.Schema(query=Query, execution_context_class=HubExecutionContext)
    for with_ in (True, False):
        for _ in range(2):  # the second time from the plans kept for the selection
            expected = answers(plain, OPERATIONS[operation], case, with_)
            assert answers(planned, OPERATIONS[operation], case, with_) == expected


async def test_a_page_of_models_reads_as_graphql_core_reads_it(api: Api, app: Any) -> None:
    """The client's full selection over models with static and dynamic results, a
    variant's lineage and no results at all."""
    for version in (1, 2, 3):
        model = await api.register(version=version)
        if version < 3:
            await api.data(
                """mutation($id: ID!, $r: DynamicProfileResultInput!) {
                  registerDynamicProfilingResult(modelId: $id, result: $r) { id } }""",
                {"id": model["id"], "r": dynamic_result(batch=version)},
            )
    query = """query page($first: Int!) { models(first: $first) {
          nodes { ...MLModel children { id } parent { id } }
          edges { cursor node { id __typename } }
          pageInfo { hasNextPage endCursor hasPreviousPage startCursor } } }""" + FRAGMENTS.split(
        "fragment ProfilingJob"
    )[0]
    plain = build_schema(execution_context_class=StrawberryGraphQLCoreExecutionContext)
    planned = build_schema()  # the hub's: HubExecutionContext
    view = HubGraphQL(plain)  # the request context the server builds
    request = Request({"type": "http", "app": app, "headers": [], "state": {}})
    for first in (2, 3):
        context = await view.get_context(request, None)
        expected = await plain.execute(query, {"first": first}, context_value=context)
        context = await view.get_context(request, None)
        found = await planned.execute(query, {"first": first}, context_value=context)
        assert not expected.errors, expected.errors
        assert found.data == expected.data
        assert found.errors == expected.errors
