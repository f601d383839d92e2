"""profilingJob subscriptions: many followers of a job cost one read a change, each
follower gets every state to the end, and one token's connections and subscriptions
are capped, with a refusal that says which cap and why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from modelci.core.domain import JobKind
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.settings import Settings
from modelci.server.storage import JOBS

FOLLOW = "subscription($id: ID!) { profilingJob(id: $id) { id status progress } }"
CLAIM = 'mutation { claimProfilingJob(worker: "w1", devices: []) { id } }'
HEARTBEAT = """mutation($id: ID!) {
  heartbeatProfilingJob(id: $id, worker: "w1", progress: 0.5) { progress }
}"""
LOOPBACK = "ws://127.0.0.1/graphql"
FINISH = 'mutation($id: ID!) { finishProfilingJob(id: $id, worker: "w1") { status } }'


def hub(settings: Settings, mongodb_url: str, **caps: Any) -> Starlette:
    return create_app(settings.model_copy(update={"auth": "on", **caps}), mongodb_url=mongodb_url)


@pytest.fixture
def secured(settings: Settings, mongodb_url: str) -> Starlette:
    # No poll while the test runs: every read the feed makes is one a change asked for.
    return hub(settings, mongodb_url, watch_poll_s=3600)


@pytest.fixture
def capped(settings: Settings, mongodb_url: str) -> Starlette:
    return hub(
        settings,
        mongodb_url,
        max_ws_connections_per_token=2,
        max_subscriptions_per_connection=3,
        max_subscriptions_per_token=4,
    )


def token(client: TestClient, app: Starlette, name: str, scope: Scope) -> str:
    secret: str = client.portal.call(app.state.services.tokens.create, name, [scope])[1]  # type: ignore[union-attr]
    return secret


def queued_job(client: TestClient, app: Starlette) -> str:
    job = client.portal.call(app.state.services.jobs.enqueue, str(ObjectId()), JobKind.PROFILE)  # type: ignore[union-attr]
    return str(job.id)


def as_worker(client: TestClient, worker: str, query: str, job_id: str | None = None) -> None:
    variables = {"id": job_id} if job_id else {}
    body = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {worker}"},
    ).json()
    assert not body.get("errors"), body


@contextmanager
def connection(client: TestClient, secret: str) -> Iterator[Any]:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {secret}"}}
        ws.send_text(json.dumps(init))
        assert json.loads(ws.receive_text())["type"] == "connection_ack"
        yield ws


def subscribe(ws: Any, operation: str, job_id: str) -> None:
    payload = {"query": FOLLOW, "variables": {"id": job_id}}
    ws.send_text(json.dumps({"id": operation, "type": "subscribe", "payload": payload}))


def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.receive_text())
    return message


def states(ws: Any, count: int) -> dict[str, dict[str, Any]]:
    """The next state of each of ``count`` subscriptions on the connection, by id."""
    got = {}
    for _ in range(count):
        message = receive(ws)
        assert message["type"] == "next", message
        got[message["id"]] = message["payload"]["data"]["profilingJob"]
    return got


def settled(ws: Any) -> None:
    """Every message sent on the connection before has been handled by the server."""
    ws.send_text(json.dumps({"type": "ping"}))
    assert receive(ws) == {"type": "pong"}


def test_forty_followers_get_every_state_for_one_read_a_change(secured: Starlette) -> None:
    with TestClient(secured) as client, ExitStack() as sockets:
        reader = token(client, secured, "reader", Scope.read)
        worker = token(client, secured, "worker", Scope.worker)
        job_id = queued_job(client, secured)
        feed = secured.state.services.jobs.watchers
        connections = [sockets.enter_context(connection(client, reader)) for _ in range(4)]
        for ws in connections:
            for number in range(10):
                subscribe(ws, str(number), job_id)
        for ws in connections:
            assert {state["status"] for state in states(ws, 10).values()} == {"QUEUED"}
        assert feed.subscribers == 40
        reads = feed.reads

        as_worker(client, worker, CLAIM)
        for ws in connections:
            assert {state["status"] for state in states(ws, 10).values()} == {"RUNNING"}
        as_worker(client, worker, HEARTBEAT, job_id)
        for ws in connections:
            assert {state["progress"] for state in states(ws, 10).values()} == {0.5}
        as_worker(client, worker, FINISH, job_id)
        for ws in connections:
            assert {state["status"] for state in states(ws, 10).values()} == {"SUCCEEDED"}
            # The finished job ends every stream.
            completed = {receive(ws)["id"] for _ in range(10)}
            assert completed == {str(number) for number in range(10)}

        # Three changes, three reads of the jobs, for forty followers.
        assert feed.reads - reads == 3
        assert feed.subscribers == 0


def test_a_change_through_another_process_reaches_followers(
    settings: Settings, mongodb_url: str
) -> None:
    app = hub(settings, mongodb_url)  # the feed's default poll interval
    with TestClient(app) as client:
        reader = token(client, app, "reader", Scope.read)
        job_id = queued_job(client, app)
        with connection(client, reader) as ws:
            subscribe(ws, "1", job_id)
            assert states(ws, 1)["1"]["progress"] == 0
            # Written to the database as another web process would: nothing announced here.
            with MongoClient(mongodb_url) as database:
                database[settings.database][JOBS].update_one(
                    {"_id": ObjectId(job_id)},
                    {"$set": {"progress": 0.25, "update_time": datetime.now(UTC)}},
                )
            assert states(ws, 1)["1"]["progress"] == 0.25


def test_a_follower_that_unsubscribes_is_removed(secured: Starlette) -> None:
    with TestClient(secured) as client:
        reader = token(client, secured, "reader", Scope.read)
        worker = token(client, secured, "worker", Scope.worker)
        job_id = queued_job(client, secured)
        feed = secured.state.services.jobs.watchers
        with connection(client, reader) as ws:
            subscribe(ws, "1", job_id)
            subscribe(ws, "2", job_id)
            assert set(states(ws, 2)) == {"1", "2"}
            ws.send_text(json.dumps({"id": "1", "type": "complete"}))
            settled(ws)
            as_worker(client, worker, CLAIM)
            # Only the one still subscribed hears of the change.
            assert states(ws, 1) == {"2": {"id": job_id, "status": "RUNNING", "progress": 0.0}}
            assert feed.subscribers == 1


def test_one_token_past_its_connections_is_closed_with_why(capped: Starlette) -> None:
    with TestClient(capped) as client:
        reader = token(client, capped, "reader", Scope.read)
        other = token(client, capped, "other", Scope.read)
        with connection(client, reader), connection(client, reader) as second:
            with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {reader}"}}
                ws.send_text(json.dumps(init))
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive_text()
            assert closed.value.code == 4429
            assert closed.value.reason.startswith(
                "token reader has 2 WebSocket connections open, and 2 is the most"
            )
            with connection(client, other):  # another token's connections are its own
                pass
            second.close()
        with connection(client, reader), connection(client, reader):  # closed ones count no more
            pass


def test_subscriptions_past_a_cap_are_refused_with_the_cap(capped: Starlette) -> None:
    with TestClient(capped) as client:
        reader = token(client, capped, "reader", Scope.read)
        job_id = queued_job(client, capped)
        with connection(client, reader) as first, connection(client, reader) as second:
            for number in range(3):
                subscribe(first, str(number), job_id)
            assert set(states(first, 3)) == {"0", "1", "2"}
            subscribe(first, "3", job_id)
            refused = receive(first)
            assert refused["type"] == "error" and refused["id"] == "3", refused
            (error,) = refused["payload"]
            assert error["extensions"]["code"] == "TOO_MANY_REQUESTS"
            assert error["message"].startswith(
                "this connection has 3 subscriptions open, and 3 is the most"
            )

            subscribe(second, "a", job_id)
            assert set(states(second, 1)) == {"a"}
            subscribe(second, "b", job_id)
            refused = receive(second)
            (error,) = refused["payload"]
            assert error["extensions"]["code"] == "TOO_MANY_REQUESTS"
            assert error["message"].startswith("token reader has 4 subscriptions open, and 4")

            # One completed on the first connection frees a place for the token.
            first.send_text(json.dumps({"id": "0", "type": "complete"}))
            settled(first)
            subscribe(second, "b", job_id)
            assert set(states(second, 1)) == {"b"}


def test_the_older_graphql_ws_protocol_has_the_same_caps(capped: Starlette) -> None:
    with TestClient(capped) as client:
        reader = token(client, capped, "reader", Scope.read)
        job_id = queued_job(client, capped)
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {reader}"}}
        with ExitStack() as sockets:
            for answer in ("connection_ack", "connection_ack", "connection_error"):
                ws = sockets.enter_context(
                    client.websocket_connect("/graphql", subprotocols=["graphql-ws"])
                )
                ws.send_text(json.dumps(init))
                refused = receive(ws)
                assert refused["type"] == answer
            assert refused["payload"]["extensions"]["code"] == "TOO_MANY_REQUESTS"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4429
        with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
            ws.send_text(json.dumps(init))
            assert receive(ws)["type"] == "connection_ack"
            payload = {"query": FOLLOW, "variables": {"id": job_id}}
            for number in range(4):
                ws.send_text(json.dumps({"id": str(number), "type": "start", "payload": payload}))
            messages = [receive(ws) for _ in range(4)]
            (error,) = [message for message in messages if message["type"] == "error"]
            assert error["id"] == "3"
            assert error["payload"]["extensions"]["code"] == "TOO_MANY_REQUESTS"


def test_with_auth_off_the_caps_go_by_client_address(settings: Settings, mongodb_url: str) -> None:
    app = create_app(
        settings.model_copy(update={"auth": "off", "max_ws_connections_per_token": 1}),
        mongodb_url=mongodb_url,
    )
    init = json.dumps({"type": "connection_init", "payload": {}})
    # With auth off, only a loopback Host is let in.
    with (
        TestClient(app) as client,
        client.websocket_connect(LOOPBACK, subprotocols=["graphql-transport-ws"]) as ws,
    ):
        ws.send_text(init)
        assert receive(ws)["type"] == "connection_ack"
        with client.websocket_connect(LOOPBACK, subprotocols=["graphql-transport-ws"]) as second:
            second.send_text(init)
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_text()
        assert closed.value.code == 4429
        assert closed.value.reason.startswith("client testclient has 1 WebSocket connections")


@pytest.mark.parametrize("protocol", ["graphql-ws", "graphql-transport-ws"])
def test_a_connection_that_never_says_who_it_is_is_closed(
    settings: Settings, mongodb_url: str, protocol: str
) -> None:
    """On the older protocol a connection that never sent connection_init stayed open for
    good, outside the caps (they are taken at init): a thousand were held that way."""
    app = hub(settings, mongodb_url, ws_connection_init_timeout_s=0.2)
    with (
        TestClient(app) as client,
        client.websocket_connect("/graphql", subprotocols=[protocol]) as ws,
    ):
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4408
