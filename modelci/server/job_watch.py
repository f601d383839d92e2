"""Watching jobs cheaply: one change feed per process, and caps on who may watch how much.

``JobWatchers`` keeps the jobs someone watches, each with its subscribers. One task
reads every watched job in one query, when a change is announced in this process and
at least every poll interval (changes written through another server process are
announced only there), and hands each subscriber its job's state when its
``update_time`` moved. A subscriber holds only the latest state it has not taken yet,
so one that reads slowly skips states rather than holding up the others. The task
ends when nobody watches and starts again with the next subscriber.

``WatchLimits`` bounds what one caller (a token, or a client address with auth off)
holds open over WebSockets in this process: connections, and operations under way per
connection and in all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from modelci.core.domain import FINISHED_JOB_STATUSES, ProfilingJob
from modelci.core.errors import NotFound, TooManyRequests

from .storage import object_id
from .waiting import cancelled, woken_or_timed_out

logger = logging.getLogger("modelci.server.job_queue")


class Subscriber:
    """One stream of a job's states: the latest one not yet taken, and whether the
    stream has ended (the job finished or vanished)."""

    __slots__ = ("ended", "error", "latest", "ready", "seen")

    def __init__(self) -> None:
        self.seen: datetime | None = None  # update_time of the last state handed over
        self.latest: ProfilingJob | None = None
        self.error: NotFound | None = None
        self.ended = False
        self.ready = asyncio.Event()

    def offer(self, job: ProfilingJob, stamp: datetime) -> None:
        self.seen = stamp
        self.latest = job  # an older state nobody took is dropped
        self.ended = job.status in FINISHED_JOB_STATUSES
        self.ready.set()

    def fail(self, error: NotFound) -> None:
        self.error = error
        self.ended = True
        self.ready.set()


class JobWatchers:
    """The process's one change feed over the jobs collection (see the module)."""

    def __init__(
        self,
        jobs: AsyncCollection[dict[str, Any]],
        decode: Callable[[dict[str, Any]], ProfilingJob],
        poll_s: float,
    ) -> None:
        self.jobs = jobs
        self.decode = decode
        self.poll_s = poll_s
        self.watched: dict[ObjectId, set[Subscriber]] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # Queries run on the jobs collection so far: one a round, however many watch.
        self.reads = 0

    @property
    def subscribers(self) -> int:
        return sum(len(subscribers) for subscribers in self.watched.values())

    def announce(self) -> None:
        """A job changed in this process: read the watched ones again now."""
        if self.watched:
            self.wake.set()

    async def watch(self, job_id: str) -> AsyncIterator[ProfilingJob]:
        """The job now, then each change, until it ends; NOT_FOUND if there is none."""
        key = object_id(job_id, "id")
        subscriber = Subscriber()
        self.watched.setdefault(key, set()).add(subscriber)
        self.wake.set()  # the job now, not at the next poll
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name="job watchers")
        try:
            while True:
                await subscriber.ready.wait()
                subscriber.ready.clear()
                job, subscriber.latest = subscriber.latest, None
                if job is not None:
                    yield job
                if subscriber.error is not None:
                    raise subscriber.error
                if subscriber.ended:
                    return
        finally:
            self.forget(key, subscriber)

    def forget(self, key: ObjectId, subscriber: Subscriber) -> None:
        subscribers = self.watched.get(key)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self.watched[key]
            if not self.watched:
                self.wake.set()  # the feed ends now rather than after its poll interval

    async def run(self) -> None:
        while self.watched:
            self.wake.clear()
            try:
                await self.round()
            except Exception:  # the database away: the subscribers wait for the next round
                logger.exception("reading the watched jobs failed; trying again")
            if not self.watched:
                break
            await woken_or_timed_out(self.wake, self.poll_s)

    async def round(self) -> None:
        """Every watched job read in one query; each subscriber offered what is new to it.

        Only those watching when the query was sent are served by it: one who came
        during it has woken the feed for another round, which serves it."""
        watching = {key: list(subscribers) for key, subscribers in self.watched.items()}
        self.reads += 1
        cursor = self.jobs.find({"_id": {"$in": list(watching)}}, {"writes": 0})
        found = {document["_id"]: document async for document in cursor}
        for key, subscribers in watching.items():
            document = found.get(key)
            if document is None:
                missing = NotFound(f"no profiling job with id {key}")
                for subscriber in subscribers:
                    subscriber.fail(missing)
                    self.forget(key, subscriber)
                continue
            stamp = document["update_time"]
            job: ProfilingJob | None = None
            for subscriber in subscribers:
                if subscriber.seen == stamp:
                    continue
                if job is None:  # decoded once, for all its subscribers
                    job = self.decode(document)
                subscriber.offer(job, stamp)
                if subscriber.ended:  # it takes its last state from its slot
                    self.forget(key, subscriber)

    async def close(self) -> None:
        """Stop the feed (the process is stopping); its subscribers get nothing more."""
        task, self.task = self.task, None
        await cancelled(task)


@dataclass
class OperationSlot:
    """One operation under way on a WebSocket connection, counted until released."""

    connection: ConnectionLease
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.connection.operations -= 1
        self.connection.limits.release_operation(self.connection.caller)


@dataclass
class ConnectionLease:
    """One open WebSocket connection of a caller, counted until closed."""

    limits: WatchLimits
    caller: str
    operations: int = 0
    slots: list[OperationSlot] = field(default_factory=list)
    closed: bool = False

    def start_operation(self) -> OperationSlot:
        """A slot for one more operation, or TOO_MANY_REQUESTS saying which cap is full."""
        limits = self.limits
        if self.operations >= limits.operations_per_connection:
            raise TooManyRequests(
                f"this connection has {self.operations} subscriptions open, and "
                f"{limits.operations_per_connection} is the most one connection may have; "
                "complete some first (MODELCI_MAX_SUBSCRIPTIONS_PER_CONNECTION)"
            )
        held = limits.operations.get(self.caller, 0)
        if held >= limits.operations_per_caller:
            raise TooManyRequests(
                f"{self.caller} has {held} subscriptions open, and "
                f"{limits.operations_per_caller} is the most one token may have; "
                "complete some first (MODELCI_MAX_SUBSCRIPTIONS_PER_TOKEN)"
            )
        self.operations += 1
        limits.operations[self.caller] = held + 1
        slot = OperationSlot(self)
        self.slots = [kept for kept in self.slots if not kept.released]
        self.slots.append(slot)
        return slot

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for slot in self.slots:
            slot.release()
        self.slots = []
        self.limits.release_connection(self.caller)


class WatchLimits:
    """Per-caller caps on WebSocket connections and the operations under way on them,
    in this process. A caller is a token's name, or a client address with auth off."""

    def __init__(
        self,
        connections_per_caller: int,
        operations_per_connection: int,
        operations_per_caller: int,
    ) -> None:
        self.connections_per_caller = connections_per_caller
        self.operations_per_connection = operations_per_connection
        self.operations_per_caller = operations_per_caller
        self.connections: dict[str, int] = {}
        self.operations: dict[str, int] = {}

    def connect(self, caller: str) -> ConnectionLease:
        """A lease on one more connection, or TOO_MANY_REQUESTS when the caller has all
        it may have open."""
        held = self.connections.get(caller, 0)
        if held >= self.connections_per_caller:
            raise TooManyRequests(
                f"{caller} has {held} WebSocket connections open, and "
                f"{self.connections_per_caller} is the most one token may have; close "
                "some, or run more subscriptions on one (MODELCI_MAX_WS_CONNECTIONS_PER_TOKEN)"
            )
        self.connections[caller] = held + 1
        return ConnectionLease(self, caller)

    def release_connection(self, caller: str) -> None:
        self.connections[caller] -= 1
        if not self.connections[caller]:
            del self.connections[caller]

    def release_operation(self, caller: str) -> None:
        self.operations[caller] -= 1
        if not self.operations[caller]:
            del self.operations[caller]
