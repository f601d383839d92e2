"""Bad input gets a clear, typed error and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bson import ObjectId
from conftest import PREFLIGHT, REGISTER, Api, model_input
from pymongo import AsyncMongoClient
from test_model_service import GET_MODEL, LIST_MODELS, UPDATE_MODEL

from modelci.server.settings import Settings


def stored_blobs(settings: Settings) -> list[Path]:
    return sorted((settings.weights_dir / "blobs").glob("??/*"))


def staged_files(settings: Settings) -> list[Path]:
    return sorted(settings.staging_dir.iterdir())


async def model_count(api: Api) -> int:
    data = await api.data("{ models(first: 100) { edges { cursor } } }")
    return len(data["models"]["edges"])


async def first_error(api: Api, query: str, variables: dict[str, Any], **files: Any) -> dict:
    body = await api.post(query, variables, files or None)
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_duplicate_registration_is_a_conflict_and_stores_nothing(
    api: Api, settings: Settings
) -> None:
    await api.register(b"first")
    error = await first_error(api, REGISTER, {"input": model_input()}, weight=("m.pt", b"second"))
    assert error["extensions"]["code"] == "CONFLICT"
    assert "ResNet50" in error["message"]
    assert await model_count(api) == 1
    assert len(stored_blobs(settings)) == 1
    assert staged_files(settings) == []

    # Any part of the key differing makes another model.
    await api.register(b"second", version=2)
    await api.register(b"second", dataset="CIFAR10")
    assert await model_count(api) == 3


async def test_invalid_values_name_the_field_and_store_nothing(
    api: Api, settings: Settings
) -> None:
    cases = {
        "framework": model_input(framework="Caffe"),
        "shape": model_input(inputs=[{"name": "x", "shape": [0, 3]}]),
        "version": model_input(version=0),
        "metric": model_input(metric=[{"name": "acc", "value": 1}, {"name": "acc", "value": 2}]),
        "architecture": model_input(architecture=""),
        "dtype": model_input(outputs=[{"name": "y", "shape": [1], "dtype": "TYPE_FP128"}]),
    }
    for field, bad_input in cases.items():
        error = await first_error(api, REGISTER, {"input": bad_input}, weight=("m.pt", b"w"))
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert field in error["message"], error
    assert await model_count(api) == 0
    assert stored_blobs(settings) == []
    assert staged_files(settings) == []


async def test_a_missing_weight_is_bad_input(api: Api) -> None:
    error = await first_error(api, REGISTER, {"input": model_input(), "weight": None})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "weight" in error["message"]


async def test_update_errors_change_nothing(api: Api) -> None:
    model = await api.register(b"a")
    other = await api.register(b"b", version=2)

    onto_other = {"id": model["id"], "input": {"version": 2}}
    error = await first_error(api, UPDATE_MODEL, onto_other)
    assert error["extensions"]["code"] == "CONFLICT"

    null_field = {"id": model["id"], "input": {"architecture": None}}
    error = await first_error(api, UPDATE_MODEL, null_field)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "architecture" in error["message"]

    bad_shape = {"id": model["id"], "input": {"inputs": [{"name": "x", "shape": [-2]}]}}
    error = await first_error(api, UPDATE_MODEL, bad_shape)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "inputs" in error["message"]

    malformed = {"id": "123", "input": {"creator": "me"}}
    error = await first_error(api, UPDATE_MODEL, malformed)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"

    for before in (model, other):
        after = (await api.data(GET_MODEL, {"id": before["id"]}))["model"]
        assert after == before


async def test_listing_arguments_are_checked(api: Api) -> None:
    for first in (0, 101, -1):
        code = await api.error_code(LIST_MODELS, {"first": first})
        assert code == "BAD_USER_INPUT"
    assert await api.error_code(LIST_MODELS, {"after": "not-a-cursor"}) == "BAD_USER_INPUT"
    assert await api.error_code(LIST_MODELS, {"task": "Dancing"}) == "BAD_USER_INPUT"


async def test_graphql_syntax_and_validation_errors_are_bad_input(api: Api) -> None:
    assert await api.error_code("{ models { ") == "BAD_USER_INPUT"
    assert await api.error_code("{ nonsense }") == "BAD_USER_INPUT"


async def test_queries_over_the_size_limits_are_refused_before_they_run(api: Api) -> None:
    """Too many aliases, too deep, or too long: refused whole, with nothing resolved."""
    aliases = " ".join(f"a{i}: models {{ pageInfo {{ hasNextPage }} }}" for i in range(40))
    deep = "{ models { nodes { %s } } }" % ("parent { " * 12 + "id" + " }" * 12)
    tokens = "{ %s }" % " ".join("__typename" for _ in range(5000))
    for query in ("{ %s }" % aliases, deep, tokens):
        for _ in range(2):  # the second time from the prepared-document cache
            body = await api.post(query)
            assert body.get("data") is None, query[:80]
            assert {error["extensions"]["code"] for error in body["errors"]} == {"BAD_USER_INPUT"}


async def test_a_multipart_request_that_is_not_one_query_or_mutation_is_bad_input(
    api: Api, settings: Settings
) -> None:
    listing = "query A { models { nodes { id } } }"
    for operations in (
        {"query": 'subscription { profilingJob(id: "0") { id } }'},
        {"query": "   "},
        {"query": listing, "variables": [1]},
        {"query": listing, "operationName": "B"},
    ):
        response = await api.http.post(
            "/graphql",
            headers=PREFLIGHT,
            data={"operations": json.dumps(operations), "map": '{"0": []}'},
            files={"0": ("m.pt", b"bytes", "application/octet-stream")},
        )
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert staged_files(settings) == [] and await model_count(api) == 0


async def test_unexpected_errors_are_masked_with_a_request_id(
    api: Api, settings: Settings, mongodb_url: str
) -> None:
    # A document that does not fit the domain (written by hand, bypassing the API).
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    broken_id = ObjectId()
    await client[settings.database]["models"].insert_one(
        {"_id": broken_id, "architecture": "Broken", "framework": "Nope"}
    )
    await client.close()

    response = await api.http.post(
        "/graphql",
        json={"query": GET_MODEL, "variables": {"id": str(broken_id)}},
        headers={"x-request-id": "trace-me-123"},
    )
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "trace-me-123"}
    assert "trace-me-123" in error["message"]
    assert "framework" not in error["message"] and "validation" not in error["message"].lower()
    assert response.headers["x-request-id"] == "trace-me-123"
