"""Profiling jobs and devices: queries, mutations (clients' and workers'), subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic

from . import domain
from .context import HubInfo
from .domain import DeviceKind, Engine, JobKind, JobStatus, WeightFormat
from .errors import BadUserInput, validated
from .pagination import Connection, connection, page_request
from .types import Long

strawberry.enum(JobStatus)
strawberry.enum(DeviceKind)
strawberry.enum(JobKind)

JOB_CURSOR = "job"
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
MAX_BATCH_SIZE = 4096
DEFAULT_LEASE_S = 60.0
MAX_LEASE_S = 3600.0


@strawberry_pydantic.type(model=domain.JobLogEntry)
class JobLogEntry:
    time: strawberry.auto
    message: strawberry.auto


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


@asynccontextmanager
async def fenced(
    info: HubInfo, job_id: str | None, worker: str | None, model_id: str
) -> AsyncIterator[None]:
    """A write about ``model_id``; when it comes from a job, only while the job is the
    worker's (see ``JobQueue.writing_for``). Without ``job_id`` it is an ordinary write."""
    if job_id is None:
        if worker is not None:
            raise BadUserInput("jobId: give the job that `worker` writes for", field="jobId")
        yield
        return
    if worker is None:
        raise BadUserInput("worker: give the worker that runs `jobId`", field="worker")
    async with info.context.jobs.writing_for(job_id, worker) as job:
        if job.model_id != model_id:
            raise BadUserInput(
                f"jobId: job {job_id} works on model {job.model_id}, not {model_id}",
                field="jobId",
            )
        yield


def checked_batch_sizes(batch_sizes: list[int] | None) -> list[int]:
    if batch_sizes is None:
        return list(DEFAULT_BATCH_SIZES)
    if not batch_sizes or any(not 1 <= size <= MAX_BATCH_SIZE for size in batch_sizes):
        raise BadUserInput(
            f"batchSizes: give one or more sizes between 1 and {MAX_BATCH_SIZE}",
            field="batchSizes",
        )
    return sorted(set(batch_sizes))


async def checked_devices(info: HubInfo, devices: list[str] | None) -> list[str]:
    if not devices:
        return []
    known = {"cpu"} | {device.device_id for device in await info.context.jobs.devices()}
    unknown = sorted(set(devices) - known)
    if unknown:
        raise BadUserInput(
            f"devices: no worker has reported {', '.join(unknown)}; "
            f"known devices: {', '.join(sorted(known))}",
            field="devices",
        )
    return sorted(set(devices))


def checked_lease(lease_seconds: float) -> float:
    if not 1 <= lease_seconds <= MAX_LEASE_S:
        raise BadUserInput(
            f"leaseSeconds: must be between 1 and {MAX_LEASE_S:.0f}", field="leaseSeconds"
        )
    return lease_seconds


# Formats whose files do not say their input shapes (a .pt2's signature may not either).
UNSHAPED_FORMATS = {WeightFormat.TORCHSCRIPT, WeightFormat.TORCH_EXPORT, WeightFormat.TORCH_PICKLE}
INPUTS_EXAMPLE = 'inputs: [{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]'
CLI_INPUTS_EXAMPLE = "--input input:-1x3x224x224:FP32"


def lacks_inputs(model: domain.MLModel) -> bool:
    """Whether conversion or profiling would find nothing to feed the model: a PyTorch
    file (whose inputs the hub cannot read, unlike an ONNX graph's) with none declared."""
    return not model.inputs and model.weight.format in UNSHAPED_FORMATS


def format_name(weight_format: WeightFormat | None) -> str:
    return weight_format.value if weight_format else "model"


def no_inputs_to_register(weight_format: WeightFormat | None, asked: str) -> BadUserInput:
    return BadUserInput(
        f"input.inputs: {asked} needs the model's input shapes, and this "
        f"{format_name(weight_format)} "
        f"file does not say them; declare inputs, e.g. {INPUTS_EXAMPLE} or "
        f"{CLI_INPUTS_EXAMPLE} with the CLI (or register with convert: false, profile: false "
        "to only store it). Nothing was stored.",
        field="inputs",
    )


def require_inputs(model: domain.MLModel, asked: str) -> None:
    """BAD_USER_INPUT for a job on a stored model that could never feed it."""
    if lacks_inputs(model):
        raise BadUserInput(
            f"modelId: {asked} needs the model's input shapes; model {model.id} declares none "
            f"and its {format_name(model.weight.format)} file does not say them. "
            "Declare them first: "
            f'updateModel(id: "{model.id}", input: {{{INPUTS_EXAMPLE}}})',
            field="modelId",
        )


async def queue_profiling(
    info: HubInfo, model_id: str, batch_sizes: list[int] | None, devices: list[str] | None
) -> domain.ProfilingJob:
    sizes = checked_batch_sizes(batch_sizes)
    wanted = await checked_devices(info, devices)
    model = await info.context.registry.get(model_id)  # NOT_FOUND / BAD_USER_INPUT first
    require_inputs(model, "profiling")
    return await info.context.jobs.enqueue(
        model_id, JobKind.PROFILE, sizes, wanted, owner=owner_of(info)
    )


def owner_of(info: HubInfo) -> str | None:
    """Who queues a job: the caller's token name (quotas and fair turns go by it)."""
    identity = info.context.identity
    return identity.name if identity else None


# What each source format converts to; TensorRT needs a worker with a GPU and TensorRT.
CONVERSION_TARGETS = {
    WeightFormat.TORCHSCRIPT: [Engine.ONNX, Engine.TRT],
    WeightFormat.TORCH_EXPORT: [Engine.TORCHSCRIPT, Engine.ONNX, Engine.TRT],
    WeightFormat.TORCH_PICKLE: [Engine.TORCHSCRIPT, Engine.ONNX, Engine.TRT],
    WeightFormat.ONNX: [Engine.TRT],
}


def conversion_targets(model: domain.MLModel, targets: list[Engine] | None) -> list[Engine] | None:
    """The engines to convert to (None: this model converts to nothing)."""
    possible = CONVERSION_TARGETS.get(model.weight.format) if model.weight.format else None
    if targets is None:
        return possible
    unknown = [target for target in targets if target not in (possible or [])]
    if unknown:
        raise BadUserInput(
            f"targets: a {model.weight.format.value if model.weight.format else 'file in this'} "
            f"format converts to {', '.join(t.value for t in possible or []) or 'nothing'}, "
            f"not {', '.join(t.value for t in unknown)}",
            field="targets",
        )
    return sorted(set(targets), key=lambda target: target.value) or None


async def queue_conversion(
    info: HubInfo,
    model: domain.MLModel,
    targets: list[Engine] | None,
    profile: bool,
    quota: bool = True,
) -> domain.ProfilingJob | None:
    wanted = conversion_targets(model, targets)
    if wanted is None:
        return None
    return await info.context.jobs.enqueue(
        model.id,
        JobKind.CONVERT,
        targets=wanted,
        profile_variants=profile,
        owner=owner_of(info),
        quota=quota,
    )


@strawberry.type
class JobQueries:
    @strawberry.field(description="One profiling job by id.")
    async def profiling_job(self, info: HubInfo, id: strawberry.ID) -> ProfilingJob:
        return await info.context.jobs.get(id)  # type: ignore[return-value]

    @strawberry.field(description="Profiling jobs, newest first, optionally of one model.")
    async def profiling_jobs(
        self,
        info: HubInfo,
        model_id: strawberry.ID | None = None,
        status: JobStatus | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ProfilingJob]:
        page = page_request(JOB_CURSOR, first, after, last, before)
        found = await info.context.jobs.find(model_id, status, page)
        return connection(JOB_CURSOR, found)  # type: ignore[return-value]

    @strawberry.field(description="Devices that workers have reported.")
    async def devices(self, info: HubInfo) -> list[Device]:
        return await info.context.jobs.devices()  # type: ignore[return-value]


@strawberry.type
class JobMutations:
    @strawberry.mutation(
        description="Queue profiling of a model on the given devices (default: every device "
        f"of the worker that claims it) and batch sizes (default {list(DEFAULT_BATCH_SIZES)})."
    )
    async def profile_model(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        batch_sizes: list[int] | None = None,
        devices: list[str] | None = None,
    ) -> ProfilingJob:
        return await queue_profiling(info, model_id, batch_sizes, devices)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Queue conversion of a PyTorch model into verified TorchScript and ONNX "
        "variants (TensorRT on a GPU worker with TensorRT); `profile` also profiles each variant."
    )
    async def convert_model(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        targets: list[Engine] | None = None,
        profile: bool = False,
    ) -> ProfilingJob:
        model = await info.context.registry.get(model_id)
        require_inputs(model, "conversion")
        job = await queue_conversion(info, model, targets, profile)
        if job is None:
            raise BadUserInput(
                "modelId: only ONNX, TorchScript, torch.export and pickled PyTorch models convert",
                field="modelId",
            )
        return job  # type: ignore[return-value]

    @strawberry.mutation(description="Cancel a queued or running job.")
    async def cancel_profiling_job(self, info: HubInfo, id: strawberry.ID) -> ProfilingJob:
        return await info.context.jobs.cancel(id)  # type: ignore[return-value]

    @strawberry.mutation(
        description="For workers: report devices and claim the oldest job they can run, "
        "under a lease to renew with heartbeatProfilingJob; null when there is none."
    )
    async def claim_profiling_job(
        self,
        info: HubInfo,
        worker: str,
        devices: list[DeviceInput],
        lease_seconds: float = DEFAULT_LEASE_S,
    ) -> ProfilingJob | None:
        if not worker or len(worker) > 256:
            raise BadUserInput("worker: give a name of 1 to 256 characters", field="worker")
        reported = [validated(device, "devices", worker=worker) for device in devices]
        await info.context.jobs.report_devices(reported)
        device_ids = [device.device_id for device in reported]
        job = await info.context.jobs.claim(worker, device_ids, checked_lease(lease_seconds))
        return job  # type: ignore[return-value]

    @strawberry.mutation(
        description="For workers: renew the lease and report progress. A job cancelled "
        "meanwhile comes back CANCELLED: stop working on it."
    )
    async def heartbeat_profiling_job(
        self,
        info: HubInfo,
        id: strawberry.ID,
        worker: str,
        progress: float,
        message: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_S,
    ) -> ProfilingJob:
        if not 0 <= progress <= 1:
            raise BadUserInput("progress: must be between 0 and 1", field="progress")
        return await info.context.jobs.heartbeat(  # type: ignore[return-value]
            id, worker, progress, message, checked_lease(lease_seconds)
        )

    @strawberry.mutation(
        description="For workers: hand a job back unfinished (the worker is stopping): "
        "it is QUEUED again at once for any worker, without using up an attempt."
    )
    async def release_profiling_job(
        self, info: HubInfo, id: strawberry.ID, worker: str, reason: str = "stopping"
    ) -> ProfilingJob:
        return await info.context.jobs.release(id, worker, reason[:1024])  # type: ignore[return-value]

    @strawberry.mutation(
        description="For workers: end a job; with an error it is retried until its attempts "
        "are used up (at once when not retryable), then FAILED with that error."
    )
    async def finish_profiling_job(
        self,
        info: HubInfo,
        id: strawberry.ID,
        worker: str,
        error: str | None = None,
        message: str | None = None,
        retryable: bool = True,
    ) -> ProfilingJob:
        return await info.context.jobs.finish(  # type: ignore[return-value]
            id, worker, error, message, retryable
        )


@strawberry.type
class JobSubscriptions:
    @strawberry.subscription(description="The job now, then after every change until it ends.")
    async def profiling_job(
        self, info: HubInfo, id: strawberry.ID
    ) -> AsyncGenerator[ProfilingJob, None]:
        async for job in info.context.jobs.watch(id):
            yield job  # type: ignore[misc]
