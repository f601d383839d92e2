"""Registry events and webhooks: what happened, who did it, and who is told.

An event is written in the same database write as the change it describes (the
server's outbox, ``modelci.server.outbox``), so an acknowledged change always has its
event. Event types are dotted lowercase names, MLflow's where they match:

=====================  ===============================================================
``model.registered``   a model or a converted variant was stored
``model.updated``      a model's fields (or its weight) changed; ``data.fields`` names them
``model.deleted``      a model was deleted (one event per model a cascade deletes)
``tag.set``            a tag was set on a model (``data.key``, ``data.value``)
``tag.deleted``        a tag was removed from a model (``data.key``)
``alias.set``          an alias was pointed at a model (``data.alias``)
``alias.deleted``      an alias was removed, by hand or with its model (``data.alias``)
``profile.added``      a static or dynamic profiling result was recorded (``data.kind``)
``job.finished``       a job ended: SUCCEEDED, FAILED or CANCELLED (``data.status``)
``webhook.test``       sent only by ``testWebhook``, to one webhook
=====================  ===============================================================

``WebhookService`` holds the rules of webhooks (which URLs, which events, the secret);
storing and delivering them is the server's (``modelci.server.webhooks``).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import datetime
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import Field

from .domain import Domain, utcnow
from .errors import BadUserInput, Conflict


class EventType(Enum):
    MODEL_REGISTERED = "model.registered"
    MODEL_UPDATED = "model.updated"
    MODEL_DELETED = "model.deleted"
    TAG_SET = "tag.set"
    TAG_DELETED = "tag.deleted"
    ALIAS_SET = "alias.set"
    ALIAS_DELETED = "alias.deleted"
    PROFILE_ADDED = "profile.added"
    JOB_FINISHED = "job.finished"
    WEBHOOK_TEST = "webhook.test"


# What a webhook may subscribe to: every type but the test delivery's, which is sent to
# the webhook tested whatever it subscribes to.
SUBSCRIBABLE = tuple(kind for kind in EventType if kind is not EventType.WEBHOOK_TEST)


class RegistryEvent(Domain):
    """One change of the registry. ``data`` is small and JSON: what the type says it
    holds (see the module)."""

    id: str
    type: EventType
    time: datetime
    model_id: str | None = None
    model_name: str | None = None  # the model's architecture
    model_version: int | None = None
    actor: str | None = None  # the token's name; None: the hub itself (a lease ran out)
    data: dict[str, Any] = Field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The event as a webhook's JSON body (and the API's field names)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "modelId": self.model_id,
            "modelName": self.model_name,
            "modelVersion": self.model_version,
            "actor": self.actor,
            "data": self.data,
        }


PROCESS_MARK = secrets.token_hex(5)
event_counter = itertools.count(secrets.randbelow(1 << 24))


def next_event_id() -> str:
    """24 hex digits as an ObjectId's: the second, this process's mark, a counter; so
    ids made in one process sort in the order they were made."""
    return f"{int(time.time()):08x}{PROCESS_MARK}{next(event_counter) % (1 << 24):06x}"


# Who acts: the token name of the operation running, set once per GraphQL operation
# (``modelci.schema.api``) and read where an event is made, so that no repository
# method needs the caller passed down.
current_actor: ContextVar[str | None] = ContextVar("modelci_actor", default=None)


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    token = current_actor.set(actor)
    try:
        yield
    finally:
        # A subscription's operation may end in another context than it began in.
        with suppress(ValueError):
            current_actor.reset(token)


def new_event(
    type: EventType,
    model_id: str | None,
    model_name: str | None = None,
    model_version: int | None = None,
    **data: Any,
) -> RegistryEvent:
    """An event now, by the current actor, with a fresh id (``next_event_id``)."""
    return RegistryEvent(
        id=next_event_id(),
        type=type,
        time=utcnow(),
        model_id=model_id,
        model_name=model_name,
        model_version=model_version,
        actor=current_actor.get(),
        data={key: value for key, value in data.items() if value is not None},
    )


# Webhooks


class DeliveryStatus(Enum):
    PENDING = "PENDING"  # waiting for its first attempt or its next one
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    FAILED = "FAILED"  # every attempt failed (or the webhook's URL is not allowed)


class Webhook(Domain):
    id: str
    url: str
    events: list[EventType]
    active: bool = True
    created_by: str | None = None
    create_time: datetime
    update_time: datetime


class WebhookDelivery(Domain):
    """One event's delivery to one webhook, with its attempts so far."""

    id: str
    webhook_id: str
    event_id: str
    event_type: EventType
    status: DeliveryStatus
    attempts: int
    max_attempts: int
    response_code: int | None = None
    error: str | None = None
    create_time: datetime
    last_attempt_time: datetime | None = None
    next_attempt_time: datetime | None = None
    delivered_time: datetime | None = None


MAX_WEBHOOKS = 100
MAX_URL_LENGTH = 2048
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
MAX_DELIVERIES_LISTED = 200


def checked_url(url: str, allowed_hosts: frozenset[str]) -> str:
    """An http(s) URL with a host, of an allowed host when the hub lists some
    (``MODELCI_WEBHOOK_HOSTS``); anything else is BAD_USER_INPUT."""
    if len(url) > MAX_URL_LENGTH:
        raise BadUserInput(f"url: at most {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError as error:
        raise BadUserInput(f"url: {url[:200]!r} is not a URL ({error})", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise BadUserInput(
            f"url: a webhook is an http:// or https:// URL, not {parts.scheme or 'none'}:",
            field="url",
        )
    if not host:
        raise BadUserInput(f"url: {url[:200]!r} names no host", field="url")
    if allowed_hosts and host.lower() not in allowed_hosts:
        raise BadUserInput(
            f"url: the host {host!r} is not one this hub sends webhooks to "
            f"(MODELCI_WEBHOOK_HOSTS: {', '.join(sorted(allowed_hosts))})",
            field="url",
        )
    return url


def checked_events(events: list[EventType]) -> list[EventType]:
    if not events:
        raise BadUserInput("events: give one event type or more", field="events")
    if EventType.WEBHOOK_TEST in events:
        raise BadUserInput(
            "events: webhook.test is sent by testWebhook only; subscribe to the others",
            field="events",
        )
    return sorted(set(events), key=lambda kind: SUBSCRIBABLE.index(kind))


def checked_secret(secret: str | None) -> str:
    """The secret given, or a new one (shown once, at creation)."""
    if secret is None:
        return secrets.token_urlsafe(32)
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise BadUserInput(
            f"secret: {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters, or none for "
            "the hub to make one",
            field="secret",
        )
    return secret


class EventStream(Protocol):
    """Registry events as they are published (the server's outbox publishes them)."""

    def follow(
        self, types: list[EventType] | None, model_id: str | None, since: datetime | None
    ) -> AsyncIterator[RegistryEvent]:
        """The events of ``types`` (None: all) and of one model (None: any) that happen
        from ``since`` on (None: now; earlier ones are read from the log first), until
        the caller stops; one that falls too far behind is ended with TOO_MANY_REQUESTS
        rather than skipping events silently."""
        ...

    def written(self) -> None:
        """A change was written in this process: publish its events now, not at the
        next poll."""
        ...


class WebhookStore(Protocol):
    """Webhooks and their deliveries (the rules are ``events.WebhookService``'s)."""

    async def all(self) -> list[Webhook]: ...

    async def get(self, webhook_id: str) -> Webhook: ...

    async def create(
        self, url: str, events: list[EventType], secret: str, created_by: str | None
    ) -> Webhook: ...

    async def update(self, webhook_id: str, changes: dict[str, Any]) -> Webhook: ...

    async def delete(self, webhook_id: str) -> Webhook: ...

    async def deliver_now(self, webhook: Webhook, event: RegistryEvent) -> WebhookDelivery:
        """One attempt, now, recorded in the webhook's delivery log."""
        ...

    async def deliveries(
        self, webhook_id: str, first: int, status: DeliveryStatus | None
    ) -> list[WebhookDelivery]:
        """The webhook's deliveries, newest first."""
        ...


class WebhookService:
    """Webhooks' rules, over their store: an admin's act each (the schema's scope)."""

    def __init__(self, store: WebhookStore, allowed_hosts: frozenset[str]) -> None:
        self.store = store
        self.allowed_hosts = frozenset(host.lower() for host in allowed_hosts)

    async def create(
        self, url: str, events: list[EventType], secret: str | None
    ) -> tuple[Webhook, str]:
        """The webhook and its secret (to show once)."""
        checked_url(url, self.allowed_hosts)
        wanted = checked_events(events)
        secret = checked_secret(secret)
        if len(await self.store.all()) >= MAX_WEBHOOKS:
            raise Conflict(
                f"the hub has {MAX_WEBHOOKS} webhooks, the most it keeps; delete some first"
            )
        webhook = await self.store.create(url, wanted, secret, current_actor.get())
        return webhook, secret

    async def update(
        self,
        webhook_id: str,
        url: str | None,
        events: list[EventType] | None,
        active: bool | None,
        secret: str | None,
    ) -> Webhook:
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = checked_url(url, self.allowed_hosts)
        if events is not None:
            changes["events"] = checked_events(events)
        if active is not None:
            changes["active"] = active
        if secret is not None:
            changes["secret"] = checked_secret(secret)
        return await self.store.update(webhook_id, changes)

    async def delete(self, webhook_id: str) -> Webhook:
        return await self.store.delete(webhook_id)

    async def test(self, webhook_id: str) -> WebhookDelivery:
        """One delivery of a ``webhook.test`` event, attempted once, now."""
        webhook = await self.store.get(webhook_id)
        checked_url(webhook.url, self.allowed_hosts)
        event = new_event(EventType.WEBHOOK_TEST, None, webhookId=webhook.id)
        return await self.store.deliver_now(webhook, event)

    async def deliveries(
        self, webhook_id: str, first: int, status: DeliveryStatus | None
    ) -> list[WebhookDelivery]:
        if not 1 <= first <= MAX_DELIVERIES_LISTED:
            raise BadUserInput(f"first: between 1 and {MAX_DELIVERIES_LISTED}", field="first")
        await self.store.get(webhook_id)  # NOT_FOUND first
        return await self.store.deliveries(webhook_id, first, status)
