"""Webhooks over MongoDB, and their delivery (``core.registry_events.WebhookStore``).

A webhook's document holds its URL, the event types it wants and its secret (kept as
given: the hub signs with it, so it cannot keep only a hash; the API never shows it
after creation). Each published event a webhook wants becomes a delivery document
(``enqueue``, called by the outbox's ``Relay``; one per event and webhook, so a second
publication of an event makes none).

Delivery: each webhook has a task of its own in each server process, which takes its
webhook's deliveries that are due, oldest first, one at a time: a slow or dead receiver
holds up its own webhook only, never another webhook or a request. Taking one is one
atomic write that counts the attempt and moves its next attempt past the request's
timeout, so a hub that dies mid-request leaves it due again then, to be resumed by the
next hub (at least once across restarts). The request is a JSON POST signed with
HMAC-SHA256 (``signed_headers``) and bounded by ``timeout_s`` from connecting to the
answer's status (its body is not read). A 2xx answer delivers it; anything else is
retried after ``backoff_s`` doubled per attempt (at most ``max_backoff_s``) until
``max_attempts``, then it is FAILED with the last status code or error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from modelci.core.domain import utcnow
from modelci.core.errors import BadUserInput, NotFound
from modelci.core.registry_events import (
    DeliveryStatus,
    EventType,
    RegistryEvent,
    Webhook,
    WebhookDelivery,
    checked_url,
)

from .outbox import ensure_kept, insert_new
from .storage import object_id
from .waiting import cancelled, woken_or_timed_out

logger = logging.getLogger("modelci.server.webhooks")

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"

# The headers of a delivery (README: "Events and webhooks").
SIGNATURE_HEADER = "X-ModelCI-Signature"
TIMESTAMP_HEADER = "X-ModelCI-Timestamp"
EVENT_HEADER = "X-ModelCI-Event"
EVENT_ID_HEADER = "X-ModelCI-Event-Id"
DELIVERY_HEADER = "X-ModelCI-Delivery"
USER_AGENT = "ModelCI-Hub-Webhooks"

# Past the request's timeout, how long a taken delivery stays with its taker before it
# is due again (the taker died mid-request).
LEASE_MARGIN = timedelta(seconds=5)
MAX_ERROR = 1024

DELIVERY_INDEXES = [
    IndexModel([("webhook_id", ASCENDING), ("event_id", ASCENDING)], unique=True, name="once"),
    IndexModel(
        [("webhook_id", ASCENDING), ("status", ASCENDING), ("next_attempt_at", ASCENDING)],
        name="due",
    ),
    IndexModel([("webhook_id", ASCENDING), ("_id", DESCENDING)], name="log"),
]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(secret: str, delivery: dict[str, Any], body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: delivery["event_type"],
        EVENT_ID_HEADER: delivery["event_id"],
        DELIVERY_HEADER: str(delivery["_id"]),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def webhook_from(document: dict[str, Any]) -> Webhook:
    return Webhook(
        id=str(document["_id"]),
        url=document["url"],
        events=[EventType(each) for each in document["events"]],
        active=document.get("active", True),
        created_by=document.get("created_by"),
        create_time=document["create_time"],
        update_time=document["update_time"],
    )


def delivery_from(document: dict[str, Any]) -> WebhookDelivery:
    pending = document["status"] == DeliveryStatus.PENDING.value
    return WebhookDelivery(
        id=str(document["_id"]),
        webhook_id=document["webhook_id"],
        event_id=document["event_id"],
        event_type=EventType(document["event_type"]),
        status=DeliveryStatus(document["status"]),
        attempts=document["attempts"],
        max_attempts=document["max_attempts"],
        response_code=document.get("response_code"),
        error=document.get("error"),
        create_time=document["create_time"],
        last_attempt_time=document.get("last_attempt_at"),
        next_attempt_time=document.get("next_attempt_at") if pending else None,
        delivered_time=document.get("delivered_at"),
    )


def event_body(event: RegistryEvent) -> str:
    return json.dumps(event.body(), separators=(",", ":"), ensure_ascii=False)


class MongoWebhooks:
    """The webhooks' store and their deliverer (see the module): one a process."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        *,
        allowed_hosts: frozenset[str],
        timeout_s: float,
        max_attempts: int,
        backoff_s: float,
        max_backoff_s: float,
        poll_s: float,
        kept_s: float,
    ) -> None:
        self.webhooks = db[WEBHOOKS]
        self.sent = db[DELIVERIES]  # the deliveries
        self.allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.poll_s = poll_s
        self.kept_s = kept_s
        self.http: httpx.AsyncClient | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.wakes: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()  # the set of webhooks changed in this process
        self.supervisor: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        await self.sent.create_indexes(DELIVERY_INDEXES)
        await ensure_kept(self.sent, "create_time", self.kept_s)

    # The store

    async def all(self) -> list[Webhook]:
        documents = await self.webhooks.find({}).sort("_id", ASCENDING).to_list()
        return [webhook_from(document) for document in documents]

    async def get(self, webhook_id: str) -> Webhook:
        document = await self.webhooks.find_one({"_id": object_id(webhook_id, "id")})
        if document is None:
            raise NotFound(f"no webhook with id {webhook_id}")
        return webhook_from(document)

    async def create(
        self, url: str, events: list[EventType], secret: str, created_by: str | None
    ) -> Webhook:
        now = utcnow()
        document = {
            "url": url,
            "events": [kind.value for kind in events],
            "secret": secret,
            "active": True,
            "created_by": created_by,
            "create_time": now,
            "update_time": now,
        }
        await self.webhooks.insert_one(document)
        self.changed.set()
        return webhook_from(document)

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook:
        stored = dict(changes)
        if "events" in stored:
            stored["events"] = [kind.value for kind in stored["events"]]
        stored["update_time"] = utcnow()
        document = await self.webhooks.find_one_and_update(
            {"_id": object_id(webhook_id, "id")},
            {"$set": stored},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise NotFound(f"no webhook with id {webhook_id}")
        self.changed.set()
        self.wake(webhook_id)
        return webhook_from(document)

    async def delete(self, webhook_id: str) -> Webhook:
        document = await self.webhooks.find_one_and_delete({"_id": object_id(webhook_id, "id")})
        if document is None:
            raise NotFound(f"no webhook with id {webhook_id}")
        await self.sent.delete_many({"webhook_id": webhook_id})
        self.changed.set()
        return webhook_from(document)

    async def deliveries(
        self, webhook_id: str, first: int, status: DeliveryStatus | None
    ) -> list[WebhookDelivery]:
        query: dict[str, Any] = {"webhook_id": webhook_id}
        if status is not None:
            query["status"] = status.value
        cursor = self.sent.find(query, {"body": 0}).sort("_id", DESCENDING).limit(first)
        return [delivery_from(document) for document in await cursor.to_list()]

    async def deliver_now(self, webhook: Webhook, event: RegistryEvent) -> WebhookDelivery:
        now = utcnow()
        document = self.delivery(webhook.id, event, now, max_attempts=1)
        document.update(attempts=1, last_attempt_at=now, next_attempt_at=self.lease_end(now))
        await self.sent.insert_one(document)
        return await self.attempt(document)

    # Making deliveries

    def delivery(
        self, webhook_id: str, event: RegistryEvent, now: Any, max_attempts: int
    ) -> dict[str, Any]:
        return {
            "_id": ObjectId(),
            "webhook_id": webhook_id,
            "event_id": event.id,
            "event_type": event.type.value,
            "body": event_body(event),
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "max_attempts": max_attempts,
            "next_attempt_at": now,
            "last_attempt_at": None,
            "response_code": None,
            "error": None,
            "create_time": now,
            "delivered_at": None,
        }

    async def enqueue(self, events: list[RegistryEvent]) -> None:
        """A delivery of each event to each active webhook that wants it and existed when
        it happened (the outbox's ``Relay`` calls this once the events are logged)."""
        webhooks = await self.webhooks.find({"active": True}, {"secret": 0}).to_list()
        now = utcnow()
        documents = [
            self.delivery(str(webhook["_id"]), event, now, self.max_attempts)
            for event in events
            for webhook in webhooks
            if event.type.value in webhook["events"] and webhook["create_time"] <= event.time
        ]
        await insert_new(self.sent, documents)
        for webhook_id in {document["webhook_id"] for document in documents}:
            self.wake(webhook_id)

    # Delivering

    def lease_end(self, now: Any) -> Any:
        return now + timedelta(seconds=self.timeout_s) + LEASE_MARGIN

    def wake(self, webhook_id: str) -> None:
        event = self.wakes.get(webhook_id)
        if event is not None:
            event.set()

    def start(self) -> None:
        self.http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.supervisor = asyncio.create_task(self.supervise(), name="webhook deliveries")

    async def close(self) -> None:
        tasks = [self.supervisor, *self.tasks.values()]
        self.supervisor, self.tasks = None, {}
        await cancelled(*tasks)
        if self.http is not None:
            await self.http.aclose()

    async def supervise(self) -> None:
        """One task per active webhook, started and stopped as webhooks come and go."""
        while True:
            self.changed.clear()
            try:
                active = {
                    str(document["_id"])
                    async for document in self.webhooks.find({"active": True}, {"_id": 1})
                }
            except Exception:
                logger.exception("reading the webhooks failed; trying again")
                active = set(self.tasks)
            for webhook_id in set(self.tasks) - active:
                self.tasks.pop(webhook_id).cancel()
                self.wakes.pop(webhook_id, None)
            for webhook_id in active - set(self.tasks):
                self.wakes[webhook_id] = asyncio.Event()
                self.tasks[webhook_id] = asyncio.create_task(
                    self.deliver(webhook_id), name=f"webhook {webhook_id}"
                )
            await woken_or_timed_out(self.changed, self.poll_s)

    async def deliver(self, webhook_id: str) -> None:
        """The webhook's due deliveries, one at a time, for as long as it is active."""
        wake = self.wakes[webhook_id]
        while True:
            wake.clear()
            try:
                document = await self.take(webhook_id)
                if document is not None:
                    await self.attempt(document)
                    continue
                wait = await self.until_due(webhook_id)
            except Exception:
                logger.exception("delivering to webhook %s failed; trying again", webhook_id)
                wait = self.poll_s
            await woken_or_timed_out(wake, wait)

    async def take(self, webhook_id: str) -> dict[str, Any] | None:
        now = utcnow()
        document: dict[str, Any] | None = await self.sent.find_one_and_update(
            {
                "webhook_id": webhook_id,
                "status": DeliveryStatus.PENDING.value,
                "next_attempt_at": {"$lte": now},
            },
            {
                "$set": {"next_attempt_at": self.lease_end(now), "last_attempt_at": now},
                "$inc": {"attempts": 1},
            },
            sort=[("next_attempt_at", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return document

    async def until_due(self, webhook_id: str) -> float:
        """Seconds until the webhook's next delivery is due (at most the poll interval)."""
        document = await self.sent.find_one(
            {"webhook_id": webhook_id, "status": DeliveryStatus.PENDING.value},
            {"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
        )
        if document is None:
            return self.poll_s
        due = (document["next_attempt_at"] - utcnow()).total_seconds()
        return min(max(due, 0.0), self.poll_s)

    async def attempt(self, document: dict[str, Any]) -> WebhookDelivery:
        """One attempt of a taken delivery, and its outcome recorded (only if no later
        attempt was taken meanwhile)."""
        webhook = await self.webhooks.find_one({"_id": ObjectId(document["webhook_id"])})
        code: int | None = None
        error: str | None = None
        final = False
        if webhook is None:
            error, final = "the webhook was deleted", True
        else:
            try:
                checked_url(webhook["url"], self.allowed_hosts)
            except BadUserInput as refused:
                error, final = refused.message, True
            else:
                code, error = await self.post(webhook, document)
        now = utcnow()
        change: dict[str, Any] = {"response_code": code, "error": error}
        if error is None:
            change.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
        elif final or document["attempts"] >= document["max_attempts"]:
            change["status"] = DeliveryStatus.FAILED.value
        else:
            backoff = self.backoff_s * 2 ** (document["attempts"] - 1)
            change["next_attempt_at"] = now + timedelta(seconds=min(backoff, self.max_backoff_s))
        recorded = await self.sent.find_one_and_update(
            {"_id": document["_id"], "attempts": document["attempts"]},
            {"$set": change},
            projection={"body": 0},
            return_document=ReturnDocument.AFTER,
        )
        if recorded is None:  # taken again meanwhile, or deleted with its webhook
            document = {**document, **change}
            return delivery_from(document)
        return delivery_from(recorded)

    async def post(
        self, webhook: dict[str, Any], document: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """The answer's status code, and an error unless it was 2xx."""
        assert self.http is not None, "start() first"
        body = document["body"].encode()
        headers = signed_headers(webhook["secret"], document, body)
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self.http.stream(
                    "POST", webhook["url"], content=body, headers=headers, timeout=self.timeout_s
                ) as response,
            ):
                code = response.status_code
        except TimeoutError:
            return None, f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as failure:
            return None, f"{type(failure).__name__}: {failure}"[:MAX_ERROR]
        if 200 <= code < 300:
            return code, None
        return code, f"the receiver answered HTTP {code}"
