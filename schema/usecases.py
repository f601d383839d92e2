"""What each change asked of the hub does: the use cases between resolvers and repositories.

``ModelService``: register a model (and queue its conversion and profiling), register a
converted variant, update, delete (with its variants and its jobs), record profiling
results. ``JobService``: queue profiling or conversion, cancel, and the worker's side
of a job (claim, heartbeat, release, finish). Each method takes domain values and the
caller's name, never a GraphQL ``info``; the rules (batch sizes, devices, conversion
targets, inputs a job needs, quotas, fencing) live here and nowhere else. Reads have
no rules: resolvers read from the repositories (``context``) directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .domain import (
    ConversionCheck,
    Device,
    DynamicProfileResult,
    Engine,
    JobKind,
    MLModel,
    ModelFields,
    ModelStatus,
    ProfilingJob,
    StaticProfileResult,
    WeightFormat,
)
from .errors import BadUserInput
from .weight_formats import WEIGHT_FORMATS, may_lack_input_shapes

if TYPE_CHECKING:
    from .context import DeviceRegistry, JobQueue, ModelRegistry, UploadedWeight

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)
MAX_BATCH_SIZE = 4096
DEFAULT_LEASE_S = 60.0
MAX_LEASE_S = 3600.0
MAX_RELEASE_REASON = 1024

INPUTS_EXAMPLE = 'inputs: [{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]'
CLI_INPUTS_EXAMPLE = "--input input:-1x3x224x224:FP32"


def checked_batch_sizes(batch_sizes: list[int] | None) -> list[int]:
    if batch_sizes is None:
        return list(DEFAULT_BATCH_SIZES)
    if not batch_sizes or any(not 1 <= size <= MAX_BATCH_SIZE for size in batch_sizes):
        raise BadUserInput(
            f"batchSizes: give one or more sizes between 1 and {MAX_BATCH_SIZE}",
            field="batchSizes",
        )
    return sorted(set(batch_sizes))


def checked_lease(lease_seconds: float) -> float:
    if not 1 <= lease_seconds <= MAX_LEASE_S:
        raise BadUserInput(
            f"leaseSeconds: must be between 1 and {MAX_LEASE_S:.0f}", field="leaseSeconds"
        )
    return lease_seconds


def checked_worker(worker: str) -> str:
    """A worker's name; checked before its devices, which carry it."""
    if not worker or len(worker) > 256:
        raise BadUserInput("worker: give a name of 1 to 256 characters", field="worker")
    return worker


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


def require_inputs(model: MLModel, asked: str) -> None:
    """BAD_USER_INPUT for a job on a stored model that could never feed it: a PyTorch file
    (whose inputs the hub cannot read, unlike an ONNX graph's) with none declared."""
    if not model.inputs and may_lack_input_shapes(model.weight.format):
        raise BadUserInput(
            f"modelId: {asked} needs the model's input shapes; model {model.id} declares none "
            f"and its {format_name(model.weight.format)} file does not say them. "
            "Declare them first: "
            f'updateModel(id: "{model.id}", input: {{{INPUTS_EXAMPLE}}})',
            field="modelId",
        )


def conversion_targets(model: MLModel, targets: list[Engine] | None) -> list[Engine] | None:
    """The engines to convert to (None: this model converts to nothing); all the model's
    format converts to when ``targets`` is None."""
    weight_format = model.weight.format
    possible = list(WEIGHT_FORMATS[weight_format].converts_to) if weight_format else None
    if targets is None:
        return possible
    unknown = [target for target in targets if target not in (possible or [])]
    if unknown:
        raise BadUserInput(
            f"targets: a {weight_format.value if weight_format else 'file in this'} "
            f"format converts to {', '.join(t.value for t in possible or []) or 'nothing'}, "
            f"not {', '.join(t.value for t in unknown)}",
            field="targets",
        )
    return sorted(set(targets), key=lambda target: target.value) or None


class JobService:
    """Profiling and conversion jobs: what a client may queue, and a worker's side of them."""

    def __init__(self, registry: ModelRegistry, queue: JobQueue, devices: DeviceRegistry) -> None:
        self.registry = registry
        self.queue = queue
        self.devices = devices

    async def profile(
        self,
        model_id: str,
        batch_sizes: list[int] | None,
        devices: list[str] | None,
        owner: str | None,
    ) -> ProfilingJob:
        sizes = checked_batch_sizes(batch_sizes)
        wanted = await self.checked_devices(devices)
        model = await self.registry.get(model_id)  # NOT_FOUND / BAD_USER_INPUT first
        require_inputs(model, "profiling")
        return await self.queue.enqueue(model_id, JobKind.PROFILE, sizes, wanted, owner=owner)

    async def checked_devices(self, devices: list[str] | None) -> list[str]:
        """The devices asked for, each one a worker has reported (or the CPU)."""
        if not devices:
            return []
        known = {"cpu"} | {device.device_id for device in await self.devices.all()}
        unknown = sorted(set(devices) - known)
        if unknown:
            raise BadUserInput(
                f"devices: no worker has reported {', '.join(unknown)}; "
                f"known devices: {', '.join(sorted(known))}",
                field="devices",
            )
        return sorted(set(devices))

    async def convert(
        self, model_id: str, targets: list[Engine] | None, profile: bool, owner: str | None
    ) -> ProfilingJob:
        model = await self.registry.get(model_id)
        require_inputs(model, "conversion")
        job = await self.queue_conversion(model, targets, profile, owner)
        if job is None:
            raise BadUserInput(
                "modelId: only ONNX, TorchScript, torch.export and pickled PyTorch models convert",
                field="modelId",
            )
        return job

    async def queue_conversion(
        self,
        model: MLModel,
        targets: list[Engine] | None,
        profile: bool,
        owner: str | None,
        quota: bool = True,
    ) -> ProfilingJob | None:
        """A conversion job (None: the model converts to nothing); ``profile``: the worker
        queues profiling of each variant it registers."""
        wanted = conversion_targets(model, targets)
        if wanted is None:
            return None
        return await self.queue.enqueue(
            model.id,
            JobKind.CONVERT,
            targets=wanted,
            profile_variants=profile,
            owner=owner,
            quota=quota,
        )

    async def queue_default_profiling(self, model_id: str, owner: str | None) -> ProfilingJob:
        """Profiling at the default batch sizes, queued with a model its owner registered
        (its quota was checked before the model was stored)."""
        return await self.queue.enqueue(
            model_id, JobKind.PROFILE, list(DEFAULT_BATCH_SIZES), owner=owner, quota=False
        )

    async def check_quota(self, owner: str | None, jobs: int) -> None:
        await self.queue.check_quota(owner, jobs)

    async def forget_models(self, models: list[MLModel]) -> None:
        """Deleted models: their queued jobs dropped, their running ones cancelled."""
        for model in models:
            await self.queue.forget_model(model.id)

    @asynccontextmanager
    async def fenced(
        self, job_id: str | None, worker: str | None, model_id: str
    ) -> AsyncIterator[ProfilingJob | None]:
        """A write about ``model_id``; when it comes from a job (yielded), only while the job
        is the worker's (see ``JobQueue.writing_for``). Without ``job_id`` it is an
        ordinary write (None)."""
        if job_id is None:
            if worker is not None:
                raise BadUserInput("jobId: give the job that `worker` writes for", field="jobId")
            yield None
            return
        if worker is None:
            raise BadUserInput("worker: give the worker that runs `jobId`", field="worker")
        async with self.queue.writing_for(job_id, worker) as job:
            if job.model_id != model_id:
                raise BadUserInput(
                    f"jobId: job {job_id} works on model {job.model_id}, not {model_id}",
                    field="jobId",
                )
            yield job

    async def cancel(self, job_id: str) -> ProfilingJob:
        return await self.queue.cancel(job_id)

    async def claim(
        self, worker: str, devices: list[Device], lease_seconds: float
    ) -> ProfilingJob | None:
        """The worker's devices recorded, then the oldest job it can run, if any."""
        await self.devices.report(devices)
        device_ids = [device.device_id for device in devices]
        return await self.queue.claim(worker, device_ids, checked_lease(lease_seconds))

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        progress: float,
        message: str | None,
        lease_seconds: float,
    ) -> ProfilingJob:
        if not 0 <= progress <= 1:
            raise BadUserInput("progress: must be between 0 and 1", field="progress")
        return await self.queue.heartbeat(
            job_id, worker, progress, message, checked_lease(lease_seconds)
        )

    async def release(self, job_id: str, worker: str, reason: str) -> ProfilingJob:
        return await self.queue.release(job_id, worker, reason[:MAX_RELEASE_REASON])

    async def finish(
        self,
        job_id: str,
        worker: str,
        error: str | None,
        message: str | None,
        retryable: bool,
    ) -> ProfilingJob:
        return await self.queue.finish(job_id, worker, error, message, retryable)


class ModelService:
    """Models and their profiling results; the jobs a change queues or ends go through
    ``JobService``."""

    def __init__(self, registry: ModelRegistry, jobs: JobService) -> None:
        self.registry = registry
        self.jobs = jobs

    async def register(
        self,
        fields: ModelFields,
        weight: UploadedWeight,
        *,
        convert: bool,
        profile: bool,
        owner: str | None,
    ) -> MLModel:
        """Store the model, then queue its conversion and profiling as asked; refused,
        with nothing stored, when those jobs would exceed the owner's quota or could not
        feed the model."""
        await self.jobs.check_quota(owner, int(convert) + int(profile))
        jobs = (("conversion", convert), ("profiling", profile))
        asked = " and ".join(job for job, wanted in jobs if wanted)

        def fed_if_run(checked: ModelFields, weight_format: WeightFormat | None) -> None:
            # Only the checked file tells whether its inputs can be read (a .pt2's can):
            # refused before anything is stored, not by a job that fails later.
            if asked and not checked.inputs and may_lack_input_shapes(weight_format):
                raise no_inputs_to_register(weight_format, asked)

        model = await self.registry.register(fields, weight, accept=fed_if_run)
        if convert:
            await self.jobs.queue_conversion(model, None, profile, owner, quota=False)
        if profile:
            await self.jobs.queue_default_profiling(model.id, owner)
        return model

    async def register_converted(
        self,
        source_id: str,
        engine: Engine,
        weight: UploadedWeight,
        conversion: ConversionCheck,
        *,
        profile: bool,
        job_id: str | None,
        worker: str | None,
    ) -> MLModel:
        """A variant with the source's metadata, its own engine and status CONVERTED,
        written for the worker's job (see ``JobService.fenced``); ``profile`` queues its
        profiling on behalf of whoever asked for the conversion."""
        source = await self.registry.get(source_id)
        fields = ModelFields.model_validate(
            source.model_dump(include=set(ModelFields.model_fields))
            | {"engine": engine, "model_status": [ModelStatus.CONVERTED]}
        )
        async with self.jobs.fenced(job_id, worker, source.id) as job:
            variant = await self.registry.register(
                fields, weight, parent_model_id=source.id, conversion=conversion
            )
            if profile:
                await self.jobs.queue_default_profiling(variant.id, job.owner if job else None)
        return variant

    async def update(
        self, model_id: str, changes: dict[str, Any], weight: UploadedWeight | None
    ) -> MLModel:
        return await self.registry.update(model_id, changes, weight)

    async def delete(self, model_id: str, cascade: bool) -> MLModel:
        """The model (with ``cascade``, its variants too) and its jobs; the model deleted."""
        deleted = await self.registry.delete(model_id, cascade)
        await self.jobs.forget_models(deleted)
        return deleted[0]

    async def set_static_result(
        self,
        model_id: str,
        result: StaticProfileResult,
        job_id: str | None,
        worker: str | None,
    ) -> MLModel:
        async with self.jobs.fenced(job_id, worker, model_id):
            return await self.registry.set_static_result(model_id, result)

    async def add_dynamic_result(self, model_id: str, result: DynamicProfileResult) -> MLModel:
        return await self.registry.add_dynamic_result(model_id, result)

    async def replace_dynamic_result(
        self,
        model_id: str,
        result: DynamicProfileResult,
        force_insert: bool,
        job_id: str | None,
        worker: str | None,
    ) -> MLModel:
        async with self.jobs.fenced(job_id, worker, model_id):
            return await self.registry.replace_dynamic_result(model_id, result, force_insert)

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel:
        return await self.registry.delete_dynamic_results(model_id, ip, device_id, batch)
