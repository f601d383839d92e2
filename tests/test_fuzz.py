"""Property-based fuzzing of the live schema: no operation may crash the server.

hypothesis-graphql generates valid operations (POSITIVE) and operations with one
schema violation (NEGATIVE) from the schema itself; raw garbage covers the rest. For
every one: no 5xx, no INTERNAL_SERVER_ERROR, and every error carries a code.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelci.schema import schema

EXAMPLES = 200

CUSTOM_SCALARS = {
    "Long": st.integers(-(2**63), 2**63 - 1).map(nodes.Int),
    "DateTime": st.sampled_from(["2026-01-01T00:00:00+00:00", "yesterday"]).map(nodes.String),
    "Upload": st.just(nodes.Null),
}

FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: CI stays reproducible
)


def assert_handled(response: Any) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    for error in body.get("errors") or []:
        code = error.get("extensions", {}).get("code")
        assert code, error
        assert code != "INTERNAL_SERVER_ERROR", error


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_operations_never_crash_the_server(app: Starlette, mode: Mode) -> None:
    operations = from_schema(schema.as_str(), custom_scalars=CUSTOM_SCALARS, mode=mode)
    with TestClient(app, base_url="http://127.0.0.1") as client:

        @FUZZ
        @given(operation=operations)
        def check(operation: str) -> None:
            assert_handled(client.post("/graphql", json={"query": operation}))

        check()


def test_garbage_requests_never_crash_the_server(app: Starlette) -> None:
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=10,
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:

        @FUZZ
        @given(query=st.text(max_size=300), variables=json_values)
        def check(query: str, variables: object) -> None:
            body = {"query": query, "variables": variables}
            assert_handled(client.post("/graphql", json=body))

        check()
