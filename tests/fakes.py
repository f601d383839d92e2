"""In-memory fakes of the core's ports (``modelci.core.ports``), for fast tests of the use
cases' rules: no database, no server, no torch. Each keeps the contract its port
documents (CONFLICT on a duplicate key, NOT_FOUND, cascades, newest-first pages, jobs
held by a worker and its token) with plain dictionaries, and nothing more.

A weight here is a ``FakeUpload``: its bytes and what its file is. ``FakeIntake`` stands
for the server's inspection: it completes the fields with the inputs and outputs the
upload says, refuses a file its declaration contradicts as the inspector would, and
keeps the bytes staged only inside the block of ``checked``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from modelci.core.domain import (
    DEFAULT_PROFILE_BUDGET_S,
    ConversionCheck,
    Device,
    DynamicProfileResult,
    Engine,
    IOShape,
    JobKind,
    JobLogEntry,
    JobStatus,
    MLModel,
    ModelAlias,
    ModelFields,
    ModelFilter,
    ModelKey,
    ProfileResult,
    ProfilingJob,
    StaticProfileResult,
    SweepOutcome,
    Weight,
    WeightFormat,
    utcnow,
)
from modelci.core.errors import BadUserInput, Conflict, NotFound
from modelci.core.ports import CheckedWeight, Page, PageRequest
from modelci.core.usecases import JobService, ModelService, check_declaration, key_taken

T = TypeVar("T")
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
MAX_DYNAMIC_RESULTS = 256
MAX_DEVICES_PER_TOKEN = 256


def ids() -> Iterator[str]:
    """Ids as the hub's look (24 hexadecimal digits), growing with creation order."""
    return (f"{n:024x}" for n in itertools.count(1))


def checked_id(value: str, argument: str = "id") -> str:
    if len(value) != 24 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise BadUserInput(
            f"{argument}: {value!r} is not a model id (24 hexadecimal digits)", field=argument
        )
    return value


def newest_first_page(items: list[T], page: PageRequest, id_of: Callable[[T], str]) -> Page[T]:
    """``items`` (oldest first) as the page asked for, newest first; cursors are ids."""
    ordered = list(reversed(items))
    positions = {id_of(item): index for index, item in enumerate(ordered)}
    start, end = 0, len(ordered)
    if page.after is not None:
        start = positions[page.after] + 1 if page.after in positions else end
    if page.before is not None:
        end = positions.get(page.before, 0)
    window = ordered[start:end]
    if page.last is not None:
        chosen = window[-page.last :] if page.last else []
        return Page(chosen, has_next_page=False, has_previous_page=len(window) > len(chosen))
    first = page.first if page.first is not None else len(window)
    chosen = window[:first]
    return Page(chosen, has_next_page=len(window) > len(chosen), has_previous_page=start > 0)


# The weight intake


@dataclass
class FakeUpload:
    """An upload (``core.ports.UploadedWeight``): its bytes, and what the inspection would
    find in them: the format (None: a file the hub stores but does not read) and the
    inputs and outputs the file says (an ONNX graph's)."""

    data: bytes = b"weights"
    filename: str | None = "model.bin"
    content_type: str | None = "application/octet-stream"
    format: WeightFormat | None = None
    inputs: list[IOShape] = field(default_factory=list)
    outputs: list[IOShape] = field(default_factory=list)


@dataclass
class FakeCheckedWeight(CheckedWeight):
    data: bytes = b""


class FakeIntake:
    """Staging and the weight store: ``staged`` holds what is being checked, ``stored``
    the bytes models reference (by sha256)."""

    def __init__(self) -> None:
        self.staged: list[FakeCheckedWeight] = []
        self.stored: dict[str, bytes] = {}
        self.checks: list[str | None] = []  # the owners whose uploads were checked

    @asynccontextmanager
    async def checked(
        self, weight: Any, fields: ModelFields, owner: str | None
    ) -> AsyncIterator[FakeCheckedWeight]:
        if not isinstance(weight, FakeUpload):
            raise TypeError(f"a fake registry takes a FakeUpload: {weight!r}")
        self.checks.append(owner)
        if weight.format is not None:
            check_declaration(fields, weight.format)  # as the inspector does, before a load
        completed = fields.model_copy(
            update={
                "inputs": fields.inputs or weight.inputs,
                "outputs": fields.outputs or weight.outputs,
            }
        )
        checked = FakeCheckedWeight(
            fields=completed,
            format=weight.format,
            description=Weight(
                filename=weight.filename or "weight",
                size=len(weight.data),
                sha256=hashlib.sha256(weight.data).hexdigest(),
                content_type=weight.content_type or "application/octet-stream",
                format=weight.format,
            ),
            data=weight.data,
        )
        self.staged.append(checked)
        try:
            yield checked
        finally:
            self.staged.remove(checked)

    def commit(self, weight: CheckedWeight) -> None:
        if not isinstance(weight, FakeCheckedWeight) or weight not in self.staged:
            raise RuntimeError("a checked weight is stored only inside the block that checked it")
        self.stored[weight.description.sha256] = weight.data


# Models


class FakeModelRegistry:
    """``core.ports.ModelRegistry`` over a dictionary of models."""

    def __init__(self, intake: FakeIntake | None = None) -> None:
        self.intake = intake or FakeIntake()
        self.models: dict[str, MLModel] = {}
        self.new_ids = ids()
        self.versions_given: dict[tuple[Any, ...], int] = {}

    # Writing a model with its weight, in two phases

    def checked(
        self, weight: Any, fields: ModelFields, owner: str | None = None
    ) -> Any:  # AbstractAsyncContextManager[CheckedWeight]
        return self.intake.checked(weight, fields, owner)

    async def holder_of(self, key: ModelKey) -> str | None:
        return next((model.id for model in self.models.values() if model.key() == key), None)

    async def insert(
        self,
        weight: CheckedWeight,
        parent_model_id: str | None = None,
        conversion: ConversionCheck | None = None,
        created_by: str | None = None,
    ) -> MLModel:
        fields = weight.fields
        if fields.version is None:
            fields = fields.model_copy(update={"version": await self.next_version(fields)})
            weight.fields = fields
        if await self.holder_of(fields.key()) is not None:
            raise key_taken(fields)
        if parent_model_id is not None and parent_model_id not in self.models:
            raise NotFound(
                f"model {parent_model_id} was deleted while its variant was registered; "
                "the variant was not kept"
            )
        self.intake.commit(weight)
        now = utcnow()
        extra = {"created_by": created_by} if "created_by" in MLModel.model_fields else {}
        model = MLModel.model_validate(
            fields.model_dump()
            | extra
            | {
                "id": next(self.new_ids),
                "parent_model_id": parent_model_id,
                "conversion": conversion,
                "weight": weight.description,
                "profile_result": ProfileResult(),
                "create_time": now,
                "update_time": now,
            }
        )
        self.models[model.id] = model
        return model

    async def update(
        self,
        model_id: str,
        fields: ModelFields,
        changed: set[str],
        weight: CheckedWeight | None = None,
    ) -> MLModel:
        current = await self.get(model_id)
        holder = await self.holder_of(fields.key())
        if holder is not None and holder != model_id:
            raise Conflict(f"another model already has the key of {model_id}'s new fields")
        update: dict[str, Any] = {name: getattr(fields, name) for name in changed}
        if weight is not None:
            self.intake.commit(weight)
            update["weight"] = weight.description
        updated = current.model_copy(update=update | {"update_time": utcnow()})
        self.models[model_id] = updated
        if weight is not None:
            self.release(current.weight.sha256)
        return updated

    def release(self, sha256: str) -> None:
        """Bytes no model references any more go."""
        if not any(model.weight.sha256 == sha256 for model in self.models.values()):
            self.intake.stored.pop(sha256, None)

    async def next_version(self, fields: ModelFields) -> int:
        line = (fields.architecture, fields.task, fields.dataset)
        version = await self.version_after(fields)
        self.versions_given[line] = version
        return version

    async def version_after(self, fields: ModelFields) -> int:
        line = (fields.architecture, fields.task, fields.dataset)
        registered = [
            model.version
            for model in self.models.values()
            if (model.architecture, model.task, model.dataset) == line
        ]
        return max([self.versions_given.get(line, 0), *registered]) + 1

    async def pass_on_to_variants(self, source_id: str) -> None:
        from modelci.core import domain

        inherited = getattr(domain, "INHERITED_FIELDS", ())
        source = self.models.get(source_id)
        frontier = [source] if source is not None else []
        while frontier:
            parent = frontier.pop()
            for child in self.children(parent.id):
                passed = {name: getattr(parent, name) for name in inherited}
                self.models[child.id] = child.model_copy(update=passed)
                frontier.append(self.models[child.id])

    async def set_tag(self, model_id: str, tag: Any) -> MLModel:
        model = await self.get(model_id)
        tags = [each for each in model.tags if each.name != tag.name] + [tag]
        self.models[model_id] = model.model_copy(update={"tags": tags})
        return self.models[model_id]

    async def delete_tag(self, model_id: str, name: str) -> MLModel:
        model = await self.get(model_id)
        kept = [each for each in model.tags if each.name != name]
        if len(kept) == len(model.tags):
            raise NotFound(f"model {model_id} has no tag {name!r}")
        self.models[model_id] = model.model_copy(update={"tags": kept})
        return self.models[model_id]

    # Reading

    async def get(self, model_id: str) -> MLModel:
        checked_id(model_id)
        if model_id not in self.models:
            raise NotFound(f"no model with id {model_id}")
        return self.models[model_id]

    async def find(self, where: ModelFilter, page: PageRequest) -> Page[MLModel]:
        wanted = where.model_dump(exclude={"status", "profile"}, exclude_none=True)

        def matches(model: MLModel) -> bool:
            if any(getattr(model, name) != value for name, value in wanted.items()):
                return False
            if where.status is not None and where.status not in model.model_status:
                return False
            return where.profile is None or bool(model.profile_result.dynamic_results)

        found = [model for model in self.models.values() if matches(model)]
        return newest_first_page(found, page, lambda model: model.id)

    async def get_many(self, model_ids: list[str]) -> list[MLModel | None]:
        return [self.models.get(model_id) for model_id in model_ids]

    def children(self, model_id: str) -> list[MLModel]:
        return [model for model in self.models.values() if model.parent_model_id == model_id]

    async def children_of(self, model_ids: list[str]) -> list[list[MLModel]]:
        return [self.children(model_id) for model_id in model_ids]

    # Deleting

    async def delete(self, model_id: str, cascade: bool) -> list[MLModel]:
        root = await self.get(model_id)
        doomed, frontier = [root], [root]
        while frontier:
            found = [child for parent in frontier for child in self.children(parent.id)]
            if found and not cascade:
                raise Conflict(
                    f"model {model_id} has {len(found)} converted variant(s) "
                    f"({', '.join(child.id for child in found)}); delete them too with cascade"
                )
            doomed += found
            frontier = found
        for model in reversed(doomed):  # variants first: no orphan
            del self.models[model.id]
            self.release(model.weight.sha256)
        return doomed

    # Profiling results

    async def set_static_result(self, model_id: str, result: StaticProfileResult) -> MLModel:
        return self.with_results(await self.get(model_id), static_result=result)

    async def add_dynamic_result(self, model_id: str, result: DynamicProfileResult) -> MLModel:
        model = await self.get(model_id)
        results = model.profile_result.dynamic_results
        if any(self.same_key(each, result) for each in results):
            raise Conflict(
                f"model {model_id} already has a dynamic result for ip {result.ip}, "
                f"device {result.device_id}, batch {result.batch}"
            )
        if len(results) >= MAX_DYNAMIC_RESULTS:
            raise Conflict(f"model {model_id} holds {MAX_DYNAMIC_RESULTS} dynamic results")
        return self.with_results(model, dynamic_results=[*results, result])

    async def replace_dynamic_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool
    ) -> MLModel:
        model = await self.get(model_id)
        results = model.profile_result.dynamic_results
        if not any(self.same_key(each, result) for each in results):
            if not force_insert:
                raise NotFound(
                    f"model {model_id} has no dynamic result for ip {result.ip}, "
                    f"device {result.device_id}, batch {result.batch}"
                )
            return await self.add_dynamic_result(model_id, result)
        replaced = [result if self.same_key(each, result) else each for each in results]
        return self.with_results(model, dynamic_results=replaced)

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel:
        model = await self.get(model_id)
        results = model.profile_result.dynamic_results
        kept = [
            each
            for each in results
            if not (
                each.ip == ip
                and each.device_id == device_id
                and (batch is None or each.batch == batch)
            )
        ]
        if len(kept) == len(results):
            raise NotFound(f"model {model_id} has no dynamic result for {ip}, {device_id}")
        return self.with_results(model, dynamic_results=kept)

    @staticmethod
    def same_key(one: DynamicProfileResult, other: DynamicProfileResult) -> bool:
        return (one.ip, one.device_id, one.batch) == (other.ip, other.device_id, other.batch)

    def with_results(self, model: MLModel, **results: Any) -> MLModel:
        profile = model.profile_result.model_copy(update=results)
        changed = model.model_copy(update={"profile_result": profile, "update_time": utcnow()})
        self.models[model.id] = changed
        return changed


# Jobs


class FakeJobQueue:
    """``core.ports.JobQueue`` over a dictionary of jobs. ``now`` is the queue's clock:
    a test moves it on to let a lease run out."""

    def __init__(self, default_budget_s: float = DEFAULT_PROFILE_BUDGET_S) -> None:
        self.default_budget_s = default_budget_s
        self.jobs: dict[str, ProfilingJob] = {}
        self.new_ids = ids()
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.writes: Counter[str] = Counter()  # fenced writes under way, by job
        self.changed = asyncio.Event()
        self.now: Callable[[], datetime] = utcnow

    def save(self, job: ProfilingJob, *messages: str | None, **changes: Any) -> ProfilingJob:
        now = self.now()
        log = [*job.log, *(JobLogEntry(time=now, message=m) for m in messages if m)]
        saved = job.model_copy(update=changes | {"log": log[-200:], "update_time": now})
        self.jobs[job.id] = saved
        self.changed.set()
        self.changed = asyncio.Event()
        return saved

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
        max_attempts: int = 1,
    ) -> ProfilingJob:
        now = self.now()
        job = ProfilingJob(
            id=next(self.new_ids),
            model_id=model_id,
            kind=kind,
            status=JobStatus.QUEUED,
            batch_sizes=batch_sizes or [],
            devices=devices or [],
            targets=targets or [],
            profile_variants=profile_variants,
            budget_seconds=budget_seconds,
            max_p99_latency=max_p99_latency,
            max_batch=max_batch,
            progress=0.0,
            owner=owner,
            attempts=0,
            max_attempts=max_attempts,
            create_time=now,
            update_time=now,
        )
        return self.save(job, "queued")

    @asynccontextmanager
    async def queuing(self, owner: str) -> AsyncIterator[None]:
        async with self.locks[owner]:
            yield

    async def count_queued(self, owner: str) -> int:
        return sum(
            job.owner == owner and job.status is JobStatus.QUEUED for job in self.jobs.values()
        )

    async def take_back(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return False
        del self.jobs[job_id]
        return True

    async def get(self, job_id: str) -> ProfilingJob:
        checked_id(job_id)
        if job_id not in self.jobs:
            raise NotFound(f"no profiling job with id {job_id}")
        return self.jobs[job_id]

    async def find(
        self, model_id: str | None, status: JobStatus | None, page: PageRequest
    ) -> Page[ProfilingJob]:
        found = [
            job
            for job in self.jobs.values()
            if (model_id is None or job.model_id == model_id)
            and (status is None or job.status is status)
        ]
        return newest_first_page(found, page, lambda job: job.id)

    async def has_active(self, model_id: str, kind: JobKind) -> bool:
        return any(
            job.model_id == model_id and job.kind is kind and job.status in ACTIVE
            for job in self.jobs.values()
        )

    async def cancel(self, job_id: str) -> ProfilingJob:
        job = await self.get(job_id)
        if job.status not in ACTIVE:
            raise Conflict(f"profiling job {job_id} has already ended ({job.status.value})")
        cancelled = self.save(job, "cancelled", status=JobStatus.CANCELLED, end_time=self.now())
        while self.writes[job_id]:  # answered once no write for it can land
            await self.changed.wait()
        return cancelled

    def held(self, job_id: str, worker: str, claimant: str | None) -> ProfilingJob | None:
        job = self.jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return None
        return job if (job.worker, job.claimant) == (worker, claimant) else None

    async def write_refused(self, job_id: str, worker: str) -> Conflict:
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

    @asynccontextmanager
    async def writing_for(
        self, job_id: str, worker: str, claimant: str | None
    ) -> AsyncIterator[ProfilingJob]:
        job = self.held(job_id, worker, claimant)
        if job is None:
            raise await self.write_refused(job_id, worker)
        self.writes[job_id] += 1
        try:
            yield job
        finally:
            self.writes[job_id] -= 1
            self.save(self.jobs[job_id])  # wakes a cancel waiting for the write

    async def not_held(self, job_id: str, worker: str) -> ProfilingJob:
        job = await self.get(job_id)
        if job.status is JobStatus.CANCELLED:
            return job
        raise Conflict(
            f"profiling job {job_id} is not held by worker {worker} with this token "
            f"(it is {job.status.value})"
        )

    async def release(
        self, job_id: str, worker: str, claimant: str | None, reason: str
    ) -> ProfilingJob:
        job = self.held(job_id, worker, claimant)
        if job is None:
            return await self.not_held(job_id, worker)
        return self.save(
            job,
            f"handed back by {worker}: {reason}",
            status=JobStatus.QUEUED,
            worker=None,
            progress=0.0,
            lease_expires_at=None,
            attempts=job.attempts - 1,
        )

    async def forget_model(self, model_id: str) -> None:
        for job in list(self.jobs.values()):
            if job.model_id != model_id:
                continue
            if job.status is JobStatus.QUEUED:
                del self.jobs[job.id]
            elif job.status is JobStatus.RUNNING:
                self.save(
                    job,
                    "cancelled: the model was deleted",
                    status=JobStatus.CANCELLED,
                    end_time=self.now(),
                )

    async def claim(
        self,
        worker: str,
        device_ids: list[str],
        lease_s: float,
        kinds: list[JobKind],
        claimant: str | None,
    ) -> ProfilingJob | None:
        now = self.now()

        def lost(job: ProfilingJob) -> bool:
            expires = job.lease_expires_at
            return job.status is JobStatus.RUNNING and expires is not None and expires < now

        for job in list(self.jobs.values()):
            if lost(job) and job.attempts >= job.max_attempts:
                self.save(
                    job,
                    "failed: attempts used up",
                    status=JobStatus.FAILED,
                    error="the worker running it stopped answering on every attempt",
                    end_time=now,
                )

        def fits(job: ProfilingJob) -> bool:
            return set(job.devices) <= set(device_ids) and job.kind in kinds

        queued = [j for j in self.jobs.values() if j.status is JobStatus.QUEUED and fits(j)]
        oldest: dict[str | None, str] = {}
        for job in queued:
            oldest.setdefault(job.owner, job.id)
        runnable = [job for job in self.jobs.values() if fits(job) and (lost(job) or job in queued)]
        if len(oldest) >= 2:  # the owner with the fewest running, then the longest waiting
            running = Counter(j.owner for j in self.jobs.values() if j.status is JobStatus.RUNNING)
            turn = min(oldest, key=lambda owner: (running[owner], oldest[owner]))
            runnable = [job for job in runnable if lost(job) or job.owner == turn]
        if not runnable:
            return None
        job = min(runnable, key=lambda each: each.id)
        return self.save(
            job,
            f"claimed by {worker}",
            status=JobStatus.RUNNING,
            worker=worker,
            claimant=claimant,
            lease_expires_at=now + timedelta(seconds=lease_s),
            start_time=now,
            sweeps=[],
            attempts=job.attempts + 1,
        )

    async def record_sweep(
        self, job_id: str, worker: str, claimant: str | None, sweep: SweepOutcome
    ) -> ProfilingJob:
        job = self.held(job_id, worker, claimant)
        if job is None:
            raise await self.write_refused(job_id, worker)
        return self.save(job, f"{sweep.device_id}: sweep stopped", sweeps=[*job.sweeps, sweep])

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        progress: float,
        message: str | None,
        lease_s: float,
    ) -> ProfilingJob:
        job = self.held(job_id, worker, claimant)
        if job is None:
            return await self.not_held(job_id, worker)
        expires = self.now() + timedelta(seconds=lease_s)
        return self.save(job, message, progress=progress, lease_expires_at=expires)

    async def finish(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        status: JobStatus,
        error: str | None,
        log: list[str],
    ) -> ProfilingJob:
        job = self.held(job_id, worker, claimant)
        if job is None:
            return await self.not_held(job_id, worker)
        changes: dict[str, Any] = {"status": status, "lease_expires_at": None}
        if status is JobStatus.SUCCEEDED:
            changes |= {"progress": 1.0, "end_time": self.now()}
        elif status is JobStatus.QUEUED:
            changes |= {"worker": None}
        else:
            changes |= {"error": (error or "")[:4096], "end_time": self.now()}
        return self.save(job, *log, **changes)

    async def watch(self, job_id: str) -> AsyncIterator[ProfilingJob]:
        while True:
            changed = self.changed
            job = await self.get(job_id)
            yield job
            if job.status not in ACTIVE:
                return
            await changed.wait()


# Devices and aliases


class FakeDeviceRegistry:
    """``core.ports.DeviceRegistry``: each reporter keeps its newest devices."""

    def __init__(self) -> None:
        self.devices: dict[tuple[str, str], tuple[str | None, Device]] = {}

    async def report(self, devices: list[Device], reporter: str | None) -> None:
        for device in devices:
            self.devices.pop((device.host, device.device_id), None)
            self.devices[(device.host, device.device_id)] = (reporter, device)
        mine = [key for key, (who, _) in self.devices.items() if who == reporter]
        for key in mine[: max(0, len(mine) - MAX_DEVICES_PER_TOKEN)]:  # its oldest go
            del self.devices[key]

    async def all(self) -> list[Device]:
        return [device for _, device in self.devices.values()]


class FakeAliasRegistry:
    """``core.ports.AliasRegistry``: one name, one model at a time."""

    def __init__(self) -> None:
        self.aliases: dict[str, ModelAlias] = {}

    async def point(self, alias: str, model_id: str) -> ModelAlias:
        self.aliases[alias] = ModelAlias(alias=alias, model_id=model_id, update_time=utcnow())
        return self.aliases[alias]

    async def remove(self, alias: str) -> ModelAlias:
        if alias not in self.aliases:
            raise NotFound(f"no alias {alias!r}")
        return self.aliases.pop(alias)

    async def resolve(self, alias: str) -> str:
        if alias not in self.aliases:
            raise NotFound(f"no alias {alias!r}")
        return self.aliases[alias].model_id

    async def all(self, limit: int) -> list[ModelAlias]:
        return [self.aliases[name] for name in sorted(self.aliases)][:limit]

    async def of_models(self, model_ids: list[str]) -> list[list[str]]:
        return [
            sorted(name for name, each in self.aliases.items() if each.model_id == model_id)
            for model_id in model_ids
        ]

    async def drop_for(self, model_ids: Iterable[str]) -> list[str]:
        gone = set(model_ids)
        dropped = sorted(name for name, each in self.aliases.items() if each.model_id in gone)
        for name in dropped:
            del self.aliases[name]
        return dropped


# A hub of fakes


@dataclass
class FakeHub:
    """The use cases over fakes of every port, as ``server.services`` wires the real ones."""

    registry: FakeModelRegistry
    queue: FakeJobQueue
    devices: FakeDeviceRegistry
    aliases: FakeAliasRegistry
    jobs: JobService
    models: ModelService


def fake_hub(max_queued_per_owner: int = 500) -> FakeHub:
    registry, queue = FakeModelRegistry(), FakeJobQueue()
    devices, aliases = FakeDeviceRegistry(), FakeAliasRegistry()
    jobs = JobService(registry, queue, devices, max_queued_per_owner=max_queued_per_owner)  # type: ignore[arg-type]
    models = ModelService(registry, jobs, aliases)  # type: ignore[arg-type]
    return FakeHub(registry, queue, devices, aliases, jobs, models)


def model_fields(**overrides: Any) -> ModelFields:
    """ResNet50 v1, PyTorch/NONE (a file the hub stores but does not read) unless told."""
    fields = {
        "architecture": "ResNet50",
        "framework": "PyTorch",
        "engine": "NONE",
        "version": 1,
        "dataset": "ImageNet",
        "task": "Image_Classification",
    }
    return ModelFields.model_validate(fields | overrides)
