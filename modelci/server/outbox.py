"""The outbox: registry events written in the same database write as their change, then
published (into the events collection, the webhooks' deliveries and the subscriptions).

The guarantee: once a change is acknowledged, its event is in the database, and it is
published by a running hub, however the hub stopped before. No transaction is needed,
so it holds on a standalone MongoDB as on a replica set or the embedded SecantusDB:

* A change to a document (a model registered, updated or profiled; an alias set; a job
  finished) carries its event into that document, in the same single-document write:
  ``$push`` into the document's ``outbox`` array (``with_event``), or the array written
  with a new document. MongoDB writes one document atomically: the change and its
  event are both stored, or neither.
* A delete (a model, an alias) cannot carry anything into a document that goes. Its
  event is first written as a tombstone, which says which document's absence makes it
  true; then the document is deleted (``delete_announced``). A tombstone is published
  once that document is gone; one whose document is still there well after it was
  written (``TOMBSTONE_GRACE``: the delete failed, or the hub died between the two
  writes and the change was never acknowledged) is dropped unpublished. The delete is
  made only while the document's outbox holds no event the tombstone did not copy, so
  no event of a deleted document is lost with it.

``Relay`` publishes: it reads the documents with a non-empty outbox (a sparse index
holds only those) and the tombstones, inserts their events into ``registry_events``
(keyed by event id: a second insert of one is a no-op), has the webhooks' deliveries
made (keyed by event and webhook, likewise), and only then takes the events out of the
outbox (``$pull`` by id). A hub that dies at any step publishes again from the outbox
on its next round: at least once, and never twice into the log or a webhook's queue.
Every server process runs one; it runs when a mutation was made in the process
(``written``) and every ``poll_s`` for changes made by other processes.

``EventFeed`` hands published events to subscriptions (one reader per process,
however many subscribe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from modelci.core.domain import utcnow
from modelci.core.errors import TooManyRequests
from modelci.core.registry_events import EventType, RegistryEvent

from .storage import MODELS
from .waiting import cancelled, woken_or_timed_out

logger = logging.getLogger("modelci.server.events")

OUTBOX = "outbox"  # the array of a changed document's events not yet published
EVENTS = "registry_events"
TOMBSTONES = "event_tombstones"

# A tombstone whose document is still there this long after it was written describes
# a delete that did not happen: dropped. A delete is two writes a few milliseconds apart.
TOMBSTONE_GRACE = timedelta(minutes=5)
# Documents with events read per query of a round.
BATCH = 100

EVENT_INDEXES = [
    IndexModel([("time", ASCENDING)], name="by_time"),
    IndexModel([("model_id", ASCENDING), ("time", DESCENDING)], name="by_model"),
]


async def ensure_kept(collection: AsyncCollection[Any], field: str, seconds: float) -> None:
    """A TTL index on ``field``: documents go ``seconds`` after it (changed in place when
    the setting changed)."""
    name = f"kept_by_{field}"
    try:
        await collection.create_index(
            [(field, ASCENDING)], name=name, expireAfterSeconds=int(seconds)
        )
    except OperationFailure:  # there, with another time
        await collection.database.command(
            "collMod",
            collection.name,
            index={"name": name, "expireAfterSeconds": int(seconds)},
        )


def outbox_index() -> IndexModel:
    """The index of a collection whose documents carry events: only those that do."""
    return IndexModel([(f"{OUTBOX}.id", ASCENDING)], sparse=True, name="with_events")


def entry(event: RegistryEvent) -> dict[str, Any]:
    """The event as stored in an outbox, a tombstone or the events collection (``id``)."""
    return {
        "id": event.id,
        "type": event.type.value,
        "time": event.time,
        "model_id": event.model_id,
        "model_name": event.model_name,
        "model_version": event.model_version,
        "actor": event.actor,
        "data": event.data,
    }


def event_from(document: Mapping[str, Any]) -> RegistryEvent:
    fields = {key: document.get(key) for key in ("id", "time", "model_id", "model_name")}
    return RegistryEvent(
        **fields,
        type=EventType(document["type"]),
        model_version=document.get("model_version"),
        actor=document.get("actor"),
        data=dict(document.get("data") or {}),
    )


def with_event(change: dict[str, Any], event: RegistryEvent) -> dict[str, Any]:
    """The update ``change`` that also carries ``event`` into the document it changes."""
    change.setdefault("$push", {})[OUTBOX] = entry(event)
    return change


def announce_insert(document: dict[str, Any], event: RegistryEvent) -> None:
    """``document``, about to be inserted, given its id and ``event`` (about it)."""
    document.setdefault("_id", ObjectId())
    event = event.model_copy(update={"model_id": event.model_id or str(document["_id"])})
    document[OUTBOX] = [entry(event)]


def plain(collection: AsyncCollection[Any]) -> AsyncCollection[dict[str, Any]]:
    """The collection read as plain dictionaries (the models' is read as raw BSON)."""
    options = collection.codec_options.with_options(document_class=dict)
    return collection.with_options(codec_options=options)


async def delete_announced(
    collection: AsyncCollection[Any],
    where: dict[str, Any],
    event_of: Callable[[Mapping[str, Any]], RegistryEvent],
    version: str | None = None,
) -> Any | None:
    """Delete the document ``where`` selects, with the event ``event_of`` makes of it
    (a tombstone first, see the module); the document deleted, None if there was none.
    ``version`` names a field that tells one document of a key from a later one of the
    same key (an alias removed and set again), so that the later one does not hide the
    delete of the earlier."""
    tombstones = collection.database[TOMBSTONES]
    readable = plain(collection)
    while True:
        document = await readable.find_one(where)
        if document is None:
            return None
        pending = list(document.get(OUTBOX) or [])
        event = event_of(document)
        which = {"_id": document["_id"]}
        if version is not None:
            which[version] = document.get(version)
        tombstone = {
            "_id": event.id,
            "collection": collection.name,
            "document": which,
            "events": [*pending, entry(event)],
            "time": utcnow(),
        }
        await tombstones.insert_one(tombstone)
        # Only while its outbox holds no event but those the tombstone copied.
        copied = [each["id"] for each in pending]
        unseen = {OUTBOX: {"$not": {"$elemMatch": {"id": {"$nin": copied}}}}}
        deleted = await collection.find_one_and_delete({**where, **which, **unseen})
        if deleted is not None:
            return deleted
        # An event came into its outbox meanwhile, or it went: this tombstone describes
        # nothing; read it again.
        await tombstones.delete_one({"_id": event.id})


async def insert_new(collection: AsyncCollection[dict[str, Any]], documents: list[Any]) -> None:
    """Insert the documents, those already there (by a key) left as they are."""
    if not documents:
        return
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [each for each in error.details.get("writeErrors", []) if each["code"] != 11000]
        if others:
            raise


Published = Callable[[list[RegistryEvent]], Awaitable[None]]


class Relay:
    """Publishes the events of outboxes and tombstones (see the module); one a process."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        outboxes: list[str],
        poll_s: float,
        kept_s: float,
        also: list[Published],
    ) -> None:
        self.db = db
        self.kept_s = kept_s
        self.outboxes = outboxes
        self.poll_s = poll_s
        self.also = also  # told of each batch, after the log (the webhooks' deliveries)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.published: list[Callable[[], None]] = []  # the feed's wake-up

    async def prepare(self) -> None:
        await self.db[EVENTS].create_indexes(EVENT_INDEXES)
        await ensure_kept(self.db[EVENTS], "stored_at", self.kept_s)
        for name in self.outboxes:
            await self.db[name].create_indexes([outbox_index()])
        await self.db[TOMBSTONES].create_index([("time", ASCENDING)], name="by_time")

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="event relay")

    async def close(self) -> None:
        task, self.task = self.task, None
        await cancelled(task)

    def written(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self.flush()
            except Exception:  # the database away: the next round tries again
                logger.exception("publishing registry events failed; trying again")
            await woken_or_timed_out(self.wake, self.poll_s)

    async def flush(self) -> int:
        """Publish every event waiting in an outbox or a tombstone; how many."""
        count = 0
        for name in self.outboxes:
            collection = self.db[name]
            while True:
                documents = (
                    await collection.find({f"{OUTBOX}.id": {"$exists": True}}, {OUTBOX: 1})
                    .limit(BATCH)
                    .to_list()
                )
                for document in documents:
                    entries = document.get(OUTBOX) or []
                    await self.publish([event_from(each) for each in entries])
                    count += len(entries)
                    ids = [each["id"] for each in entries]
                    key = document["_id"]
                    await collection.update_one(
                        {"_id": key}, {"$pull": {OUTBOX: {"id": {"$in": ids}}}}
                    )
                    await collection.update_one(
                        {"_id": key, OUTBOX: {"$size": 0}}, {"$unset": {OUTBOX: ""}}
                    )
                if len(documents) < BATCH:
                    break
        count += await self.flush_tombstones()
        return count

    async def flush_tombstones(self) -> int:
        count = 0
        tombstones = self.db[TOMBSTONES]
        async for tombstone in tombstones.find({}).sort("time", ASCENDING):
            gone = await self.db[tombstone["collection"]].find_one(
                tombstone["document"], {"_id": 1}
            )
            if gone is None:
                events = [event_from(each) for each in tombstone["events"]]
                await self.publish(events)
                count += len(events)
                await tombstones.delete_one({"_id": tombstone["_id"]})
            elif tombstone["time"] < utcnow() - TOMBSTONE_GRACE:
                await tombstones.delete_one({"_id": tombstone["_id"]})
        return count

    async def publish(self, events: list[RegistryEvent]) -> None:
        if not events:
            return
        events = await self.named(events)
        now = utcnow()
        documents = []
        for event in events:
            document = entry(event)
            document["_id"] = document.pop("id")
            document["stored_at"] = now
            documents.append(document)
        await insert_new(self.db[EVENTS], documents)
        for then in self.also:
            await then(events)
        for wake in self.published:
            wake()

    async def named(self, events: list[RegistryEvent]) -> list[RegistryEvent]:
        """The events with the name and version of their model where they lack them (a
        profile's or a job's event is written without reading the model first)."""
        unnamed = {
            event.model_id
            for event in events
            if event.model_id is not None and event.model_name is None
        }
        if not unnamed:
            return events
        keys = [ObjectId(each) for each in unnamed if ObjectId.is_valid(each)]
        cursor = self.db[MODELS].find({"_id": {"$in": keys}}, {"architecture": 1, "version": 1})
        found = {str(document["_id"]): document async for document in cursor}
        for model_id in unnamed - set(found):  # deleted since: as its last event named it
            named_before = await self.db[EVENTS].find_one(
                {"model_id": model_id, "model_name": {"$ne": None}},
                {"model_name": 1, "model_version": 1},
                sort=[("time", DESCENDING)],
            )
            if named_before is not None:
                found[model_id] = {
                    "architecture": named_before["model_name"],
                    "version": named_before["model_version"],
                }
        named = []
        for event in events:
            model = found.get(event.model_id or "")
            if model is not None and event.model_name is None:
                event = event.model_copy(
                    update={"model_name": model["architecture"], "model_version": model["version"]}
                )
            named.append(event)
        return named


# How far the feed looks back at each read for events published by other processes, whose
# clocks and write times may put an event's stored_at before one already read.
FEED_GRACE = timedelta(seconds=10)
# Events a subscriber may have waiting before it is ended (rather than skip any).
MAX_BEHIND = 1000
# Events a subscription with `since` is sent from the log before it follows live ones.
MAX_REPLAYED = 1000


class Follower:
    """One subscription: its filters and the events waiting for it."""

    def __init__(self, types: set[EventType] | None, model_id: str | None, since: datetime):
        self.types = types
        self.model_id = model_id
        self.since = since
        self.waiting: asyncio.Queue[RegistryEvent] = asyncio.Queue()
        self.error: TooManyRequests | None = None
        self.ready = asyncio.Event()

    def wants(self, event: RegistryEvent) -> bool:
        return (
            event.time >= self.since
            and (self.types is None or event.type in self.types)
            and (self.model_id is None or event.model_id == self.model_id)
        )

    def offer(self, event: RegistryEvent) -> None:
        if self.error is not None:
            return
        if self.waiting.qsize() >= MAX_BEHIND:
            self.error = TooManyRequests(
                f"this subscription fell {MAX_BEHIND} events behind and was ended; "
                "subscribe again with since: the time of the last event received"
            )
        else:
            self.waiting.put_nowait(event)
        self.ready.set()


class EventFeed:
    """The process's one reader of the events log for its subscriptions: each read takes
    what was published since the last (``FEED_GRACE`` back, ids already handed out
    skipped) and offers each event to every follower that wants it."""

    def __init__(
        self, events: AsyncCollection[dict[str, Any]], poll_s: float, relay: Relay
    ) -> None:
        self.events = events
        self.poll_s = poll_s
        self.relay = relay
        self.followers: set[Follower] = set()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.mark: datetime | None = None  # the newest stored_at read
        self.handed: dict[str, datetime] = {}  # ids read within the grace, by stored_at

    def published(self) -> None:
        if self.followers:
            self.wake.set()

    def written(self) -> None:
        """A change was written in this process: its events are published now."""
        self.relay.written()

    async def follow(
        self, types: list[EventType] | None, model_id: str | None, since: datetime | None = None
    ) -> AsyncIterator[RegistryEvent]:
        """Events from ``since`` (default: now) on, live once the log's are sent."""
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
        start = since or utcnow()
        follower = Follower(set(types) if types else None, model_id, start)
        self.followers.add(follower)
        if self.task is None or self.task.done():
            self.mark = None
            self.task = asyncio.create_task(self.run(), name="event feed")
        try:
            replayed: set[str] = set()
            if since is not None:
                query: dict[str, Any] = {"time": {"$gte": since}}
                if types:
                    query["type"] = {"$in": [kind.value for kind in types]}
                if model_id is not None:
                    query["model_id"] = model_id
                cursor = self.events.find(query).sort([("time", ASCENDING), ("_id", ASCENDING)])
                cursor = cursor.limit(MAX_REPLAYED)
                async for document in cursor:
                    document["id"] = document.pop("_id")
                    replayed.add(document["id"])
                    yield event_from(document)
            while True:
                await follower.ready.wait()
                follower.ready.clear()
                while not follower.waiting.empty():
                    event = follower.waiting.get_nowait()
                    if event.id not in replayed:
                        yield event
                if follower.error is not None:
                    raise follower.error
        finally:
            self.followers.discard(follower)
            if not self.followers:
                self.wake.set()

    async def run(self) -> None:
        while self.followers:
            self.wake.clear()
            try:
                await self.read()
            except Exception:
                logger.exception("reading the events log failed; trying again")
            if not self.followers:
                break
            await woken_or_timed_out(self.wake, self.poll_s)

    async def read(self) -> None:
        if self.mark is None:  # started: what is published from now on
            self.mark = utcnow() - FEED_GRACE
        since = self.mark - FEED_GRACE
        cursor = self.events.find({"stored_at": {"$gte": since}}).sort("stored_at", ASCENDING)
        async for document in cursor:
            stored: datetime = document["stored_at"]
            self.mark = max(self.mark, stored)
            if document["_id"] in self.handed:
                continue
            self.handed[document["_id"]] = stored
            document["id"] = document.pop("_id")
            event = event_from(document)
            for follower in list(self.followers):
                if follower.wants(event):
                    follower.offer(event)
        oldest = self.mark - FEED_GRACE
        self.handed = {key: stored for key, stored in self.handed.items() if stored >= oldest}

    async def close(self) -> None:
        task, self.task = self.task, None
        await cancelled(task)
