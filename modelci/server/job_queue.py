"""Profiling jobs in MongoDB (``core.ports.JobQueue``): queued, leased, retried, watched.

A worker claims the oldest job it can run with one atomic find-and-modify and
holds it under a lease that its heartbeats renew. A worker that dies stops
renewing; once the lease has run out, the next claim takes the job over, until
its attempts (as many as the use case gave it) are used up and it ends FAILED with
the reason. A worker that stops gracefully hands its job back (``release``): queued
again at once, no attempt spent.

Fencing: a worker's result writes are tied to its job (``writing_for``). Each one
first records itself on the job document, in the same atomic step that checks the
job is RUNNING under that worker, and removes the record when done; ``cancel``
flips the status first and then waits for the recorded writes to end before it
answers. So a write either starts before the cancel and has landed by the time the
cancel is acknowledged, or it is refused: nothing is written after a cancel.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from modelci.core.domain import (
    DEFAULT_PROFILE_BUDGET_S,
    Engine,
    JobKind,
    JobStatus,
    ProfilingJob,
    SweepOutcome,
    utcnow,
)
from modelci.core.errors import Conflict, NotFound
from modelci.core.ports import Page, PageRequest
from modelci.core.registry_events import EventType, RegistryEvent, new_event
from modelci.core.usecases import MAX_ATTEMPTS

from .job_watch import JobWatchers
from .listing import Listing
from .outbox import with_event
from .storage import object_id
from .waiting import woken_or_timed_out

LOG_ENTRIES_KEPT = 200
# How often the watchers' feed reads the watched jobs again when no change was announced
# in this process (changes made through another server process); MODELCI_WATCH_POLL_S.
WATCH_POLL_S = 1.0

# How long a fenced write may hold off a cancel: past it, the write's record is taken for
# that of a server that died mid-write. Registering a variant streams its weight file
# within it.
WRITE_FENCE = timedelta(seconds=120)
# How often a cancel looks again for fenced writes that end in another server process.
WRITE_POLL_S = 0.05

ACTIVE = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
ANYONE = object()  # next_owner: no owner's turn to keep


def job_from_document(document: dict[str, Any]) -> ProfilingJob:
    document = dict(document)
    document["id"] = str(document.pop("_id"))
    document.pop("writes", None)  # the fencing records (see the module's docstring)
    document.pop("outbox", None)  # events not yet published (``outbox.py``)
    return ProfilingJob.model_validate(document)


def log_entry(message: str) -> dict[str, Any]:
    return {"time": utcnow(), "message": message[:4096]}


def push_log(*messages: str | None) -> dict[str, Any]:
    entries = [log_entry(message) for message in messages if message]
    return {"log": {"$each": entries, "$slice": -LOG_ENTRIES_KEPT}}


class MongoJobQueue:
    def __init__(
        self,
        jobs: AsyncCollection[dict[str, Any]],
        listing: Listing,
        *,
        default_budget_s: float = DEFAULT_PROFILE_BUDGET_S,
        watch_poll_s: float = WATCH_POLL_S,
    ) -> None:
        self.jobs = jobs
        self.listing = listing
        self.default_budget_s = default_budget_s
        self.changed = asyncio.Event()
        # One lock per token name that queues jobs: as many as the tokens an admin made.
        self.quota_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.watchers = JobWatchers(jobs, job_from_document, watch_poll_s)

    def announce_change(self) -> None:
        """Wake what waits on a change in this process (the watchers' feed, cancels
        waiting for writes to end); a fresh event for the next change."""
        self.changed.set()
        self.changed = asyncio.Event()
        self.watchers.announce()

    async def enqueue(
        self,
        model_id: str,
        kind: JobKind,
        batch_sizes: list[int] | None = None,
        devices: list[str] | None = None,
        targets: list[Engine] | None = None,
        profile_variants: bool = False,
        owner: str | None = None,
        budget_seconds: float | None = None,
        max_p99_latency: float | None = None,
        max_batch: int | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> ProfilingJob:
        now = utcnow()
        document: dict[str, Any] = {
            "model_id": model_id,
            "kind": kind.value,
            "status": JobStatus.QUEUED.value,
            "batch_sizes": batch_sizes or [],
            "devices": devices or [],
            "targets": [target.value for target in targets or []],
            "profile_variants": profile_variants,
            "budget_seconds": budget_seconds,
            "max_p99_latency": max_p99_latency,
            "max_batch": max_batch,
            "sweeps": [],
            "progress": 0.0,
            "log": [log_entry("queued")],
            "error": None,
            "worker": None,
            "owner": owner,
            "attempts": 0,
            "max_attempts": max_attempts,
            "lease_expires_at": None,
            "create_time": now,
            "start_time": None,
            "end_time": None,
            "update_time": now,
        }
        await self.jobs.insert_one(document)
        self.announce_change()
        return job_from_document(document)

    @asynccontextmanager
    async def queuing(self, owner: str) -> AsyncIterator[None]:
        async with self.quota_locks[owner]:
            yield

    async def count_queued(self, owner: str) -> int:
        return await self.jobs.count_documents({"owner": owner, "status": JobStatus.QUEUED.value})

    async def take_back(self, job_id: str) -> bool:
        query = {"_id": object_id(job_id, "id"), "status": JobStatus.QUEUED.value}
        taken_back = await self.jobs.delete_one(query)
        if taken_back.deleted_count:
            self.announce_change()
        return bool(taken_back.deleted_count)

    async def get(self, job_id: str) -> ProfilingJob:
        document = await self.jobs.find_one({"_id": object_id(job_id, "id")})
        if document is None:
            raise NotFound(f"no profiling job with id {job_id}")
        return job_from_document(document)

    async def find(
        self, model_id: str | None, status: JobStatus | None, page: PageRequest
    ) -> Page[ProfilingJob]:
        query: dict[str, Any] = {}
        if model_id is not None:
            query["model_id"] = str(object_id(model_id, "modelId"))
        if status is not None:
            query["status"] = status.value
        documents, has_next, has_previous = await self.listing.page(self.jobs, query, page)
        return Page([job_from_document(document) for document in documents], has_next, has_previous)

    async def has_active(self, model_id: str, kind: JobKind) -> bool:
        query = {
            "model_id": str(object_id(model_id, "modelId")),
            "kind": kind.value,
            "status": {"$in": ACTIVE},
        }
        return await self.jobs.find_one(query, {"_id": 1}) is not None

    async def cancel(self, job_id: str) -> ProfilingJob:
        now = utcnow()
        cancel = {
            "$set": {"status": JobStatus.CANCELLED.value, "end_time": now, "update_time": now},
            "$push": push_log("cancelled"),
        }
        document = await self.jobs.find_one_and_update(
            {"_id": object_id(job_id, "id"), "status": {"$in": ACTIVE}},
            with_event(cancel, await self.finished_event(job_id, JobStatus.CANCELLED, None)),
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            job = await self.get(job_id)
            if job.status is JobStatus.CANCELLED:
                await self.writes_ended(job_id)
            raise Conflict(f"profiling job {job_id} has already ended ({job.status.value})")
        self.announce_change()
        # Answer only once no write for the job can land any more (see writing_for).
        await self.writes_ended(job_id)
        return job_from_document(document)

    @asynccontextmanager
    async def writing_for(
        self, job_id: str, worker: str, claimant: str | None
    ) -> AsyncIterator[ProfilingJob]:
        """A block that writes for a job: entered only while the job is RUNNING under the
        worker, claimed with the caller's token (else CONFLICT), and a cancel is not
        acknowledged until the block has ended."""
        token = ObjectId()
        document = await self.jobs.find_one_and_update(
            self.held_by(job_id, worker, claimant),
            {"$push": {"writes": {"token": token, "until": utcnow() + WRITE_FENCE}}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise await self.write_refused(job_id, worker, claimant)
        try:
            yield job_from_document(document)
        finally:
            await self.jobs.update_one(
                {"_id": document["_id"]}, {"$pull": {"writes": {"token": token}}}
            )
            self.announce_change()

    async def write_refused(self, job_id: str, worker: str, claimant: str | None) -> Conflict:
        """Why a worker's write for the job is refused: it is not RUNNING under it."""
        job = await self.get(job_id)
        if job.status is JobStatus.CANCELLED:
            reason = "it was cancelled: nothing more is written for it"
        elif job.status is JobStatus.RUNNING and job.worker == worker:
            reason = "it was claimed with another token"
        elif job.status is JobStatus.RUNNING:
            reason = f"it is running under worker {job.worker}"
        else:
            reason = f"it is {job.status.value}"
        return Conflict(
            f"profiling job {job_id}: a write from worker {worker} is refused; {reason}",
            jobStatus=job.status.value,
        )

    async def record_sweep(
        self, job_id: str, worker: str, claimant: str | None, sweep: SweepOutcome
    ) -> ProfilingJob:
        """One atomic write, checked against the job's state as it lands: either before a
        cancel or refused (so it needs no record in ``writes``)."""
        measured = ", ".join(map(str, sweep.batches)) or "none"
        message = (
            f"{sweep.device_id}: sweep stopped ({sweep.reason_code.value}): {sweep.reason}; "
            f"batches measured: {measured}"
        )
        document = await self.jobs.find_one_and_update(
            self.held_by(job_id, worker, claimant),
            {
                "$push": {"sweeps": sweep.model_dump(mode="json"), **push_log(message)},
                "$set": {"update_time": utcnow()},
            },
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            raise await self.write_refused(job_id, worker, claimant)
        self.announce_change()
        return job_from_document(document)

    async def writes_ended(self, job_id: str) -> None:
        """Wait until no fenced write for the job is under way (bounded by WRITE_FENCE)."""
        job = object_id(job_id, "id")
        while True:
            changed = self.changed
            live = {"$elemMatch": {"until": {"$gt": utcnow()}}}
            if await self.jobs.find_one({"_id": job, "writes": live}, {"_id": 1}) is None:
                return
            await woken_or_timed_out(changed, WRITE_POLL_S)

    async def forget_model(self, model_id: str) -> None:
        now = utcnow()
        await self.jobs.delete_many({"model_id": model_id, "status": JobStatus.QUEUED.value})
        running = {"model_id": model_id, "status": JobStatus.RUNNING.value}
        async for document in self.jobs.find(running, {"_id": 1}):  # each with its event
            job_id = str(document["_id"])
            cancel = {
                "$set": {"status": JobStatus.CANCELLED.value, "end_time": now, "update_time": now},
                "$push": push_log("cancelled: the model was deleted"),
            }
            event = await self.finished_event(job_id, JobStatus.CANCELLED, "the model was deleted")
            await self.jobs.update_one(
                {**running, "_id": document["_id"]}, with_event(cancel, event)
            )
        self.announce_change()

    async def claim(
        self,
        worker: str,
        device_ids: list[str],
        lease_s: float,
        kinds: list[JobKind] | None,
        claimant: str | None,
    ) -> ProfilingJob | None:
        """The oldest job of ``kinds`` (default: any) whose devices are all this worker's.

        A worker claims in lanes (``modelci.profiling.worker``): one for jobs that use a device
        exclusively (PROFILE), one for the rest (CONVERT), so a long profile never holds a
        conversion behind it. The fair turns below are taken among the jobs of the lane."""
        now = utcnow()
        lost = {"status": JobStatus.RUNNING.value, "lease_expires_at": {"$lt": now}}
        # Jobs whose workers kept dying: no more attempts (each with its event).
        used_up = {**lost, "$expr": {"$gte": ["$attempts", "$max_attempts"]}}
        error = "the worker running it stopped answering on every attempt"
        async for stuck in self.jobs.find(used_up, {"_id": 1}):
            fail = {
                "$set": {
                    "status": JobStatus.FAILED.value,
                    "error": error,
                    "end_time": now,
                    "update_time": now,
                },
                "$push": push_log("failed: attempts used up"),
            }
            event = await self.finished_event(str(stuck["_id"]), JobStatus.FAILED, error)
            await self.jobs.update_one({**used_up, "_id": stuck["_id"]}, with_event(fail, event))
        # Every device the job asks for is one of this worker's, and it is of the lane's kinds.
        fits: dict[str, Any] = {"$expr": {"$setIsSubset": ["$devices", device_ids]}}
        if kinds is not None:
            fits["kind"] = {"$in": [kind.value for kind in kinds]}
        queued = {"status": JobStatus.QUEUED.value}
        owner = await self.next_owner(fits)
        runnable: dict[str, Any] = {"$or": [queued, lost], **fits}
        if owner is not ANYONE:  # lost jobs first, then the owner whose turn it is
            lost_or_turn = {"$or": [lost, {**queued, "owner": owner}]}
            runnable = {**lost_or_turn, **fits}
        document = await self.jobs.find_one_and_update(
            runnable,
            {
                "$set": {
                    "status": JobStatus.RUNNING.value,
                    "worker": worker,
                    "claimant": claimant,
                    "lease_expires_at": now + timedelta(seconds=lease_s),
                    "start_time": now,
                    "update_time": now,
                    "sweeps": [],  # an attempt's sweeps: those of this one
                },
                "$inc": {"attempts": 1},
                "$push": push_log(f"claimed by {worker}"),
            },
            sort=[("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return None
        self.announce_change()
        return job_from_document(document)

    async def next_owner(self, fits: dict[str, Any]) -> str | object | None:
        """Whose queued job runs next: the owner with the fewest jobs running, then the
        one waiting longest, so one token's thousand jobs do not hold everyone else's
        behind them. ``ANYONE`` when there is no choice to make."""
        waiting = await self.jobs.aggregate(
            [
                {"$match": {"status": JobStatus.QUEUED.value, **fits}},
                {"$group": {"_id": "$owner", "oldest": {"$min": "$_id"}}},
            ]
        )
        oldest = {group["_id"]: group["oldest"] async for group in waiting}
        if len(oldest) < 2:
            return ANYONE
        running: Counter[str | None] = Counter()
        async for job in self.jobs.find({"status": JobStatus.RUNNING.value}, {"owner": 1}):
            running[job.get("owner")] += 1
        return min(oldest, key=lambda owner: (running[owner], oldest[owner]))

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        progress: float,
        message: str | None,
        lease_s: float,
    ) -> ProfilingJob:
        now = utcnow()
        document = await self.jobs.find_one_and_update(
            self.held_by(job_id, worker, claimant),
            {
                "$set": {
                    "progress": progress,
                    "lease_expires_at": now + timedelta(seconds=lease_s),
                    "update_time": now,
                },
                "$push": push_log(message),
            },
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return await self.not_held(job_id, worker, claimant)
        self.announce_change()
        return job_from_document(document)

    async def finish(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        status: JobStatus,
        error: str | None,
        log: list[str],
    ) -> ProfilingJob:
        now = utcnow()
        change: dict[str, Any] = {
            "$set": {"status": status.value, "lease_expires_at": None, "update_time": now},
            "$push": push_log(*log),
        }
        if status is JobStatus.SUCCEEDED:
            change["$set"].update(progress=1.0, end_time=now)
        elif status is JobStatus.QUEUED:
            change["$set"].update(worker=None)
        else:
            change["$set"].update(error=(error or "")[:4096], end_time=now)
        if status is not JobStatus.QUEUED:
            with_event(change, await self.finished_event(job_id, status, error))
        document = await self.jobs.find_one_and_update(
            self.held_by(job_id, worker, claimant), change, return_document=ReturnDocument.AFTER
        )
        if document is None:
            return await self.not_held(job_id, worker, claimant)
        self.announce_change()
        return job_from_document(document)

    async def finished_event(
        self, job_id: str, status: JobStatus, error: str | None
    ) -> RegistryEvent:
        """``job.finished``, to write with the change that ends the job."""
        document = await self.jobs.find_one(
            {"_id": object_id(job_id, "id")}, {"model_id": 1, "kind": 1}
        )
        return new_event(
            EventType.JOB_FINISHED,
            document["model_id"] if document else None,
            jobId=job_id,
            kind=document["kind"] if document else None,
            status=status.value,
            error=error[:1024] if error else None,
        )

    async def release(
        self, job_id: str, worker: str, claimant: str | None, reason: str
    ) -> ProfilingJob:
        """The worker gives the job back unfinished: QUEUED again at once for any worker,
        and the attempt it had taken is returned (stopping is not failing)."""
        document = await self.jobs.find_one_and_update(
            self.held_by(job_id, worker, claimant),
            self.handed_back(worker, reason),
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return await self.not_held(job_id, worker, claimant)
        self.announce_change()
        return job_from_document(document)

    async def release_workers(self, workers: list[str], reason: str) -> list[str]:
        """Hand back every job still RUNNING under these workers (gone without doing it
        themselves); the ids of the jobs queued again."""
        released = []
        for worker in workers:
            while True:
                document = await self.jobs.find_one_and_update(
                    {"worker": worker, "status": JobStatus.RUNNING.value},
                    self.handed_back(worker, reason),
                    projection={"_id": 1},
                )
                if document is None:
                    break
                released.append(str(document["_id"]))
        if released:
            self.announce_change()
        return released

    @staticmethod
    def handed_back(worker: str, reason: str) -> dict[str, Any]:
        return {
            "$set": {
                "status": JobStatus.QUEUED.value,
                "worker": None,
                "progress": 0.0,
                "lease_expires_at": None,
                "update_time": utcnow(),
            },
            "$inc": {"attempts": -1},
            "$push": push_log(f"handed back by {worker}: {reason}"),
        }

    @staticmethod
    def held_by(job_id: str, worker: str, claimant: str | None) -> dict[str, Any]:
        """The job while it is RUNNING under ``worker``, claimed with the token
        ``claimant`` (its id): a worker's name is public (any read token lists it), the
        token that claimed is what only that worker holds."""
        return {
            "_id": object_id(job_id, "id"),
            "worker": worker,
            "claimant": claimant,
            "status": JobStatus.RUNNING.value,
        }

    async def not_held(self, job_id: str, worker: str, claimant: str | None) -> ProfilingJob:
        """A cancelled job is returned as it is; any other job not held is a CONFLICT."""
        job = await self.get(job_id)
        if job.status is JobStatus.CANCELLED:
            return job
        raise Conflict(
            f"profiling job {job_id} is not held by worker {worker} with this token "
            f"(it is {job.status.value}); its lease may have run out"
        )

    def watch(self, job_id: str) -> AsyncIterator[ProfilingJob]:
        """The job now, then after each change until it ends, from the process's one
        change feed (``job_watch.JobWatchers``): watchers cost no query each."""
        return self.watchers.watch(job_id)
