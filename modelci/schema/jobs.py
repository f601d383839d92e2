"""Profiling jobs and devices: the GraphQL types, queries, mutations (clients' and
workers') and subscription. The resolvers turn arguments into domain values and hand
them to ``usecases.JobService``, where the rules are."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic

from modelci.core import domain
from modelci.core.domain import DeviceKind, Engine, JobKind, JobStatus
from modelci.core.errors import validated
from modelci.core.identity import Scope
from modelci.core.usecases import DEFAULT_LEASE_S, checked_worker

from .context import HubInfo
from .pagination import Connection, connection, page_request
from .permissions import needs
from .types import Long

strawberry.enum(JobStatus)
strawberry.enum(DeviceKind)
strawberry.enum(JobKind)

JOB_CURSOR = "job"


@strawberry_pydantic.type(model=domain.JobLogEntry)
class JobLogEntry:
    time: strawberry.auto
    message: strawberry.auto


@strawberry_pydantic.type(
    model=domain.SweepOutcome,
    description="How a profiling job's batch sweep went on one device: the batch sizes "
    "it measured, and why it stopped there (reasonCode, and in words with the figures "
    "that decided it).",
)
class SweepOutcome:
    device_id: strawberry.auto
    batches: strawberry.auto
    reason_code: strawberry.auto
    reason: strawberry.auto


@strawberry_pydantic.input(model=domain.SweepOutcome)
class SweepOutcomeInput:
    device_id: strawberry.auto
    batches: strawberry.auto
    reason_code: strawberry.auto
    reason: strawberry.auto


@strawberry_pydantic.type(
    model=domain.ProfilingJob,
    description="Work on one model, run by a worker under a lease: profiling, or conversion "
    "(kind CONVERT); progress from 0 to 1.",
)
class ProfilingJob:
    id: strawberry.ID
    model_id: strawberry.ID
    kind: strawberry.auto
    status: strawberry.auto
    batch_sizes: strawberry.auto
    devices: strawberry.auto
    targets: strawberry.auto
    profile_variants: strawberry.auto
    budget_seconds: strawberry.auto
    max_p99_latency: strawberry.auto
    max_batch: strawberry.auto
    sweeps: strawberry.auto
    progress: strawberry.auto
    log: strawberry.auto
    error: strawberry.auto
    worker: strawberry.auto
    attempts: strawberry.auto
    max_attempts: strawberry.auto
    lease_expires_at: strawberry.auto
    create_time: strawberry.auto
    start_time: strawberry.auto
    end_time: strawberry.auto
    update_time: strawberry.auto


@strawberry_pydantic.type(model=domain.Device, description="A device a worker reported.")
class Device:
    host: strawberry.auto
    ip: strawberry.auto
    device_id: strawberry.auto
    name: strawberry.auto
    kind: strawberry.auto
    total_memory: Long
    worker: strawberry.auto
    last_seen: strawberry.auto


@strawberry_pydantic.input(model=domain.Device)
class DeviceInput:
    host: strawberry.auto
    ip: strawberry.auto
    device_id: strawberry.auto
    name: strawberry.auto
    kind: strawberry.auto
    total_memory: Long


FencingJob = Annotated[
    strawberry.ID | None,
    strawberry.argument(
        description="For workers: the job this write comes from; with `worker`, the write "
        "is refused (CONFLICT) unless that job is RUNNING under that worker, so nothing is "
        "written for a cancelled or handed-back job."
    ),
]
FencingWorker = Annotated[
    str | None, strawberry.argument(description="For workers: the worker running `jobId`.")
]


@strawberry.type
class JobQueries:
    @strawberry.field(
        description="One profiling job by id.",
        metadata=needs(Scope.read),
        graphql_type=ProfilingJob,
    )
    async def profiling_job(self, info: HubInfo, id: strawberry.ID) -> domain.ProfilingJob:
        return await info.context.jobs.get(id)

    @strawberry.field(
        description="Profiling jobs, newest first, optionally of one model.",
        metadata=needs(Scope.read),
        graphql_type=Connection[ProfilingJob],
    )
    async def profiling_jobs(
        self,
        info: HubInfo,
        model_id: strawberry.ID | None = None,
        status: JobStatus | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[domain.ProfilingJob]:
        page = page_request(JOB_CURSOR, first, after, last, before)
        found = await info.context.jobs.find(model_id, status, page)
        return connection(JOB_CURSOR, found)

    @strawberry.field(
        description="Devices that workers have reported.",
        metadata=needs(Scope.read),
        graphql_type=list[Device],
    )
    async def devices(self, info: HubInfo) -> list[domain.Device]:
        return await info.context.devices.all()


@strawberry.type
class JobMutations:
    @strawberry.mutation(
        description="Queue profiling of a model on the given devices (default: every device "
        "of the worker that claims it) under a time budget shared by them (budgetSeconds; "
        "default: the hub's, MODELCI_PROFILE_BUDGET_S). With batchSizes, exactly those are "
        "measured, in order, as long as the budget lasts; without, the sweep is adaptive: "
        "batch 1, 2, 4, … while throughput gains 5 % or more, up to maxBatch and while the "
        "latency p99 stays within maxP99Latency (seconds). Each device's sweep records why "
        "it stopped (the job's sweeps).",
        metadata=needs(Scope.write),
        graphql_type=ProfilingJob,
    )
    async def profile_model(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        batch_sizes: list[int] | None = None,
        devices: list[str] | None = None,
        budget_seconds: float | None = None,
        max_p99_latency: float | None = None,
        max_batch: int | None = None,
    ) -> domain.ProfilingJob:
        return await info.context.job_service.profile(
            model_id,
            batch_sizes,
            devices,
            info.context.owner,
            budget_seconds=budget_seconds,
            max_p99_latency=max_p99_latency,
            max_batch=max_batch,
        )

    @strawberry.mutation(
        description="Queue conversion of a PyTorch model into verified TorchScript and ONNX "
        "variants (TensorRT on a GPU worker with TensorRT); `profile` also profiles each variant.",
        metadata=needs(Scope.write),
        graphql_type=ProfilingJob,
    )
    async def convert_model(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        targets: list[Engine] | None = None,
        profile: bool = False,
    ) -> domain.ProfilingJob:
        return await info.context.job_service.convert(
            model_id, targets, profile, info.context.owner
        )

    @strawberry.mutation(
        description="Cancel a queued or running job.",
        metadata=needs(Scope.write),
        graphql_type=ProfilingJob,
    )
    async def cancel_profiling_job(self, info: HubInfo, id: strawberry.ID) -> domain.ProfilingJob:
        return await info.context.job_service.cancel(id)

    @strawberry.mutation(
        description="For workers: report devices and claim the oldest job they can run, "
        "of the given kinds (default: any), under a lease to renew with "
        "heartbeatProfilingJob; null when there is none. A worker claims PROFILE jobs, "
        "which use its devices exclusively, apart from the rest (CONVERT), so that a long "
        "profile does not hold short jobs behind it.",
        metadata=needs(Scope.worker),
        graphql_type=ProfilingJob | None,
    )
    async def claim_profiling_job(
        self,
        info: HubInfo,
        worker: str,
        devices: list[DeviceInput],
        lease_seconds: float = DEFAULT_LEASE_S,
        kinds: list[JobKind] | None = None,
    ) -> domain.ProfilingJob | None:
        checked_worker(worker)
        reported = [validated(device, "devices", worker=worker) for device in devices]
        return await info.context.job_service.claim(
            worker, reported, lease_seconds, kinds, info.context.claimant
        )

    @strawberry.mutation(
        description="For workers: record how a device's batch sweep went on the job (and "
        "say so in its log); refused (CONFLICT with a jobStatus extension) unless the job "
        "is RUNNING under this worker.",
        metadata=needs(Scope.worker),
        graphql_type=ProfilingJob,
    )
    async def record_profiling_sweep(
        self, info: HubInfo, id: strawberry.ID, worker: str, sweep: SweepOutcomeInput
    ) -> domain.ProfilingJob:
        outcome = validated(sweep, "sweep")
        return await info.context.job_service.record_sweep(
            id, worker, info.context.claimant, outcome
        )

    @strawberry.mutation(
        description="For workers: renew the lease and report progress. A job cancelled "
        "meanwhile comes back CANCELLED: stop working on it.",
        metadata=needs(Scope.worker),
        graphql_type=ProfilingJob,
    )
    async def heartbeat_profiling_job(
        self,
        info: HubInfo,
        id: strawberry.ID,
        worker: str,
        progress: float,
        message: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_S,
    ) -> domain.ProfilingJob:
        return await info.context.job_service.heartbeat(
            id, worker, info.context.claimant, progress, message, lease_seconds
        )

    @strawberry.mutation(
        description="For workers: hand a job back unfinished (the worker is stopping): "
        "it is QUEUED again at once for any worker, without using up an attempt.",
        metadata=needs(Scope.worker),
        graphql_type=ProfilingJob,
    )
    async def release_profiling_job(
        self, info: HubInfo, id: strawberry.ID, worker: str, reason: str = "stopping"
    ) -> domain.ProfilingJob:
        return await info.context.job_service.release(id, worker, info.context.claimant, reason)

    @strawberry.mutation(
        description="For workers: end a job; with an error it is retried until its attempts "
        "are used up (at once when not retryable), then FAILED with that error.",
        metadata=needs(Scope.worker),
        graphql_type=ProfilingJob,
    )
    async def finish_profiling_job(
        self,
        info: HubInfo,
        id: strawberry.ID,
        worker: str,
        error: str | None = None,
        message: str | None = None,
        retryable: bool = True,
    ) -> domain.ProfilingJob:
        return await info.context.job_service.finish(
            id, worker, info.context.claimant, error, message, retryable
        )


@strawberry.type
class JobSubscriptions:
    @strawberry.subscription(
        description="The job now, then after every change until it ends.",
        metadata=needs(Scope.read),
        graphql_type=ProfilingJob,
    )
    async def profiling_job(
        self, info: HubInfo, id: strawberry.ID
    ) -> AsyncGenerator[domain.ProfilingJob, None]:
        async for job in info.context.jobs.watch(id):
            yield job
