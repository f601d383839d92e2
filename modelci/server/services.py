"""What a server process holds between requests, built once at start-up: the database
client, the repositories over it, the weight store and its intake, tokens, metrics.

Here the hub's parts are chosen and wired: the weight store (files or GridFS, from the
settings) and the listing strategy (from the database, ``listing.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.requests import Request
from starlette.websockets import WebSocket

from modelci.core.registry_events import WebhookService
from modelci.core.usecases import JobService, ModelService

from .aliases import ALIASES, MongoAliasRegistry
from .device_registry import MongoDeviceRegistry
from .inspection import ModelInspector
from .intake import WeightIntake
from .job_queue import MongoJobQueue
from .job_watch import WatchLimits
from .listing import Listing, listing_for
from .metrics import Metrics
from .outbox import EVENTS, EventFeed, Relay
from .read_model import ReadModel, WriteTimes
from .reads import AliasReads, ModelReads
from .registry import MongoModelRegistry
from .settings import MiB, Settings
from .storage import DEVICES, JOBS, MODELS, TOKENS, ensure_indexes
from .token_store import TokenStore
from .uploads import UploadSlots
from .waiting import cancelled
from .webhooks import MongoWebhooks
from .weights import FileWeightStore, GridFSWeightStore, Staging, WeightStore

CLOSE_TIMEOUT_S = 5.0


@dataclass
class Services:
    """What the running app holds between requests; built at start-up."""

    client: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    weights: WeightStore
    inspector: ModelInspector
    registry: MongoModelRegistry
    jobs: MongoJobQueue
    devices: MongoDeviceRegistry
    aliases: MongoAliasRegistry
    writes: WriteTimes
    read_model: ReadModel | None
    model_reads: ModelReads | MongoModelRegistry
    alias_reads: AliasReads | MongoAliasRegistry
    tokens: TokenStore
    auth_enabled: bool
    metrics: Metrics
    uploads: UploadSlots
    watch_limits: WatchLimits
    job_service: JobService
    model_service: ModelService
    relay: Relay
    feed: EventFeed
    webhooks: MongoWebhooks
    webhook_service: WebhookService
    # The start-up collection of weight bytes no model references, under way beside
    # serving (``maintenance`` only): how many it removed.
    orphans: asyncio.Task[int] | None = None


def services_of(request: Request | WebSocket) -> Services:
    services: Services = request.app.state.services
    return services


async def prepared_database(db: AsyncDatabase[dict[str, Any]]) -> Listing:
    """The database's indexes created, and the listing strategy for it, with its own."""
    listing = await listing_for(db)
    await ensure_indexes(db)
    await MongoAliasRegistry(db[ALIASES]).ensure_indexes()
    await listing.prepare(db)
    return listing


def model_inspector(settings: Settings) -> ModelInspector:
    """The inspector every way a weight comes in uses (uploads, imports), so that each
    refuses what the others refuse."""
    return ModelInspector(
        allow_pickle=settings.allow_pickle,
        check_seconds=settings.check_seconds,
        torchscript_seconds=settings.torchscript_check_seconds,
        slots=settings.check_slots,
        slots_per_owner=settings.check_slots_per_token,
    )


def weight_store(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> WeightStore:
    """Files under the data directory, or GridFS (the default with an external MongoDB,
    so that every server and worker sees the same bytes)."""
    staging = Staging(settings.staging_dir)
    if settings.uses_gridfs():
        return GridFSWeightStore(db, staging)
    return FileWeightStore(settings.weights_dir, staging)


async def events_and_webhooks(
    settings: Settings, db: AsyncDatabase[dict[str, Any]]
) -> tuple[Relay, EventFeed, MongoWebhooks]:
    """The outbox's relay, the subscriptions' feed and the webhooks, their indexes made;
    the app starts the relay and the deliveries (``app.py``)."""
    kept_s = settings.events_kept_days * 24 * 3600
    webhooks = MongoWebhooks(
        db,
        allowed_hosts=settings.webhook_host_list(),
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_s=settings.webhook_backoff_s,
        max_backoff_s=settings.webhook_max_backoff_s,
        poll_s=settings.events_poll_s,
        kept_s=kept_s,
    )
    relay = Relay(db, [MODELS, JOBS, ALIASES], settings.events_poll_s, kept_s, [webhooks.enqueue])
    feed = EventFeed(db[EVENTS], settings.events_poll_s, relay)
    relay.published.append(feed.published)
    await relay.prepare()
    await webhooks.prepare()
    return relay, feed, webhooks


@asynccontextmanager
async def hub_services(
    settings: Settings, url: str, metrics: Metrics, *, maintenance: bool
) -> AsyncIterator[Services]:
    """The services one server process uses, open for the block.

    ``maintenance`` first clears abandoned uploads, and removes weight bytes no model
    references meanwhile (``Services.orphans``): work for one process while no other
    serves the same data directory.
    """
    writes = WriteTimes()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, event_listeners=[writes], **settings.database_client_options()
    )
    inspector: ModelInspector | None = None
    try:
        db = client[settings.database]
        listing = await prepared_database(db)
        weights = weight_store(settings, db)
        inspector = model_inspector(settings)
        intake = WeightIntake(db[MODELS], weights, inspector)
        orphans: asyncio.Task[int] | None = None
        if maintenance:
            await intake.clear_staging()
            orphans = asyncio.create_task(intake.collect_orphans(), name="orphan weights")
        registry = MongoModelRegistry(db[MODELS], intake, listing, settings.kept_models_mb * MiB)
        jobs = MongoJobQueue(
            db[JOBS],
            listing,
            default_budget_s=settings.profile_budget_s,
            watch_poll_s=settings.watch_poll_s,
        )
        devices = MongoDeviceRegistry(db[DEVICES])
        aliases = MongoAliasRegistry(db[ALIASES])
        read_model: ReadModel | None = None
        model_reads: ModelReads | MongoModelRegistry = registry
        alias_reads: AliasReads | MongoAliasRegistry = aliases
        if settings.read_model_mb > 0:
            read_model = ReadModel(
                url,
                settings.database,
                settings.database_client_options(),
                writes,
                settings.read_model_mb * MiB,
                settings.read_wait_s,
                metrics,
            )
            model_reads = ModelReads(read_model, registry)
            alias_reads = AliasReads(read_model, aliases)
        job_service = JobService(
            registry, jobs, devices, max_queued_per_owner=settings.max_queued_jobs_per_token
        )
        relay, feed, webhooks = await events_and_webhooks(settings, db)
        services = Services(
            client=client,
            db=db,
            weights=weights,
            inspector=inspector,
            registry=registry,
            jobs=jobs,
            devices=devices,
            aliases=aliases,
            writes=writes,
            read_model=read_model,
            model_reads=model_reads,
            alias_reads=alias_reads,
            tokens=TokenStore(db[TOKENS]),
            auth_enabled=settings.auth_enabled(),
            metrics=metrics,
            uploads=UploadSlots(settings.max_concurrent_uploads, settings.max_uploads_per_token),
            watch_limits=WatchLimits(
                settings.max_ws_connections_per_token,
                settings.max_subscriptions_per_connection,
                settings.max_subscriptions_per_token,
            ),
            job_service=job_service,
            model_service=ModelService(
                registry, job_service, aliases, reads=model_reads, alias_reads=alias_reads
            ),
            relay=relay,
            feed=feed,
            webhooks=webhooks,
            webhook_service=WebhookService(webhooks, settings.webhook_host_list()),
            orphans=orphans,
        )
        if read_model is not None:
            read_model.start()
        try:
            yield services
        finally:
            await cancelled(services.orphans)
            if read_model is not None:
                await read_model.close()
            await services.jobs.watchers.close()
            await services.feed.close()
    finally:
        if inspector is not None:
            inspector.close()
        # Closing ends the client's sessions on the server, and waits as long as server
        # selection (30 s) for a database that is down: a stopping hub waits no more than this.
        with pymongo.timeout(CLOSE_TIMEOUT_S):
            await client.close()
