"""Webhooks: configured by admins through the API and the Python client, delivered to a
real HTTP receiver on loopback that checks each signature; failed attempts retried with
backoff, then FAILED; a receiver that blocks holds up no other webhook; and a receiver
and a hub both killed mid-delivery, then restarted, lose no event and acknowledge none
twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import PREFLIGHT, REGISTER, model_input, modelci_serve, multipart, register_live
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelci.client import ModelHub
from modelci.core.errors import BadUserInput
from modelci.core.identity import Scope
from modelci.server.app import create_app
from modelci.server.embedded import free_port
from modelci.server.settings import Settings

SECRET = "a-secret-of-the-receiver-0123456789"
CREATE = """mutation($url: String!, $events: [RegistryEventType!]!, $secret: String) {
  createWebhook(url: $url, events: $events, secret: $secret) {
    secret webhook { id url events active createdBy }
  }
}"""
DELIVERIES = """query($id: ID!) {
  webhookDeliveries(webhookId: $id) {
    id eventId eventType status attempts maxAttempts responseCode error deliveredTime
  }
}"""
TEST = "mutation($id: ID!) { testWebhook(id: $id) { eventType status attempts responseCode } }"
WAIT_S = 120  # a bound on waiting for a condition, never a synchronisation


class Receiver:
    """A webhook receiver on loopback: checks each delivery's signature and records it.

    ``answer`` decides each request's status from the event (None: hold the request
    until ``release``, answering 200 then, or closing it unanswered if ``drop``)."""

    def __init__(self, secret: str = SECRET, port: int = 0) -> None:
        self.secret = secret
        self.requests: list[dict[str, Any]] = []  # every request, in arrival order
        self.acknowledged: Counter[str] = Counter()  # event id: answers 2xx sent
        self.changed = threading.Condition()
        self.answer: Callable[[dict[str, Any]], int | None] = lambda event: 200
        self.released = threading.Event()
        self.dropped = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-ModelCI-Timestamp"]
                expected = hmac.new(
                    receiver.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                event = json.loads(body)
                with receiver.changed:
                    receiver.requests.append(
                        {
                            "event": event,
                            "headers": dict(self.headers),
                            "signed": hmac.compare_digest(
                                "sha256=" + expected, self.headers["X-ModelCI-Signature"]
                            ),
                        }
                    )
                    receiver.changed.notify_all()
                status = receiver.answer(event)
                if status is None:
                    receiver.released.wait(WAIT_S)
                    if receiver.dropped:  # killed mid-delivery: no answer at all
                        self.close_connection = True
                        return
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if 200 <= status < 300:
                    with receiver.changed:
                        receiver.acknowledged[event["id"]] += 1
                        receiver.changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        with self.changed:
            assert self.changed.wait_for(condition, WAIT_S), f"never: {what}"

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            request["event"]
            for request in self.requests
            if type_ is None or request["event"]["type"] == type_
        ]

    def kill(self) -> None:
        """Stopped while holding requests: those are closed unanswered."""
        self.dropped = True
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.released.set()
        receiver.server.shutdown()
        receiver.server.server_close()


def receiver(made: list[Receiver], **options: Any) -> Receiver:
    made.append(Receiver(**options))
    return made[-1]


def secured(settings: Settings, mongodb_url: str, **more: Any) -> Starlette:
    update = {"auth": "on", "webhook_backoff_s": 0.05, "events_poll_s": 0.2, **more}
    return create_app(settings.model_copy(update=update), mongodb_url=mongodb_url)


@pytest.fixture
def app(settings: Settings, mongodb_url: str) -> Starlette:
    return secured(settings, mongodb_url)


def token(client: TestClient, app: Starlette, name: str, scope: Scope) -> str:
    secret: str = client.portal.call(app.state.services.tokens.create, name, [scope])[1]  # type: ignore[union-attr]
    return secret


def post(client: TestClient, caller: str, query: str, **variables: Any) -> dict[str, Any]:
    answer: dict[str, Any] = client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {caller}"},
    ).json()
    return answer


def call(client: TestClient, caller: str, query: str, **variables: Any) -> dict[str, Any]:
    body = post(client, caller, query, **variables)
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def code(client: TestClient, caller: str, query: str, **variables: Any) -> str:
    body = post(client, caller, query, **variables)
    assert body.get("errors"), body
    found: str = body["errors"][0]["extensions"]["code"]
    return found


def register(client: TestClient, secret: str, **fields: Any) -> str:
    request = multipart(REGISTER, {"input": model_input(**fields)}, {"weight": ("m.bin", b"w")})
    headers = {**PREFLIGHT, "Authorization": f"Bearer {secret}"}
    body = client.post("/graphql", headers=headers, **request).json()
    assert not body.get("errors"), body
    model_id: str = body["data"]["registerModel"]["id"]
    return model_id


def create(client: TestClient, admin: str, url: str, *events: str, secret: str | None = SECRET):
    made = call(client, admin, CREATE, url=url, events=list(events), secret=secret)
    return made["createWebhook"]


def test_each_event_a_webhook_wants_is_posted_signed_and_logged(
    app: Starlette, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers)
    with TestClient(app) as client:
        admin = token(client, app, "admin", Scope.admin)
        writer = token(client, app, "ci-bot", Scope.write)
        created = create(client, admin, hook.url, "MODEL_REGISTERED", "ALIAS_SET")
        assert created["secret"] == SECRET
        webhook = created["webhook"]
        assert webhook == {
            "id": webhook["id"],
            "url": hook.url,
            "events": ["MODEL_REGISTERED", "ALIAS_SET"],
            "active": True,
            "createdBy": "admin",
        }
        model_id = register(client, writer, version=1)
        update = 'mutation($id: ID!) { updateModel(id: $id, input: {creator: "x"}) { id } }'
        call(client, writer, update, id=model_id)  # not an event it wants
        alias = 'mutation($id: ID!) { setModelAlias(alias: "prod", modelId: $id) { alias } }'
        call(client, writer, alias, id=model_id)
        hook.wait_for(lambda: len(hook.acknowledged) == 2, "both events acknowledged")

        assert [event["type"] for event in hook.events()] == ["model.registered", "alias.set"]
        assert all(request["signed"] for request in hook.requests)
        registered = hook.requests[0]
        assert registered["event"]["modelId"] == model_id
        assert registered["event"]["actor"] == "ci-bot"
        assert registered["headers"]["X-ModelCI-Event"] == "model.registered"
        assert registered["headers"]["X-ModelCI-Event-Id"] == registered["event"]["id"]
        assert registered["headers"]["Content-Type"] == "application/json"

        # One webhook's deliveries are made one after another: once a third event has
        # arrived, the outcomes of the first two are written.
        call(client, writer, alias.replace('"prod"', '"stable"'), id=model_id)
        hook.wait_for(lambda: len(hook.requests) == 3, "a third event")
        log = call(client, admin, DELIVERIES, id=webhook["id"])["webhookDeliveries"][1:]
        assert [(each["eventType"], each["status"]) for each in log] == [
            ("ALIAS_SET", "DELIVERED"),
            ("MODEL_REGISTERED", "DELIVERED"),
        ]
        assert {(each["attempts"], each["responseCode"], each["error"]) for each in log} == {
            (1, 200, None)
        }

        tested = call(client, admin, TEST, id=webhook["id"])["testWebhook"]
        assert tested == {
            "eventType": "WEBHOOK_TEST",
            "status": "DELIVERED",
            "attempts": 1,
            "responseCode": 200,
        }
        assert hook.events("webhook.test")[0]["data"] == {"webhookId": webhook["id"]}


def test_a_secret_made_by_the_hub_is_shown_once_and_signs(
    app: Starlette, receivers: list[Receiver]
) -> None:
    hook = receiver(receivers)
    with TestClient(app) as client:
        admin = token(client, app, "admin", Scope.admin)
        created = create(client, admin, hook.url, "MODEL_REGISTERED", secret=None)
        hook.secret = created["secret"]
        assert len(hook.secret) >= 32
        listed = call(client, admin, "query { webhooks { id url } }")["webhooks"]
        assert listed == [{"id": created["webhook"]["id"], "url": hook.url}]
        assert code(client, admin, "query { webhooks { secret } }") == "BAD_USER_INPUT"
        tested = call(client, admin, TEST, id=created["webhook"]["id"])["testWebhook"]
        assert tested["status"] == "DELIVERED"
        assert hook.requests[0]["signed"]


def test_webhooks_are_an_admins_and_take_http_urls_only(
    settings: Settings, mongodb_url: str
) -> None:
    app = secured(settings, mongodb_url, webhook_hosts="hooks.example.com, ci.internal")
    with TestClient(app) as client:
        admin = token(client, app, "admin", Scope.admin)
        writer = token(client, app, "writer", Scope.write)
        url = "https://hooks.example.com/modelci"
        variables = {"url": url, "events": ["MODEL_REGISTERED"]}
        assert code(client, writer, CREATE, **variables) == "FORBIDDEN"
        assert code(client, writer, "query { webhooks { id } }") == "FORBIDDEN"
        for bad in ("ftp://hooks.example.com/x", "file:///etc/passwd", "hooks.example.com"):
            assert code(client, admin, CREATE, **{**variables, "url": bad}) == "BAD_USER_INPUT"
        # Not a host of the allow-list: loopback included.
        for other in ("http://127.0.0.1:9/hook", "https://evil.example.org/"):
            assert code(client, admin, CREATE, **{**variables, "url": other}) == "BAD_USER_INPUT"
        assert code(client, admin, CREATE, url=url, events=[]) == "BAD_USER_INPUT"
        assert code(client, admin, CREATE, **variables, secret="short") == "BAD_USER_INPUT"
        assert call(client, admin, "query { webhooks { id } }")["webhooks"] == []  # none made
        made = call(client, admin, CREATE, **variables)["createWebhook"]["webhook"]
        assert made["url"] == url


def test_failed_attempts_are_retried_with_backoff_then_marked_failed(
    settings: Settings, mongodb_url: str, receivers: list[Receiver]
) -> None:
    app = secured(settings, mongodb_url, webhook_max_attempts=3)
    flaky, dead = receiver(receivers), receiver(receivers)
    answered: Counter[str] = Counter()

    def first_fails(event: dict[str, Any]) -> int:
        answered[event["id"]] += 1
        return 500 if answered[event["id"]] == 1 else 204

    flaky.answer = first_fails
    dead.answer = lambda event: 503
    with TestClient(app) as client:
        admin = token(client, app, "admin", Scope.admin)
        writer = token(client, app, "writer", Scope.write)
        flaky_id = create(client, admin, flaky.url, "MODEL_REGISTERED")["webhook"]["id"]
        dead_id = create(client, admin, dead.url, "MODEL_REGISTERED")["webhook"]["id"]
        register(client, writer, version=1)
        flaky.wait_for(lambda: len(flaky.acknowledged) == 1, "the second attempt acknowledged")
        dead.wait_for(lambda: len(dead.requests) == 3, "three attempts")

        def log(webhook_id: str, index: int = 0) -> dict[str, Any]:
            deliveries: list[dict[str, Any]] = call(client, admin, DELIVERIES, id=webhook_id)[
                "webhookDeliveries"
            ]
            return deliveries[index]

        delivered = log(flaky_id)
        assert (delivered["status"], delivered["attempts"], delivered["responseCode"]) == (
            "DELIVERED",
            2,
            204,
        )
        # One webhook's deliveries are made one after another: once the next event
        # reaches the dead receiver, the outcome of the third attempt is written.
        register(client, writer, version=2)
        dead.wait_for(lambda: len(dead.requests) == 4, "the next event attempted")
        failed = log(dead_id, -1)
        assert (failed["status"], failed["attempts"], failed["maxAttempts"]) == ("FAILED", 3, 3)
        assert (failed["responseCode"], failed["error"]) == (503, "the receiver answered HTTP 503")
        assert [request["event"]["id"] for request in dead.requests[:3]] == [failed["eventId"]] * 3


def test_a_receiver_that_blocks_holds_up_no_other_webhook(
    app: Starlette, receivers: list[Receiver]
) -> None:
    slow, quick = receiver(receivers), receiver(receivers)
    slow.answer = lambda event: None  # holds every request until released
    with TestClient(app) as client:
        admin = token(client, app, "admin", Scope.admin)
        writer = token(client, app, "writer", Scope.write)
        create(client, admin, slow.url, "MODEL_REGISTERED")
        create(client, admin, quick.url, "MODEL_REGISTERED")
        registered = [register(client, writer, version=version) for version in (1, 2, 3)]
        slow.wait_for(lambda: len(slow.requests) == 1, "the slow receiver holds a request")
        # Every event reached the other webhook while the first is still held.
        quick.wait_for(lambda: len(quick.acknowledged) == 3, "the quick receiver has all")
        assert [event["modelId"] for event in quick.events()] == registered
        assert len(slow.requests) == 1 and not slow.acknowledged
        # And a request to the hub is answered meanwhile.
        listed = call(client, writer, "query { models { nodes { id } } }")["models"]["nodes"]
        assert len(listed) == 3
        slow.answer = lambda event: 200
        slow.released.set()
        slow.wait_for(lambda: len(slow.acknowledged) == 3, "the slow receiver has all")


def test_the_python_client_configures_and_follows(hub: str, receivers: list[Receiver]) -> None:
    hook = receiver(receivers)
    since = datetime.now(UTC)
    with ModelHub(hub) as api:
        created = api.create_webhook(hook.url, ["model.registered", "TAG_SET"], secret=SECRET)
        webhook_id = created.webhook.id
        assert [each.id for each in api.webhooks()] == [webhook_id]
        assert [kind.value for kind in created.webhook.events] == ["MODEL_REGISTERED", "TAG_SET"]
        with pytest.raises(BadUserInput):
            api.create_webhook("ftp://x/y", ["model.registered"])
        with pytest.raises(BadUserInput):
            api.create_webhook(hook.url, ["model.exploded"])

        model_id = register_live(hub, b"weights", "convert: false", version=7)
        hook.wait_for(lambda: len(hook.acknowledged) == 1, "the registration delivered")
        assert hook.events()[0]["modelId"] == model_id
        (delivered,) = api.webhook_deliveries(webhook_id)
        assert (delivered.status.value, delivered.response_code) == ("DELIVERED", 200)
        assert api.test_webhook(webhook_id).status.value == "DELIVERED"
        assert len(api.webhook_deliveries(webhook_id, status="DELIVERED")) == 2

        paused = api.update_webhook(webhook_id, active=False)
        assert not paused.active
        events = api.events(types=["model.registered"], since=since)
        event = next(events)
        assert (event["type"], event["modelId"], event["modelVersion"]) == (
            "MODEL_REGISTERED",
            model_id,
            7,
        )
        events.close()
        assert api.delete_webhook(webhook_id).id == webhook_id
        assert api.webhooks() == []


def test_a_receiver_and_a_hub_killed_mid_delivery_lose_no_event_and_repeat_none(
    tmp_path: Path,
) -> None:
    """The hub is killed (SIGKILL) while a delivery is held by the receiver, which is
    killed too; both start again: every event is delivered, and no event was answered
    2xx twice (a delivery is sent again only when its receiver never answered it)."""
    port, hook_port = free_port(), free_port()
    settings = {"workers": "0", "webhook_timeout_s": "2", "webhook_backoff_s": "0.2"}
    settings["events_poll_s"] = "0.2"
    first = Receiver(port=hook_port)
    registered: list[str] = []
    try:
        with modelci_serve(tmp_path, port, **settings) as (hub, server):
            with ModelHub(hub) as api:
                api.create_webhook(first.url, ["model.registered"], secret=SECRET)
            registered.append(register_live(hub, b"one", "convert: false", version=1))
            first.wait_for(lambda: len(first.acknowledged) == 1, "the first delivered")
            first.answer = lambda event: None  # from now on: held, mid-delivery
            registered += [
                register_live(hub, content, "convert: false", version=version)
                for version, content in ((2, b"two"), (3, b"three"))
            ]
            first.wait_for(lambda: len(first.requests) == 2, "a delivery held")
            everything = [server, *server.children(recursive=True)]
            for process in everything:  # as the OOM killer would
                process.kill()
            server.wait(30)
        first.kill()
    finally:
        first.released.set()

    second = Receiver(port=hook_port)
    try:
        with modelci_serve(tmp_path, port, **settings) as (hub, _):
            registered.append(register_live(hub, b"four", "convert: false", version=4))
            second.wait_for(lambda: len(second.acknowledged) == 3, "the rest delivered")
            with ModelHub(hub) as api:
                (webhook,) = api.webhooks()
                log = api.webhook_deliveries(webhook.id)
        acknowledged = first.acknowledged + second.acknowledged
        delivered = {
            request["event"]["modelId"]: request["event"]["id"]
            for request in first.requests + second.requests
        }
        assert set(delivered) == set(registered)
        assert all(acknowledged[delivered[model_id]] == 1 for model_id in registered), acknowledged
        assert all(request["signed"] for request in first.requests + second.requests)
        assert sorted(each.status.value for each in log) == ["DELIVERED"] * 4
        # The held one was attempted again after the restart: its attempts say so.
        held = next(each for each in log if each.event_id == first.requests[1]["event"]["id"])
        assert held.attempts == 2
    finally:
        second.released.set()
        second.server.shutdown()
        second.server.server_close()
