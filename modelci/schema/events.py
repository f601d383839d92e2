"""Registry events and webhooks over GraphQL: the ``registryEvents`` subscription (read
scope) and the webhooks' queries and mutations (admin scope). The rules are
``core.registry_events.WebhookService``'s; the resolvers turn arguments into its calls."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic
from strawberry.scalars import JSON

from modelci.core import registry_events as events
from modelci.core.errors import HubError
from modelci.core.identity import Scope
from modelci.core.registry_events import DeliveryStatus, EventType, WebhookService

from .context import HubInfo
from .permissions import needs

strawberry.enum(
    EventType,
    name="RegistryEventType",
    description="What happened; in a webhook's JSON body and its X-ModelCI-Event header "
    "as the dotted lowercase name (MODEL_REGISTERED is model.registered, TAG_SET is "
    "tag.set, …).",
)
strawberry.enum(
    DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING: waiting for an attempt; DELIVERED: the receiver answered 2xx; "
    "FAILED: every attempt failed, or the URL is not one the hub may send to.",
)


@strawberry_pydantic.type(
    model=events.RegistryEvent,
    description="One change of the registry: its type, when, the model it concerns (its "
    "id, name and version), who made it (a token's name; null: the hub itself) and a "
    "small JSON payload (data) that the type defines.",
)
class RegistryEvent:
    id: strawberry.ID
    type: strawberry.auto
    time: strawberry.auto
    model_id: strawberry.ID | None
    model_name: strawberry.auto
    model_version: strawberry.auto
    actor: strawberry.auto
    data: JSON


@strawberry_pydantic.type(
    model=events.Webhook,
    description="Where the hub POSTs the events of the types listed, signed with the "
    "webhook's secret (never shown after creation).",
)
class Webhook:
    id: strawberry.ID
    url: strawberry.auto
    events: strawberry.auto
    active: strawberry.auto
    created_by: strawberry.auto
    create_time: strawberry.auto
    update_time: strawberry.auto


@strawberry_pydantic.type(
    model=events.WebhookDelivery,
    description="One event's delivery to a webhook: its status, the attempts made, and "
    "the last attempt's response code or error.",
)
class WebhookDelivery:
    id: strawberry.ID
    webhook_id: strawberry.ID
    event_id: strawberry.ID
    event_type: strawberry.auto
    status: strawberry.auto
    attempts: strawberry.auto
    max_attempts: strawberry.auto
    response_code: strawberry.auto
    error: strawberry.auto
    create_time: strawberry.auto
    last_attempt_time: strawberry.auto
    next_attempt_time: strawberry.auto
    delivered_time: strawberry.auto


@strawberry.type
class NewWebhook:
    secret: str = strawberry.field(
        description="The secret deliveries are signed with: shown now, never again."
    )
    webhook: events.Webhook = strawberry.field(graphql_type=Webhook)


def webhooks_of(info: HubInfo) -> WebhookService:
    if info.context.webhooks is None:
        raise HubError("webhooks are not served by this hub")
    return info.context.webhooks


@strawberry.type
class EventQueries:
    @strawberry.field(
        description="Every webhook (admin).",
        metadata=needs(Scope.admin),
        graphql_type=list[Webhook],
    )
    async def webhooks(self, info: HubInfo) -> list[events.Webhook]:
        return await webhooks_of(info).store.all()

    @strawberry.field(
        description="A webhook's deliveries, newest first (admin): its delivery log.",
        metadata=needs(Scope.admin),
        graphql_type=list[WebhookDelivery],
    )
    async def webhook_deliveries(
        self,
        info: HubInfo,
        webhook_id: strawberry.ID,
        status: DeliveryStatus | None = None,
        first: int = 50,
    ) -> list[events.WebhookDelivery]:
        return await webhooks_of(info).deliveries(webhook_id, first, status)


@strawberry.type
class EventMutations:
    @strawberry.mutation(
        description="Send the events of these types to an http(s) URL, as signed JSON "
        "POSTs (admin). Without a secret the hub makes one; either way it is returned "
        "now, and never again.",
        metadata=needs(Scope.admin),
    )
    async def create_webhook(
        self,
        info: HubInfo,
        url: str,
        events: list[EventType],
        secret: str | None = None,
    ) -> NewWebhook:
        webhook, secret = await webhooks_of(info).create(url, events, secret)
        return NewWebhook(secret=secret, webhook=webhook)

    @strawberry.mutation(
        description="Change a webhook's URL, event types, secret or whether it is active "
        "(admin); what is not given stays. An inactive webhook is sent nothing (events "
        "while it is inactive are not kept for it).",
        metadata=needs(Scope.admin),
        graphql_type=Webhook,
    )
    async def update_webhook(
        self,
        info: HubInfo,
        id: strawberry.ID,
        url: str | None = None,
        events: list[EventType] | None = None,
        active: bool | None = None,
        secret: str | None = None,
    ) -> events.Webhook:
        return await webhooks_of(info).update(id, url, events, active, secret)

    @strawberry.mutation(
        description="Delete a webhook and its delivery log (admin).",
        metadata=needs(Scope.admin),
        graphql_type=Webhook,
    )
    async def delete_webhook(self, info: HubInfo, id: strawberry.ID) -> events.Webhook:
        return await webhooks_of(info).delete(id)

    @strawberry.mutation(
        description="Send a webhook.test event to the webhook now, once, and answer how "
        "it went (admin); recorded in its delivery log.",
        metadata=needs(Scope.admin),
        graphql_type=WebhookDelivery,
    )
    async def test_webhook(self, info: HubInfo, id: strawberry.ID) -> events.WebhookDelivery:
        return await webhooks_of(info).test(id)


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        description="Registry events as they happen, of these types (default: all) and "
        "of one model (default: any). With since, the events from that time on are sent "
        "from the log first (kept MODELCI_EVENTS_KEPT_DAYS), so a client that reconnects "
        "misses nothing; without, those from now on. A subscriber that falls 1000 "
        "events behind is ended with TOO_MANY_REQUESTS rather than skip any.",
        metadata=needs(Scope.read),
    )
    async def registry_events(
        self,
        info: HubInfo,
        types: list[EventType] | None = None,
        model_id: strawberry.ID | None = None,
        since: datetime | None = None,
    ) -> AsyncGenerator[RegistryEvent, None]:
        if info.context.events is None:
            raise HubError("registry events are not served by this hub")
        async for event in info.context.events.follow(types, model_id, since):
            yield event  # type: ignore[misc]
