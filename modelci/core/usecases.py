"""What each change asked of the hub does: the use cases between resolvers and repositories.

``ModelService``: register a model (and queue its conversion and profiling), register a
converted variant, update, delete (with its variants, jobs and aliases), record profiling
results, point aliases, and choose among models by what they measured (recommend,
compare). ``JobService``: queue profiling or conversion, cancel, and the worker's side
of a job (claim, heartbeat, release, finish). Each method takes domain values and the
caller's name, never a GraphQL ``info``; the rules (batch sizes, devices, conversion
targets, inputs a job needs, quotas, fencing) live here and nowhere else. Reads have
no rules: resolvers read from the repositories (``context``) directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import choosing
from .domain import (
    ANONYMOUS,
    INHERITED_FIELDS,
    ConversionCheck,
    Device,
    DynamicProfileResult,
    Engine,
    JobKind,
    JobStatus,
    MLModel,
    ModelAlias,
    ModelFields,
    ModelFilter,
    ModelKey,
    ModelStatus,
    NameValue,
    ProfilingJob,
    StaticProfileResult,
    SweepOutcome,
    Task,
    WeightFormat,
)
from .errors import BadUserInput, Conflict, NotFound, TooManyRequests, invalid_input
from .weight_formats import WEIGHT_FORMATS, may_lack_input_shapes

if TYPE_CHECKING:
    from .ports import (
        AliasReads,
        AliasRegistry,
        CheckedWeight,
        DeviceRegistry,
        JobQueue,
        ModelReads,
        ModelRegistry,
        UploadedWeight,
    )

MAX_BATCH_SIZE = 4096
# A profiling job's time budget and latency limit, in seconds: beyond these a value is
# a mistake (milliseconds given as seconds, say), not a wish.
MIN_BUDGET_S = 1.0
MAX_BUDGET_S = 24 * 3600.0
MAX_LATENCY_LIMIT_S = 3600.0
DEFAULT_LEASE_S = 60.0
# Attempts a job gets: a failure the worker calls retryable, or a worker lost under its
# lease, queues it again until they are used up.
MAX_ATTEMPTS = 3
# Jobs one token may have waiting at once (the hub's setting overrides it).
MAX_QUEUED_PER_OWNER = 500
MAX_LEASE_S = 3600.0
MAX_RELEASE_REASON = 1024

# Choosing: how many models a recommendation weighs (the newest that match), how many
# options it returns at most, and how many models one comparison may hold.
MAX_CANDIDATES = 1000
MAX_OPTIONS = 100
MAX_COMPARED = 20

# Names one model may have at once (stages, environments, experiments), and devices one
# worker may report: each far above real use, and what keeps a lookup's answer small.
MAX_ALIASES_PER_MODEL = 32
MAX_DEVICES_PER_REPORT = 64

ALIAS_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_ID_PATTERN = re.compile(r"[0-9a-fA-F]{24}")

INPUTS_EXAMPLE = 'inputs: [{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]'
CLI_INPUTS_EXAMPLE = "--input input:-1x3x224x224:FP32"

# What a conversion may register: engines whose files the hub reads and inspects (the
# weight formats' own engines). TensorRT engines and CUSTOMIZED files are not read: a
# variant's bytes must be checked as any upload's are.
READABLE_ENGINES = frozenset(rule.engine for rule in WEIGHT_FORMATS.values())


def checked_batch_sizes(batch_sizes: list[int] | None, max_batch: int | None) -> list[int]:
    """The batch sizes to measure, in order; empty (none given): an adaptive sweep, which
    grows the batch while throughput pays for it."""
    if batch_sizes is None:
        return []
    if not batch_sizes or any(not 1 <= size <= MAX_BATCH_SIZE for size in batch_sizes):
        raise BadUserInput(
            f"batchSizes: give one or more sizes between 1 and {MAX_BATCH_SIZE}, or none "
            "for an adaptive sweep",
            field="batchSizes",
        )
    if max_batch is not None and min(batch_sizes) > max_batch:
        raise BadUserInput(
            f"batchSizes: every size asked for is above maxBatch ({max_batch})",
            field="batchSizes",
        )
    return sorted(set(batch_sizes))


def checked_budget(budget_seconds: float | None, default: float) -> float:
    if budget_seconds is None:
        return default
    if not (math.isfinite(budget_seconds) and MIN_BUDGET_S <= budget_seconds <= MAX_BUDGET_S):
        raise BadUserInput(
            f"budgetSeconds: give a time budget between {MIN_BUDGET_S:.0f} and "
            f"{MAX_BUDGET_S:.0f} seconds ({MAX_BUDGET_S / 3600:.0f} hours); "
            f"none gives the default, {default:g} s",
            field="budgetSeconds",
        )
    return budget_seconds


def checked_latency_limit(max_p99_latency: float | None) -> float | None:
    if max_p99_latency is None:
        return None
    if not (math.isfinite(max_p99_latency) and 0 < max_p99_latency <= MAX_LATENCY_LIMIT_S):
        raise BadUserInput(
            f"maxP99Latency: give a latency in seconds above 0 and at most "
            f"{MAX_LATENCY_LIMIT_S:.0f} (10 ms is 0.01)",
            field="maxP99Latency",
        )
    return max_p99_latency


def checked_max_batch(max_batch: int | None) -> int | None:
    if max_batch is not None and not 1 <= max_batch <= MAX_BATCH_SIZE:
        raise BadUserInput(
            f"maxBatch: give a batch size between 1 and {MAX_BATCH_SIZE}", field="maxBatch"
        )
    return max_batch


def checked_alias(alias: str) -> str:
    """A name an alias may have: letters, digits, '.', '_', '-'; never one that reads as a
    model id, so that wherever an id or an alias is taken (`modelci show`) it is one."""
    if not ALIAS_PATTERN.fullmatch(alias):
        raise BadUserInput(
            "alias: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit (got {alias[:140]!r})",
            field="alias",
        )
    if MODEL_ID_PATTERN.fullmatch(alias):
        raise BadUserInput(
            f"alias: {alias!r} reads as a model id (24 hexadecimal digits); choose a name",
            field="alias",
        )
    return alias


def checked_count(value: int, argument: str, most: int) -> int:
    if not 1 <= value <= most:
        raise BadUserInput(f"{argument}: must be between 1 and {most}", field=argument)
    return value


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


def check_declaration(fields: ModelFields, weight_format: WeightFormat) -> None:
    """BAD_USER_INPUT unless the declared framework and engine fit the file's format; the
    message says what the file is and what to declare instead."""
    rule = WEIGHT_FORMATS[weight_format]
    framework, engine = rule.framework, rule.engine.value
    if fields.engine is not rule.engine or (framework and fields.framework is not framework):
        wanted = (
            f"framework {framework.value}, engine {engine}" if framework else f"engine {engine}"
        )
        raise BadUserInput(
            f"weight: the file is {rule.name}, not what the input declares "
            f"(framework {fields.framework.value}, engine {fields.engine.value}); register it "
            f"with {wanted}",
            field="weight",
        )


COMPILED_PACKAGE = (
    "weight: an AOTInductor package is compiled native code; the hub makes these itself, "
    "by converting a torch.export program (convertModel with targets: [AOTINDUCTOR]), and "
    "takes them in only as a conversion's variants: register the torch.export program "
    "(.pt2) instead"
)


def check_weight(weight: CheckedWeight, *, conversion_variant: bool = False) -> None:
    """A checked weight's fields declare its format (the inspection says so before it
    loads a file; a weight checked elsewhere is held to the same rule). Compiled code (an
    AOTInductor package) comes in as a ``conversion_variant`` only."""
    if weight.format is WeightFormat.AOTI_PACKAGE and not conversion_variant:
        raise BadUserInput(COMPILED_PACKAGE, field="weight")
    if weight.format is not None:
        check_declaration(weight.fields, weight.format)


def describe_key(fields: ModelFields | ModelKey) -> str:
    key = fields.key() if isinstance(fields, ModelFields) else fields
    return (
        f"{key.architecture} {key.framework.value}/{key.engine.value} v{key.version} "
        f"({key.task.value}, {key.dataset})"
    )


def key_taken(fields: ModelFields, holder: str | None = None) -> Conflict:
    """CONFLICT for a key taken, naming the model that holds it where known."""
    named = {"modelId": holder} if holder is not None else {}
    return Conflict(
        f"a model {describe_key(fields)} is already registered"
        + (f": {holder}" if holder is not None else ""),
        key=list(ModelKey.model_fields),
        **named,
    )


def merged_fields(model: MLModel, changes: dict[str, Any]) -> ModelFields:
    """The model's fields with ``changes`` applied; BAD_USER_INPUT naming what is wrong."""
    try:
        return ModelFields.model_validate(
            model.model_dump(include=set(ModelFields.model_fields)) | changes
        )
    except ValidationError as error:
        raise invalid_input(error, "input") from None


# A converted variant's file name: its source's, with the extension of its own format.
FORMAT_EXTENSIONS = {
    WeightFormat.ONNX: ".onnx",
    WeightFormat.TORCHSCRIPT: ".pt",
    WeightFormat.TORCH_EXPORT: ".pt2",
    WeightFormat.TORCH_PICKLE: ".pt",
    WeightFormat.AOTI_PACKAGE: ".aoti.pt2",
}
MODEL_EXTENSIONS = (".onnx", ".pt", ".pth", ".pt2", ".ts", ".torchscript", ".zip", ".bin")


def variant_filename(source_filename: str, weight_format: WeightFormat | None) -> str | None:
    """``<source stem>.<ext>`` for a variant of ``weight_format`` (None: a format the hub
    does not read, which keeps the name it was uploaded with)."""
    if weight_format is None:
        return None
    stem = source_filename
    if stem.lower().endswith(MODEL_EXTENSIONS) and "." in stem.lstrip("."):
        stem = stem.rsplit(".", 1)[0]
    return stem + FORMAT_EXTENSIONS[weight_format]


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
    """The engines to convert to (None: this model converts to nothing); the format's
    default targets when ``targets`` is None."""
    weight_format = model.weight.format
    possible = list(WEIGHT_FORMATS[weight_format].converts_to) if weight_format else None
    if targets is None:
        defaults = WEIGHT_FORMATS[weight_format].default_targets if weight_format else ()
        return list(defaults) or None
    unknown = [target for target in targets if target not in (possible or [])]
    if unknown:
        raise BadUserInput(
            f"targets: the {weight_format.value if weight_format else 'file in this'} "
            f"format converts to {', '.join(t.value for t in possible or []) or 'nothing'}, "
            f"not {', '.join(t.value for t in unknown)}",
            field="targets",
        )
    return sorted(set(targets), key=lambda target: target.value) or None


class JobService:
    """Profiling and conversion jobs: what a client may queue, and a worker's side of them."""

    def __init__(
        self,
        registry: ModelRegistry,
        queue: JobQueue,
        devices: DeviceRegistry,
        max_queued_per_owner: int = MAX_QUEUED_PER_OWNER,
    ) -> None:
        self.registry = registry
        self.queue = queue
        self.devices = devices
        self.max_queued_per_owner = max_queued_per_owner

    async def enqueue(
        self,
        model_id: str,
        kind: JobKind,
        *,
        owner: str | None,
        quota: bool,
        batch_sizes: list[int] | None = None,
        devices: list[str] | None = None,
        targets: list[Engine] | None = None,
        profile_variants: bool = False,
        budget_seconds: float | None = None,
        max_p99_latency: float | None = None,
        max_batch: int | None = None,
    ) -> ProfilingJob:
        """A new QUEUED job; with ``quota``, TOO_MANY_REQUESTS when its owner has as many
        queued as one may. Counted after the job is written, so that requests of one
        owner at the same instant see each other (a count before the insert let them all
        pass it): one that finds the owner past the quota takes its own job back. A job
        claimed meanwhile has left the queue, and stays."""

        async def insert() -> ProfilingJob:
            return await self.queue.enqueue(
                model_id,
                kind,
                batch_sizes,
                devices,
                targets,
                profile_variants,
                owner=owner,
                budget_seconds=budget_seconds,
                max_p99_latency=max_p99_latency,
                max_batch=max_batch,
                max_attempts=MAX_ATTEMPTS,
            )

        if not quota or owner is None:
            return await insert()
        # One at a time per owner in this process, so that one of many requests at the
        # same instant takes the last place; across processes the count after the insert
        # still keeps the quota (refusing more than needed, at worst).
        async with self.queue.queuing(owner):
            job = await insert()
            queued = await self.queue.count_queued(owner)
            if queued > self.max_queued_per_owner and await self.queue.take_back(job.id):
                raise self.over_quota(owner, queued - 1)
        return job

    async def check_quota(self, owner: str | None, jobs: int) -> None:
        """TOO_MANY_REQUESTS unless ``owner`` may queue ``jobs`` more jobs now."""
        if owner is None or jobs <= 0:  # nothing to queue: no count to read
            return
        queued = await self.queue.count_queued(owner)
        if queued + jobs > self.max_queued_per_owner:
            raise self.over_quota(owner, queued)

    def over_quota(self, owner: str, queued: int) -> TooManyRequests:
        return TooManyRequests(
            f"{owner} has {queued} jobs queued, and {self.max_queued_per_owner} is the most "
            "one token may have waiting; wait for some to run, or cancel some"
        )

    async def profile(
        self,
        model_id: str,
        batch_sizes: list[int] | None,
        devices: list[str] | None,
        owner: str | None,
        budget_seconds: float | None = None,
        max_p99_latency: float | None = None,
        max_batch: int | None = None,
    ) -> ProfilingJob:
        """Profiling under a time budget (default: the hub's), at the batch sizes given or
        (none given) in an adaptive sweep, which may stop at a latency limit or batch."""
        limit = checked_max_batch(max_batch)
        sizes = checked_batch_sizes(batch_sizes, limit)
        budget = checked_budget(budget_seconds, self.queue.default_budget_s)
        latency = checked_latency_limit(max_p99_latency)
        wanted = await self.checked_devices(devices)
        model = await self.registry.get(model_id)  # NOT_FOUND / BAD_USER_INPUT first
        require_inputs(model, "profiling")
        return await self.enqueue(
            model_id,
            JobKind.PROFILE,
            batch_sizes=sizes,
            devices=wanted,
            owner=owner,
            quota=True,
            budget_seconds=budget,
            max_p99_latency=latency,
            max_batch=limit,
        )

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
        wanted = conversion_targets(model, targets) or []
        existing = await self.variants_already_there(model, wanted)
        if existing and not profile:  # converting again would only find them there
            missing = [target for target in wanted if target not in existing]
            if not missing:
                raise Conflict(
                    f"model {model.id} already has its "
                    + ", ".join(f"{target.value} variant {existing[target]}" for target in wanted)
                    + "; convert with profile: true to profile them, or delete them first",
                    variantIds=[existing[target] for target in wanted],
                )
            targets = missing
        job = await self.queue_conversion(model, targets, profile, owner)
        if job is None:
            raise BadUserInput(
                "modelId: only ONNX, TorchScript, torch.export and pickled PyTorch models convert",
                field="modelId",
            )
        return job

    async def variants_already_there(
        self, model: MLModel, targets: list[Engine]
    ) -> dict[Engine, str]:
        """The model's variants already there, by engine; CONFLICT, before any work, for a
        target whose variant key another model holds (not a variant of this one): its
        conversion could only fail after it was done."""
        from .ports import PageRequest  # the context imports this module

        held, existing = [], {}
        for target in targets:
            key = model.key().model_dump() | {"engine": target}
            found = await self.registry.find(ModelFilter(**key), PageRequest(first=1))
            for holder in found.items:
                if holder.parent_model_id == model.id:
                    existing[target] = holder.id
                else:
                    held.append((target, holder.id))
        if held:
            free = [target.value for target in targets if target not in dict(held)]
            raise Conflict(
                "; ".join(
                    f"{target.value}: model {holder} holds the key its variant would have "
                    "(same architecture, framework, version, task and dataset) and is not a "
                    "variant of this one"
                    for target, holder in held
                )
                + "; register this model with another version to convert it there"
                + (f", or convert to {', '.join(free)} only" if free else ""),
                holders={target.value: holder for target, holder in held},
            )
        return existing

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
        return await self.enqueue(
            model.id,
            JobKind.CONVERT,
            targets=wanted,
            profile_variants=profile,
            owner=owner,
            quota=quota,
        )

    async def queue_default_profiling(
        self, model_id: str, owner: str | None, quota: bool = False
    ) -> ProfilingJob:
        """An adaptive sweep under the default budget, queued for ``owner``: with a model
        they registered (``quota``), or a variant their conversion made."""
        return await self.enqueue(
            model_id,
            JobKind.PROFILE,
            batch_sizes=[],
            owner=owner,
            quota=quota,
            budget_seconds=self.queue.default_budget_s,
        )

    async def queue_default_profiling_once(self, model_id: str, owner: str | None) -> None:
        """``queue_default_profiling``, unless the model's profiling is queued or running
        already: a conversion found its variant there, and asking again must not pile up
        jobs. (Two conversions finding it at the same instant may both queue one.)"""
        if not await self.queue.has_active(model_id, JobKind.PROFILE):
            await self.queue_default_profiling(model_id, owner)

    async def forget_models(self, models: list[MLModel]) -> None:
        """Deleted models: their queued jobs dropped, their running ones cancelled."""
        for model in models:
            await self.queue.forget_model(model.id)

    @asynccontextmanager
    async def fenced(
        self, job_id: str | None, worker: str | None, model_id: str, claimant: str | None
    ) -> AsyncIterator[ProfilingJob | None]:
        """A write about ``model_id``; when it comes from a job (yielded), only while the job
        is the worker's and was claimed with the caller's token, ``claimant`` (see
        ``JobQueue.writing_for``). Without ``job_id`` it is an ordinary write (None)."""
        if job_id is None:
            if worker is not None:
                raise BadUserInput("jobId: give the job that `worker` writes for", field="jobId")
            yield None
            return
        if worker is None:
            raise BadUserInput("worker: give the worker that runs `jobId`", field="worker")
        async with self.queue.writing_for(job_id, worker, claimant) as job:
            if job.model_id != model_id:
                raise BadUserInput(
                    f"jobId: job {job_id} works on model {job.model_id}, not {model_id}",
                    field="jobId",
                )
            yield job

    async def cancel(self, job_id: str) -> ProfilingJob:
        return await self.queue.cancel(job_id)

    async def claim(
        self,
        worker: str,
        devices: list[Device],
        lease_seconds: float,
        kinds: list[JobKind] | None,
        claimant: str | None,
    ) -> ProfilingJob | None:
        """The worker's devices recorded, then the oldest job of ``kinds`` (default:
        any) it can run, if any, held by the worker and the caller's token (``claimant``)
        until it ends: no other token can write for it, whatever worker name it gives."""
        if kinds is not None and not kinds:
            raise BadUserInput(
                "kinds: give one kind of job or more, or none for all", field="kinds"
            )
        if len(devices) > MAX_DEVICES_PER_REPORT:
            raise BadUserInput(
                f"devices: a worker reports at most {MAX_DEVICES_PER_REPORT} devices",
                field="devices",
            )
        await self.devices.report(devices, claimant)
        device_ids = [device.device_id for device in devices]
        wanted = sorted(set(kinds or JobKind), key=lambda kind: kind.value)
        lease = checked_lease(lease_seconds)
        return await self.queue.claim(worker, device_ids, lease, wanted, claimant)

    async def record_sweep(
        self, job_id: str, worker: str, claimant: str | None, sweep: SweepOutcome
    ) -> ProfilingJob:
        """A device's sweep outcome on the worker's job (refused, CONFLICT, once the job is
        not RUNNING under that worker and token)."""
        return await self.queue.record_sweep(job_id, worker, claimant, sweep)

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        progress: float,
        message: str | None,
        lease_seconds: float,
    ) -> ProfilingJob:
        if not 0 <= progress <= 1:
            raise BadUserInput("progress: must be between 0 and 1", field="progress")
        return await self.queue.heartbeat(
            job_id, worker, claimant, progress, message, checked_lease(lease_seconds)
        )

    async def release(
        self, job_id: str, worker: str, claimant: str | None, reason: str
    ) -> ProfilingJob:
        return await self.queue.release(job_id, worker, claimant, reason[:MAX_RELEASE_REASON])

    async def finish(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        error: str | None,
        message: str | None,
        retryable: bool,
    ) -> ProfilingJob:
        """The worker's attempt ended: SUCCEEDED without ``error``; with one, QUEUED again
        while it is ``retryable`` and attempts are left, FAILED otherwise."""
        job = await self.queue.get(job_id)
        if error is None:
            status, note = JobStatus.SUCCEEDED, "succeeded"
        elif retryable and job.attempts < job.max_attempts:
            status, note = JobStatus.QUEUED, f"attempt {job.attempts} failed, queued again: {error}"
            error = None
        else:
            status, note = JobStatus.FAILED, f"failed: {error}"
        log = [line for line in (message, note) if line]
        return await self.queue.finish(job_id, worker, claimant, status, error, log)


class ModelService:
    """Models and their profiling results; the jobs a change queues or ends go through
    ``JobService``."""

    def __init__(
        self,
        registry: ModelRegistry,
        jobs: JobService,
        aliases: AliasRegistry,
        reads: ModelReads | None = None,
        alias_reads: AliasReads | None = None,
    ) -> None:
        self.registry = registry
        self.jobs = jobs
        self.aliases = aliases
        # What choosing and naming read (a copy in memory, say); the rules of a change
        # read ``registry`` and ``aliases`` themselves.
        self.reads: ModelReads = reads or registry
        self.alias_reads: AliasReads = alias_reads or aliases

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
        await self.refuse_taken_key(fields)
        async with self.registry.checked(weight, fields, owner) as checked:
            check_weight(checked)
            # Only the checked file tells whether its inputs can be read (a .pt2's can):
            # refused before anything is stored, not by a job that fails later.
            if asked and not checked.fields.inputs and may_lack_input_shapes(checked.format):
                raise no_inputs_to_register(checked.format, asked)
            # Numbered (a version left out) by the insert, after every check.
            model = await self.registry.insert(checked, created_by=owner or ANONYMOUS)
        try:
            if convert:
                await self.jobs.queue_conversion(model, None, profile, owner)
            if profile:
                await self.jobs.queue_default_profiling(model.id, owner, quota=True)
        except TooManyRequests:
            # Registrations of one token at the same instant all passed the count above:
            # the one the quota refuses now takes back what it stored.
            await self.jobs.forget_models(await self.registry.delete(model.id, cascade=True))
            raise
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
        claimant: str | None,
    ) -> MLModel:
        """A variant with the source's metadata, its own engine and status CONVERTED,
        written for the worker's conversion job (see ``JobService.fenced``) and only for
        an engine that job asked for and whose files the hub reads and inspects; its
        bytes go through the same inspection as any upload. ``profile`` queues its
        profiling on behalf of whoever asked for the conversion. Where the source already
        has that variant, CONFLICT names it (``variantId``), and ``profile`` queues the
        profiling of that one: converting again with profiling asked for profiles what
        the conversion stands for.

        A variant without a job is BAD_USER_INPUT (a request the caller can correct, as
        with ``jobId`` and ``worker`` given apart): what a worker uploads comes from code
        run in the cage, and only a job says which engines were asked for."""
        if job_id is None:
            raise BadUserInput(
                "jobId: a converted variant is registered only for the conversion job that "
                "produced it; give jobId and worker",
                field="jobId",
            )
        if engine not in READABLE_ENGINES:
            readable = ", ".join(sorted(each.value for each in READABLE_ENGINES))
            raise BadUserInput(
                f"engine: a conversion registers only variants the hub can read and inspect "
                f"({readable}), not {engine.value}",
                field="engine",
            )
        source = await self.registry.get(source_id)
        fields = ModelFields.model_validate(
            source.model_dump(include=set(ModelFields.model_fields))
            | {"engine": engine, "model_status": [ModelStatus.CONVERTED]}
        )
        async with self.jobs.fenced(job_id, worker, source.id, claimant) as job:
            assert job is not None  # a job_id was given
            if job.kind is not JobKind.CONVERT:
                raise BadUserInput(
                    f"jobId: job {job.id} is a {job.kind.value} job; variants are registered "
                    "for a CONVERT job",
                    field="jobId",
                )
            if engine not in job.targets:
                asked = ", ".join(target.value for target in job.targets) or "none"
                raise BadUserInput(
                    f"engine: job {job.id} converts to {asked}, not {engine.value}",
                    field="engine",
                )
            owner = job.owner
            # Profiling is queued as the conversion's owner asked, whatever the worker says:
            # it is their quota it comes out of.
            profile = profile and job.profile_variants
            try:
                await self.refuse_taken_key(fields)
                async with self.registry.checked(weight, fields, owner) as checked:
                    check_weight(checked, conversion_variant=True)
                    # Workers upload variants under a scratch name: a variant is named
                    # after its source.
                    named = variant_filename(source.weight.filename, checked.format)
                    if named is not None:
                        checked.description.filename = named
                    variant = await self.registry.insert(
                        checked,
                        parent_model_id=source.id,
                        conversion=conversion,
                        created_by=owner or ANONYMOUS,
                    )
            except Conflict:
                (variants,) = await self.registry.children_of([source.id])
                existing = next((v for v in variants if v.key() == fields.key()), None)
                if existing is None:
                    raise  # another model holds the key: not this source's variant
                queued = profile
                if queued:
                    await self.jobs.queue_default_profiling_once(existing.id, owner)
                raise Conflict(
                    f"model {source.id} already has its {engine.value} variant, "
                    f"{existing.id}" + ("; its profiling is queued" if queued else ""),
                    variantId=existing.id,
                    profilingQueued=queued,
                ) from None
            if profile:
                await self.jobs.queue_default_profiling(variant.id, owner)
        # The source's metrics as they are now, should it have changed since it was read.
        await self.registry.pass_on_to_variants(source.id)
        return variant

    async def update(
        self,
        model_id: str,
        changes: dict[str, Any],
        weight: UploadedWeight | None,
        owner: str | None = None,
    ) -> MLModel:
        """``changes`` applied to the model's fields; a new ``weight`` is checked against
        them and replaces the stored bytes, with the inputs and outputs its file says,
        while nothing was made from them (``refuse_fixed_weight``). A source's metrics,
        params, description and source are passed on to its variants; a variant's are
        its source's, not changed on it."""
        current = await self.registry.get(model_id)
        inherited = [field for field in INHERITED_FIELDS if field in changes]
        if current.parent_model_id is not None and inherited:
            raise BadUserInput(
                f"input.{inherited[0]}: model {current.id} is a converted variant of model "
                f"{current.parent_model_id} and shows its {', '.join(INHERITED_FIELDS)}; "
                f"change {', '.join(inherited)} there",
                field=inherited[0],
                sourceId=current.parent_model_id,
            )
        if weight is not None:
            await self.refuse_fixed_weight(current)
        fields = merged_fields(current, changes)
        if weight is None:
            if current.weight.format is not None:
                check_declaration(fields, current.weight.format)
            updated = await self.registry.update(model_id, fields, set(changes))
        else:
            async with self.registry.checked(weight, fields, owner) as checked:
                check_weight(checked)
                read_from_file = {
                    field
                    for field in ("inputs", "outputs")
                    if getattr(checked.fields, field) != getattr(fields, field)
                }
                updated = await self.registry.update(
                    model_id, checked.fields, set(changes) | read_from_file, checked
                )
        if inherited:
            await self.registry.pass_on_to_variants(model_id)
        return updated

    async def refuse_fixed_weight(self, model: MLModel) -> None:
        """CONFLICT when the model's weight may not be replaced: something was made from
        it (a profile, a converted variant) or a job is at work on it, and would describe
        bytes that are gone; a variant's weight is what its conversion made and checked.
        A new weight is a new version. (Checked before the write: a result a worker
        delivers meanwhile comes from a job found running here.)"""
        from .ports import PageRequest  # the context imports this module

        if model.parent_model_id is not None:
            raise Conflict(
                f"model {model.id} is a converted variant of model {model.parent_model_id}: "
                "its weight is what the conversion made and checked against the source's, "
                "and is not replaced; register a new weight as a new version of the source",
                sourceId=model.parent_model_id,
            )
        made = []
        if model.profile_result.static_result is not None:
            made.append("a static profile")
        if dynamic := len(model.profile_result.dynamic_results):
            made.append(f"{dynamic} dynamic profiling result{'s' * (dynamic > 1)}")
        (variants,) = await self.registry.children_of([model.id])
        if variants:
            ids = ", ".join(variant.id for variant in variants)
            made.append(f"{len(variants)} converted variant{'s' * (len(variants) > 1)} ({ids})")
        clauses = [f"has {' and '.join(made)} made from its weight"] if made else []
        running = await self.jobs.queue.find(model.id, JobStatus.RUNNING, PageRequest(first=1))
        for job in running.items:
            clauses.append(f"has a {job.kind.value.lower()} job ({job.id}) running on it")
        if clauses:
            after = await self.registry.version_after(model)
            raise Conflict(
                f"version {model.version} of {model.architecture} {' and '.join(clauses)}: "
                "its weight is fixed; register the new weight as a new version (leave "
                f"version out to get {after})",
                nextVersion=after,
            )

    async def refuse_taken_key(self, fields: ModelFields) -> None:
        """CONFLICT, before a weight is inspected, when another model holds the key (the
        insert refuses it too, should one take it meanwhile); none without a version,
        which the insert numbers."""
        if fields.version is None:
            return
        holder = await self.registry.holder_of(fields.key())
        if holder is not None:
            raise key_taken(fields, holder)

    async def delete(self, model_id: str, cascade: bool) -> MLModel:
        """The model (with ``cascade``, its variants too), its jobs and, with ``cascade``,
        the aliases that name any of them; the model deleted. Without ``cascade`` a model
        an alias names is a CONFLICT (as one with variants is): an alias is how a team
        serves a model, so it is not dropped unasked."""
        model = await self.registry.get(model_id)  # NOT_FOUND / BAD_USER_INPUT first
        if not cascade:
            (names,) = await self.aliases.of_models([model.id])
            if names:
                raise Conflict(
                    f"model {model.id} is named by the alias(es) {', '.join(names)}; move "
                    "them first (setModelAlias), or delete it and remove them with "
                    f'deleteModel(id: "{model.id}", cascade: true) in the API or '
                    f"`modelci rm {model.id} --cascade` on the command line (which deletes "
                    "its variants too)",
                    aliases=names,
                )
        deleted = await self.registry.delete(model_id, cascade)
        # After the models: an alias pointed at one meanwhile goes too (see set_alias).
        await self.aliases.drop_for([each.id for each in deleted])
        await self.jobs.forget_models(deleted)
        return deleted[0]

    # Tags

    async def set_tag(self, model_id: str, name: str, value: str) -> MLModel:
        """The tag added to the model, or its value replaced, in one write."""
        try:
            tag = NameValue(name=name, value=value)
        except ValidationError as error:
            raise BadUserInput(
                "; ".join(f"{item['loc'][0]}: {item['msg']}" for item in error.errors()),
                fields=[str(item["loc"][0]) for item in error.errors()],
            ) from None
        return await self.registry.set_tag(model_id, tag)

    async def delete_tag(self, model_id: str, name: str) -> MLModel:
        return await self.registry.delete_tag(model_id, name)

    # Aliases

    async def set_alias(self, alias: str, model_id: str) -> ModelAlias:
        """Point ``alias`` at the model, creating it or moving it in one write."""
        checked_alias(alias)
        await self.registry.get(model_id)
        (names,) = await self.aliases.of_models([model_id])
        if len(names) >= MAX_ALIASES_PER_MODEL and alias not in names:
            raise Conflict(
                f"model {model_id} has {len(names)} aliases, the most one model may have; "
                "remove one (deleteModelAlias) or point it elsewhere first",
                aliases=names,
            )
        pointed = await self.aliases.point(alias, model_id)
        # A delete of the model between the check and the write dropped its aliases
        # before this one was written: drop it too, so that no alias names a deleted model.
        if (await self.registry.get_many([model_id]))[0] is None:
            await self.aliases.drop_for([model_id])
            raise NotFound(f"no model with id {model_id}")
        return pointed

    async def delete_alias(self, alias: str) -> ModelAlias:
        return await self.aliases.remove(checked_alias(alias))

    async def named(self, alias: str) -> MLModel:
        """The model ``alias`` names."""
        model_id = await self.alias_reads.resolve(checked_alias(alias))
        try:
            return await self.reads.get(model_id)
        except NotFound:
            raise NotFound(f"alias {alias!r} names model {model_id}, which is gone") from None

    # Choosing

    async def recommend(
        self, task: Task, architecture: str | None, dataset: str | None, goal: choosing.Goal
    ) -> choosing.Recommendation:
        """The (model, device, batch) options of the newest ``MAX_CANDIDATES`` models of the
        task (and architecture, dataset, which variants share with their source) weighed
        against the goal (``choosing.recommend``)."""
        from .ports import PageRequest  # the context imports this module

        where = ModelFilter(task=task, architecture=architecture, dataset=dataset)
        page = await self.reads.find(where, PageRequest(first=MAX_CANDIDATES))
        found = choosing.recommend(page.items, goal)
        found.truncated = page.has_next_page
        return found

    async def compare(
        self, model_ids: list[str]
    ) -> tuple[list[MLModel], list[choosing.ComparisonRow]]:
        """The models, in the order asked, and their dynamic results aligned by (device,
        batch)."""
        if not 1 <= len(model_ids) <= MAX_COMPARED:
            raise BadUserInput(f"ids: give 1 to {MAX_COMPARED} model ids", field="ids")
        repeated = sorted({each for each in model_ids if model_ids.count(each) > 1})
        if repeated:
            raise BadUserInput(f"ids: {', '.join(repeated)} given more than once", field="ids")
        found = await self.reads.get_many(model_ids)
        missing = [model_id for model_id, model in zip(model_ids, found, strict=True) if not model]
        if missing:
            raise NotFound(f"no model with id {', '.join(missing)}", ids=missing)
        models = [model for model in found if model is not None]
        return models, choosing.compare(models)

    async def set_static_result(
        self,
        model_id: str,
        result: StaticProfileResult,
        job_id: str | None,
        worker: str | None,
        claimant: str | None,
    ) -> MLModel:
        async with self.jobs.fenced(job_id, worker, model_id, claimant):
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
        claimant: str | None,
    ) -> MLModel:
        async with self.jobs.fenced(job_id, worker, model_id, claimant):
            return await self.registry.replace_dynamic_result(model_id, result, force_insert)

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel:
        return await self.registry.delete_dynamic_results(model_id, ip, device_id, batch)
