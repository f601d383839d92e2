"""Tokens over WebSockets: a connection lives as long as its token, and a refusal is an error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.settings import Settings

MINT = 'mutation { createApiToken(name: "minted", scopes: [admin]) { token } }'


@pytest.fixture
def secured(settings: Settings, mongodb_url: str) -> Starlette:
    return create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)


def operation(ws: Any, number: int, query: str) -> dict[str, Any]:
    """Run one operation over graphql-transport-ws; its first message back."""
    ws.send_text(json.dumps({"id": str(number), "type": "subscribe", "payload": {"query": query}}))
    return dict(json.loads(ws.receive_text()))


def connect(ws: Any, token: str) -> None:
    ws.send_text(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(ws.receive_text())["type"] == "connection_ack"


def test_a_revoked_token_stops_working_on_its_open_websocket(secured: Starlette) -> None:
    with TestClient(secured) as client:
        store = secured.state.services.tokens
        record, admin = client.portal.call(store.create, "admin", [Scope.admin])  # type: ignore[union-attr]
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            connect(ws, admin)
            first = operation(ws, 1, MINT)
            assert first["type"] == "next" and first["payload"]["data"]["createApiToken"]["token"]
            assert json.loads(ws.receive_text()) == {"id": "1", "type": "complete"}
            client.portal.call(store.revoke, record.id)  # type: ignore[union-attr]
            refused = operation(ws, 2, MINT)
            assert refused["type"] == "error", refused
            assert refused["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "no longer valid" in refused["payload"][0]["message"]
        minted = client.portal.call(store.list_all)  # type: ignore[union-attr]
        assert [token.name for token in minted].count("minted") == 1


def test_a_scope_refusal_over_websocket_is_an_error_message(secured: Starlette) -> None:
    with TestClient(secured) as client:
        store = secured.state.services.tokens
        _, reader = client.portal.call(store.create, "reader", [Scope.read])  # type: ignore[union-attr]
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            connect(ws, reader)
            refused = operation(ws, 1, MINT)
            assert refused["type"] == "error", refused
            (error,) = refused["payload"]
            assert error["extensions"]["code"] == "FORBIDDEN"
            assert error["message"] == "this token lacks the scope admin"
            # The connection goes on: the next operation it may run, runs.
            answer = operation(ws, 2, "{ devices { host } }")
            assert answer == {"id": "2", "type": "next", "payload": {"data": {"devices": []}}}
