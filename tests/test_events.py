"""Registry events: each change makes its event in the same write (the outbox), published
to the registryEvents subscription over graphql-transport-ws with who made it; a delete's
tombstone is published once its document is gone and dropped if the delete never
happened; the Python client follows events too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from conftest import PREFLIGHT, REGISTER, dynamic_result, model_input, multipart
from pymongo import MongoClient
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelci.core.domain import JobKind
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.outbox import EVENTS, OUTBOX, TOMBSTONE_GRACE, TOMBSTONES
from modelci.server.settings import Settings
from modelci.server.storage import MODELS

FOLLOW = """
subscription($types: [RegistryEventType!], $modelId: ID, $since: DateTime) {
  registryEvents(types: $types, modelId: $modelId, since: $since) {
    id type time modelId modelName modelVersion actor data
  }
}"""
UPDATE = """mutation($id: ID!) {
  updateModel(id: $id, input: {modelStatus: [VALIDATING]}) { id }
}"""
DYNAMIC = """mutation($id: ID!, $result: DynamicProfileResultInput!) {
  registerDynamicProfilingResult(modelId: $id, result: $result) { id }
}"""
SET_ALIAS = 'mutation($id: ID!) { setModelAlias(alias: "prod", modelId: $id) { alias } }'
DELETE_ALIAS = 'mutation { deleteModelAlias(alias: "prod") { alias } }'
DELETE = "mutation($id: ID!) { deleteModel(id: $id, cascade: true) { id } }"


@pytest.fixture
def secured(settings: Settings, mongodb_url: str) -> Starlette:
    return create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)


def token(client: TestClient, app: Starlette, name: str, scope: Scope) -> str:
    secret: str = client.portal.call(app.state.services.tokens.create, name, [scope])[1]  # type: ignore[union-attr]
    return secret


def bearer(secret: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def call(client: TestClient, secret: str, query: str, **variables: Any) -> dict[str, Any]:
    body = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(secret)
    ).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def register(client: TestClient, secret: str | None, **fields: Any) -> str:
    request = multipart(REGISTER, {"input": model_input(**fields)}, {"weight": ("m.bin", b"w")})
    headers = {**PREFLIGHT, **bearer(secret)}
    body = client.post("/graphql", headers=headers, **request).json()
    assert not body.get("errors"), body
    model_id: str = body["data"]["registerModel"]["id"]
    return model_id


@contextmanager
def following(client: TestClient, secret: str, **variables: Any) -> Iterator[Any]:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {secret}"}}
        ws.send_text(json.dumps(init))
        assert json.loads(ws.receive_text())["type"] == "connection_ack"
        payload = {"query": FOLLOW, "variables": variables}
        ws.send_text(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        yield ws


def events(ws: Any, count: int) -> list[dict[str, Any]]:
    got = []
    for _ in range(count):
        message = json.loads(ws.receive_text())
        assert message["type"] == "next", message
        got.append(message["payload"]["data"]["registryEvents"])
    return got


def test_each_change_makes_one_event_naming_its_model_and_who_made_it(secured: Starlette) -> None:
    with TestClient(secured) as client:
        writer = token(client, secured, "ci-bot", Scope.write)
        reader = token(client, secured, "dashboard", Scope.read)
        since = datetime.now(UTC).isoformat()
        model_id = register(client, writer, architecture="ResNet18", version=3)
        call(client, writer, UPDATE, id=model_id)
        call(client, writer, DYNAMIC, id=model_id, result=dynamic_result(batch=4))
        call(client, writer, SET_ALIAS, id=model_id)
        call(client, writer, DELETE_ALIAS)
        call(client, writer, SET_ALIAS, id=model_id)
        call(client, writer, DELETE, id=model_id)
        client.portal.call(secured.state.services.relay.flush)  # all published: in order
        with following(client, reader, since=since) as ws:
            got = events(ws, 8)
        assert [event["type"] for event in got] == [
            "MODEL_REGISTERED",
            "MODEL_UPDATED",
            "PROFILE_ADDED",
            "ALIAS_SET",
            "ALIAS_DELETED",
            "ALIAS_SET",
            "MODEL_DELETED",
            "ALIAS_DELETED",  # with its model, by the cascade
        ]
        assert {event["modelId"] for event in got} == {model_id}
        assert {(event["modelName"], event["modelVersion"]) for event in got} == {("ResNet18", 3)}
        assert {event["actor"] for event in got} == {"ci-bot"}
        assert len({event["id"] for event in got}) == 8
        assert got[1]["data"] == {"fields": ["modelStatus"], "weightReplaced": False}
        assert got[2]["data"] == {
            "kind": "dynamic",
            "deviceId": "cpu",
            "batch": 4,
            "replaced": False,
        }
        assert got[3]["data"] == {"alias": "prod"}


def test_a_subscription_gets_what_happens_while_it_is_connected_filtered(
    secured: Starlette,
) -> None:
    with TestClient(secured) as client:
        writer = token(client, secured, "writer", Scope.write)
        reader = token(client, secured, "reader", Scope.read)
        first = register(client, writer, version=1)
        # From a time before the changes: those made before the subscription is running
        # come from the log, then the live ones, each once.
        since = datetime.now(UTC).isoformat()
        with (
            following(
                client, reader, types=["MODEL_UPDATED"], modelId=first, since=since
            ) as updates,
            following(client, reader, since=since) as everything,
        ):
            second = register(client, writer, version=2)
            assert events(everything, 1)[0]["modelId"] == second
            call(client, writer, UPDATE, id=second)  # not this model's
            call(client, writer, UPDATE, id=first)
            (update,) = events(updates, 1)
            assert (update["type"], update["modelId"]) == ("MODEL_UPDATED", first)
            assert [(event["type"], event["modelId"]) for event in events(everything, 2)] == [
                ("MODEL_UPDATED", second),
                ("MODEL_UPDATED", first),
            ]


def test_reading_events_needs_a_token(secured: Starlette) -> None:
    with TestClient(secured) as client:
        body = client.post("/graphql", json={"query": FOLLOW}).json()
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_an_event_left_in_the_outbox_by_a_crash_is_published_by_the_next_hub(
    settings: Settings, mongodb_url: str
) -> None:
    """A change acknowledged whose process died before publishing: its event is in the
    document, and the next relay publishes it, once, with the document's outbox emptied."""
    app = create_app(settings, mongodb_url=mongodb_url)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        relay = app.state.services.relay
        client.portal.call(relay.close)  # as if the process died right after the write
        model_id = register(client, None, version=1)
        database = MongoClient(mongodb_url)[settings.database]
        document = database[MODELS].find_one({"_id": ObjectId(model_id)})
        assert document is not None
        (pending,) = document[OUTBOX]
        assert database[EVENTS].count_documents({}) == 0

        assert client.portal.call(relay.flush) == 1
        assert client.portal.call(relay.flush) == 0
        (published,) = database[EVENTS].find({})
        assert published["_id"] == pending["id"]
        assert published["type"] == "model.registered"
        assert OUTBOX not in database[MODELS].find_one({"_id": ObjectId(model_id)})  # type: ignore[operator]


def test_a_tombstone_is_published_once_its_document_is_gone_and_dropped_if_it_stays(
    settings: Settings, mongodb_url: str
) -> None:
    """A hub that died between a delete's two writes: a tombstone whose model is gone
    describes a delete that happened (published); one whose model is still there after
    the grace describes one that did not (dropped, never published)."""
    app = create_app(settings, mongodb_url=mongodb_url)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        relay = app.state.services.relay
        client.portal.call(relay.close)
        kept = register(client, None, version=1)
        client.portal.call(relay.flush)
        database = MongoClient(mongodb_url)[settings.database]
        gone = ObjectId()  # a model deleted (it is not there)
        old = datetime.now(UTC) - TOMBSTONE_GRACE - timedelta(seconds=1)
        for document, when, event_id in (
            (gone, datetime.now(UTC), "e-gone"),
            (ObjectId(kept), old, "e-kept"),
        ):
            event = {"id": event_id, "type": "model.deleted", "time": when, "data": {}}
            database[TOMBSTONES].insert_one(
                {
                    "_id": event_id,
                    "collection": MODELS,
                    "document": {"_id": document},
                    "events": [{**event, "model_id": str(document)}],
                    "time": when,
                }
            )
        assert client.portal.call(relay.flush) == 1
        assert {each["_id"] for each in database[EVENTS].find({"type": "model.deleted"})} == {
            "e-gone"
        }
        assert database[TOMBSTONES].count_documents({}) == 0


def test_a_job_that_ends_says_so_once_with_its_status(secured: Starlette) -> None:
    with TestClient(secured) as client:
        writer = token(client, secured, "writer", Scope.write)
        worker = token(client, secured, "gpu-box", Scope.worker)
        reader = token(client, secured, "reader", Scope.read)
        model_id = register(client, writer, version=1)
        jobs = secured.state.services.jobs
        since = datetime.now(UTC).isoformat()
        done = client.portal.call(jobs.enqueue, model_id, JobKind.PROFILE)
        cancelled = client.portal.call(jobs.enqueue, model_id, JobKind.PROFILE)
        claim = 'mutation { claimProfilingJob(worker: "w1", devices: []) { id } }'
        assert call(client, worker, claim)["claimProfilingJob"]["id"] == done.id
        finish = 'mutation($id: ID!) { finishProfilingJob(id: $id, worker: "w1") { status } }'
        call(client, worker, finish, id=done.id)
        cancel = "mutation($id: ID!) { cancelProfilingJob(id: $id) { status } }"
        call(client, writer, cancel, id=cancelled.id)
        with following(client, reader, types=["JOB_FINISHED"], since=since) as ws:
            got = events(ws, 2)
        assert [
            (event["data"]["jobId"], event["data"]["status"], event["actor"]) for event in got
        ] == [
            (done.id, "SUCCEEDED", "gpu-box"),
            (cancelled.id, "CANCELLED", "writer"),
        ]
        assert {event["modelId"] for event in got} == {model_id}
        assert {event["data"]["kind"] for event in got} == {"PROFILE"}


def test_a_tag_set_and_removed_makes_its_events(secured: Starlette) -> None:
    with TestClient(secured) as client:
        writer = token(client, secured, "writer", Scope.write)
        reader = token(client, secured, "reader", Scope.read)
        model_id = register(client, writer, version=1)
        since = datetime.now(UTC).isoformat()
        set_tag = (
            'mutation($id: ID!) { setModelTag(id: $id, name: "team", value: "vision") { id } }'
        )
        call(client, writer, set_tag, id=model_id)
        call(
            client,
            writer,
            'mutation($id: ID!) { deleteModelTag(id: $id, name: "team") { id } }',
            id=model_id,
        )
        with following(client, reader, types=["TAG_SET", "TAG_DELETED"], since=since) as ws:
            got = events(ws, 2)
        assert [(event["type"], event["data"]) for event in got] == [
            ("TAG_SET", {"key": "team", "value": "vision"}),
            ("TAG_DELETED", {"key": "team"}),
        ]
        assert {(event["modelId"], event["actor"]) for event in got} == {(model_id, "writer")}
