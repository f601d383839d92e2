"""Access: every operation needs a token with the right scope; revocation is immediate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PREFLIGHT, REGISTER, Api, model_input, multipart, serving
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.core.identity import Scope
from modelci.schema import schema
from modelci.server.app import create_app
from modelci.server.settings import Settings


@pytest.fixture
def secured(settings: Settings, mongodb_url: str) -> Starlette:
    return create_app(settings.model_copy(update={"auth": "on"}), mongodb_url=mongodb_url)


@pytest.fixture
async def hub(secured: Starlette) -> AsyncIterator[tuple[Api, dict[str, str]]]:
    """The secured app, and a token for each scope."""
    async with serving(secured) as api:
        store = secured.state.services.tokens
        tokens = {
            scope.value: (await store.create(f"{scope.value}-token", [scope]))[1] for scope in Scope
        }
        yield api, tokens


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def post(api: Api, query: str, token: str | None, variables: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    headers = bearer(token) if token else {}
    return await api.http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


def root_fields(kind: str) -> list[str]:
    """The GraphQL names of the root fields of a kind (``claimProfilingJob``, …)."""
    root = {"query": schema._schema.query_type, "mutation": schema._schema.mutation_type}[kind]
    assert root is not None
    return list(root.fields)


async def test_no_token_no_access(hub: tuple[Api, dict[str, str]]) -> None:
    api, _ = hub
    for kind in ("query", "mutation"):
        for field in root_fields(kind):
            response = await post(api, f"{kind} {{ {field} }}", None)
            assert response.status_code == 401, field
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "UNAUTHENTICATED"
            assert field not in error["message"]  # no hint of what exists
    for bad in ("Bearer nonsense", "Bearer mci_0123456789abcdef01234567_" + "x" * 43, "Basic abc"):
        response = await api.http.post(
            "/graphql", json={"query": "{ devices { host } }"}, headers={"authorization": bad}
        )
        assert response.status_code == 401
    download = await api.http.get("/models/0123456789abcdef01234567/weight")
    assert download.status_code == 401
    introspection = await post(api, "{ __schema { types { name } } }", None)
    assert introspection.status_code == 401
    assert (await api.http.get("/healthz")).status_code == 200
    page = await api.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200  # the GraphiQL page itself; its requests need a token


async def test_scopes(hub: tuple[Api, dict[str, str]]) -> None:
    api, tokens = hub
    worker_fields = {
        "claimProfilingJob",
        "heartbeatProfilingJob",
        "finishProfilingJob",
        "releaseProfilingJob",
        "recordProfilingSweep",
        "registerConvertedModel",
    }
    admin_fields = {
        "createApiToken",
        "revokeApiToken",
        "apiTokens",
        "createWebhook",
        "updateWebhook",
        "deleteWebhook",
        "testWebhook",
        "webhooks",
        "webhookDeliveries",
    }
    for field in root_fields("mutation"):
        # A read token may not even learn whether the mutation is well formed.
        response = await post(api, f"mutation {{ {field} }}", tokens["read"])
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN", field
        body = (await post(api, f"mutation {{ {field} }}", tokens["write"])).json()
        code = body["errors"][0]["extensions"]["code"]
        expected = "FORBIDDEN" if field in worker_fields | admin_fields else "BAD_USER_INPUT"
        assert code == expected, (field, body)
        body = (await post(api, f"mutation {{ {field} }}", tokens["worker"])).json()
        code = body["errors"][0]["extensions"]["code"]
        assert code == ("FORBIDDEN" if field in admin_fields else "BAD_USER_INPUT"), field
        body = (await post(api, f"mutation {{ {field} }}", tokens["admin"])).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", field

    ok = await post(
        api, "{ models { nodes { id } } __schema { queryType { name } } }", tokens["read"]
    )
    assert ok.status_code == 200 and "errors" not in ok.json()
    forbidden = await post(api, "{ apiTokens { name } }", tokens["write"])
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Aliases and fragments do not smuggle a field past the check.
    sneaky = "query { ...F } fragment F on Query { t: apiTokens { name } }"
    forbidden = await post(api, sneaky, tokens["write"])
    assert forbidden.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Writing with a write token works; the weight download needs read.
    request = multipart(REGISTER, {"input": model_input()}, {"weight": ("m", b"bytes")})
    response = await api.http.post(
        "/graphql", headers={**PREFLIGHT, **bearer(tokens["write"])}, **request
    )
    model_id = response.json()["data"]["registerModel"]["id"]
    download = await api.http.get(f"/models/{model_id}/weight", headers=bearer(tokens["read"]))
    assert download.content == b"bytes"


async def test_revoked_tokens_stop_working_at_once(hub: tuple[Api, dict[str, str]]) -> None:
    api, tokens = hub
    created = await post(
        api,
        'mutation { createApiToken(name: "ci", scopes: [write]) { token apiToken { id } } }',
        tokens["admin"],
    )
    secret = created.json()["data"]["createApiToken"]["token"]
    assert (await post(api, "{ devices { host } }", secret)).status_code == 200
    listed = await post(api, "{ apiTokens { name revoked } }", tokens["admin"])
    names = {t["name"]: t["revoked"] for t in listed.json()["data"]["apiTokens"]}
    assert names["ci"] is False
    assert secret not in listed.text  # secrets are never shown again

    revoke = await post(
        api, 'mutation { revokeApiToken(idOrName: "ci") { revoked } }', tokens["admin"]
    )
    assert revoke.json()["data"]["revokeApiToken"] == [{"revoked": True}]
    assert (await post(api, "{ devices { host } }", secret)).status_code == 401


def test_subscriptions_need_a_token_in_connection_init(secured: Starlette) -> None:
    with TestClient(secured) as client:
        store = secured.state.services.tokens
        token = client.portal.call(store.create, "reader", [Scope.read])[1]  # type: ignore[union-attr]
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": 'subscription { profilingJob(id: "0123456789abcdef01234567") { status } }'
            },
        }
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_text(json.dumps({"type": "connection_init", "payload": {}}))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert closed.value.code == 4403
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_text(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            assert json.loads(ws.receive_text())["type"] == "connection_ack"
            ws.send_text(json.dumps(subscribe))
            message = json.loads(ws.receive_text())
            errors = (
                message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            )
            assert errors[0]["extensions"]["code"] == "NOT_FOUND"


def test_token_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli,
        # --init: a data dir no hub has used yet
        [
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            "--data-dir",
            str(tmp_path),
            "--init",
        ],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert secret.startswith("mci_")
    listed = runner.invoke(cli, ["token", "list", "--data-dir", str(tmp_path)])
    assert "ci" in listed.stdout and "write" in listed.stdout and "live" in listed.stdout
    assert secret not in listed.stdout
    revoked = runner.invoke(cli, ["token", "revoke", "ci", "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    listed = runner.invoke(cli, ["token", "list", "--data-dir", str(tmp_path)])
    assert "revoked" in listed.stdout
    missing = runner.invoke(cli, ["token", "revoke", "nobody", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1


def test_no_auth_only_on_loopback() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--no-auth"])
    assert result.exit_code == 2
    assert "loopback" in result.output
    assert Settings(host="0.0.0.0").auth_enabled()
    assert not Settings(host="127.0.0.1").auth_enabled()
