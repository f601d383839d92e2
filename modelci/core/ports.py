"""The ports of the core: what the use cases and the GraphQL resolvers need from storage,
as protocols. The server implements them over MongoDB and the weight store; the tests'
in-memory fakes implement them too. Nothing here imports a web framework, a database
driver or torch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .domain import (
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
    NameValue,
    ProfilingJob,
    StaticProfileResult,
    SweepOutcome,
    Weight,
    WeightFormat,
)
from .identity import ApiToken, Identity, Scope


class UploadedWeight(Protocol):
    """A weight file the server has received: what the upload says of it. Only the
    server reads its bytes (it holds them); the use cases pass it on."""

    filename: str | None
    content_type: str | None


@dataclass
class CheckedWeight:
    """A weight staged and inspected against a model's fields: the fields completed from
    the file (inputs and outputs it says), its format (None: one the hub stores but does
    not read), and the description a model keeps of it. Its bytes stay staged by the
    registry that checked them until a model referencing them is written, or until the
    block that holds it ends (see ``ModelRegistry.checked``)."""

    fields: ModelFields
    format: WeightFormat | None
    description: Weight


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool
    has_previous_page: bool = False


@dataclass(frozen=True)
class PageRequest:
    """Which page of a newest-first list: ``first`` after a cursor (forward), or
    ``last`` before one (backward, towards newer items); cursors are item ids."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


class ModelReads(Protocol):
    """What reading models needs (GraphQL's queries, choosing among models): the
    registry's reads, or a copy of them held in memory that answers the same."""

    async def get(self, model_id: str) -> MLModel:
        """NOT_FOUND when there is no such model."""
        ...

    async def find(self, where: ModelFilter, page: PageRequest) -> Page[MLModel]: ...

    async def get_many(self, model_ids: list[str]) -> list[MLModel | None]:
        """The models in the order asked (None where missing)."""
        ...

    async def children_of(self, model_ids: list[str]) -> list[list[MLModel]]:
        """Each model's converted variants, oldest first."""
        ...


class AliasReads(Protocol):
    """What reading aliases needs (see ``AliasRegistry``)."""

    async def resolve(self, alias: str) -> str: ...

    async def all(self, limit: int) -> list[ModelAlias]: ...

    async def of_models(self, model_ids: list[str]) -> list[list[str]]: ...


class ModelRegistry(Protocol):
    """Models and their weights, stored and fetched; a model with a weight is written in
    two phases: ``checked`` (the weight staged and inspected), then ``insert`` or
    ``update`` within its block. The rules between the phases are the use cases'."""

    def checked(
        self, weight: UploadedWeight, fields: ModelFields, owner: str | None = None
    ) -> AbstractAsyncContextManager[CheckedWeight]:
        """The weight staged and inspected against ``fields`` (BAD_USER_INPUT where the
        file and the fields disagree), for the block to refuse by raising or to pass to
        ``insert`` or ``update``; ``owner``'s checks take turns with other owners'. When
        the block ends the staged bytes are gone: referenced by the model written, or
        removed."""
        ...

    async def holder_of(self, key: ModelKey) -> str | None:
        """The id of the model registered under ``key``, if any."""
        ...

    async def insert(
        self,
        weight: CheckedWeight,
        parent_model_id: str | None = None,
        conversion: ConversionCheck | None = None,
        created_by: str | None = None,
    ) -> MLModel:
        """A new model of ``weight.fields`` referencing the checked weight (inside the
        block of ``checked`` that gave it); CONFLICT when another model holds its key.
        Fields without a version are given the next of their line (``next_version``),
        written into ``weight.fields`` too. A variant (``parent_model_id``) whose source
        is deleted while it is written is not kept: NOT_FOUND."""
        ...

    async def get(self, model_id: str) -> MLModel: ...

    async def find(self, where: ModelFilter, page: PageRequest) -> Page[MLModel]: ...

    async def update(
        self,
        model_id: str,
        fields: ModelFields,
        changed: set[str],
        weight: CheckedWeight | None = None,
    ) -> MLModel:
        """The ``changed`` fields of the model written with their values in ``fields``;
        with ``weight`` (checked against ``fields``), its bytes replace the model's, whose
        old bytes go unless another model references them. CONFLICT when another model
        holds the new key."""
        ...

    async def delete(self, model_id: str, cascade: bool) -> list[MLModel]:
        """The model and, with ``cascade``, its converted variants; CONFLICT if it has
        variants and ``cascade`` is false."""
        ...

    async def get_many(self, model_ids: list[str]) -> list[MLModel | None]: ...

    async def children_of(self, model_ids: list[str]) -> list[list[MLModel]]: ...

    async def set_static_result(self, model_id: str, result: StaticProfileResult) -> MLModel: ...

    async def add_dynamic_result(self, model_id: str, result: DynamicProfileResult) -> MLModel: ...

    async def replace_dynamic_result(
        self, model_id: str, result: DynamicProfileResult, force_insert: bool
    ) -> MLModel: ...

    async def delete_dynamic_results(
        self, model_id: str, ip: str, device_id: str, batch: int | None
    ) -> MLModel: ...

    async def set_tag(self, model_id: str, tag: NameValue) -> MLModel:
        """The tag added, or its value replaced, in one write; CONFLICT when the model
        has ``MAX_TAGS`` tags and not this one."""
        ...

    async def delete_tag(self, model_id: str, name: str) -> MLModel:
        """NOT_FOUND when the model has no tag ``name``."""
        ...

    async def pass_on_to_variants(self, source_id: str) -> None:
        """The model's ``INHERITED_FIELDS`` written onto its variants (and theirs)."""
        ...

    async def next_version(self, fields: ModelFields) -> int:
        """A version number of the fields' architecture, task and dataset never given
        before and above every one registered, taken atomically."""
        ...

    async def version_after(self, fields: ModelFields) -> int:
        """The number ``next_version`` would give now, not taken."""
        ...


class JobQueue(Protocol):
    """Profiling jobs: queued here, claimed by workers under a lease, reported back."""

    # A profiling job's time budget when its caller gives none (the hub's setting).
    default_budget_s: float

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
        max_attempts: int = ...,
    ) -> ProfilingJob:
        """A new QUEUED job, with as many attempts as ``max_attempts`` (its quota is the
        use case's: see ``queuing``)."""
        ...

    def queuing(self, owner: str) -> AbstractAsyncContextManager[None]:
        """One queuing of ``owner``'s at a time in this process, so that a count of their
        queued jobs right after an insert sees the others' inserts settled."""
        ...

    async def count_queued(self, owner: str) -> int:
        """How many of ``owner``'s jobs are QUEUED now."""
        ...

    async def take_back(self, job_id: str) -> bool:
        """Remove the job if it is still QUEUED (one claimed meanwhile stays); whether it
        was removed."""
        ...

    async def get(self, job_id: str) -> ProfilingJob: ...

    async def find(
        self, model_id: str | None, status: JobStatus | None, page: PageRequest
    ) -> Page[ProfilingJob]: ...

    async def has_active(self, model_id: str, kind: JobKind) -> bool:
        """Whether a job of ``kind`` for the model is QUEUED or RUNNING."""
        ...

    async def cancel(self, job_id: str) -> ProfilingJob:
        """Answers once nothing more can be written for the job (see ``writing_for``)."""
        ...

    def writing_for(
        self, job_id: str, worker: str, claimant: str | None
    ) -> AbstractAsyncContextManager[ProfilingJob]:
        """A worker's write for its job: entered only while the job is RUNNING under that
        worker and was claimed with the token named ``claimant`` (else CONFLICT); a cancel
        is acknowledged only after the block has ended."""
        ...

    async def release(
        self, job_id: str, worker: str, claimant: str | None, reason: str
    ) -> ProfilingJob:
        """The worker hands the job back unfinished: QUEUED again, its attempt returned."""
        ...

    async def forget_model(self, model_id: str) -> None:
        """A model was deleted: drop its queued jobs, cancel its running ones."""
        ...

    async def claim(
        self,
        worker: str,
        device_ids: list[str],
        lease_s: float,
        kinds: list[JobKind],
        claimant: str | None,
    ) -> ProfilingJob | None:
        """The oldest job of ``kinds`` this worker can run (queued, or abandoned by a lost
        worker), held by the worker and the token named ``claimant`` until it ends; among
        queued jobs, the owner with the fewest running, then the one waiting longest,
        goes first. An abandoned job whose attempts are used up ends FAILED instead."""
        ...

    async def record_sweep(
        self, job_id: str, worker: str, claimant: str | None, sweep: SweepOutcome
    ) -> ProfilingJob:
        """A device's sweep outcome added to the job (and its log) while the job is
        RUNNING under ``worker``; CONFLICT otherwise."""
        ...

    async def heartbeat(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        progress: float,
        message: str | None,
        lease_s: float,
    ) -> ProfilingJob: ...

    async def finish(
        self,
        job_id: str,
        worker: str,
        claimant: str | None,
        status: JobStatus,
        error: str | None,
        log: list[str],
    ) -> ProfilingJob:
        """The worker's attempt ended, as the use case decided: SUCCEEDED, QUEUED again
        for another attempt, or FAILED with ``error``; ``log`` appended. Only while the
        job is held by the worker and ``claimant``: a cancelled job is returned as it is,
        any other is a CONFLICT."""
        ...

    def watch(self, job_id: str) -> AsyncIterator[ProfilingJob]:
        """The job now, then after every change, until it has ended."""
        ...


class DeviceRegistry(Protocol):
    """The devices workers have reported (profiling jobs may ask only for those)."""

    async def report(self, devices: list[Device], reporter: str | None) -> None:
        """Record the devices, replacing what their (host, device id) reported before; a
        reporter (a token) keeps at most its newest ``MAX_DEVICES_PER_TOKEN``."""
        ...

    async def all(self) -> list[Device]: ...


class AliasRegistry(Protocol):
    """Aliases: one name points at one model at a time; moving it is one atomic write."""

    async def point(self, alias: str, model_id: str) -> ModelAlias:
        """Point ``alias`` at ``model_id``, creating it or moving it from its model."""
        ...

    async def remove(self, alias: str) -> ModelAlias:
        """NOT_FOUND when there is no such alias."""
        ...

    async def resolve(self, alias: str) -> str:
        """The id of the model ``alias`` names; NOT_FOUND when it names none."""
        ...

    async def all(self, limit: int) -> list[ModelAlias]:
        """The aliases by name, at most ``limit``."""
        ...

    async def of_models(self, model_ids: list[str]) -> list[list[str]]:
        """Each model's aliases, by name (for the per-request DataLoader)."""
        ...

    async def drop_for(self, model_ids: list[str]) -> list[str]:
        """Remove the aliases of these (deleted) models; the names removed."""
        ...


class TokenAdmin(Protocol):
    """API tokens (see ``auth``): only a salted hash of each secret is kept."""

    async def create(
        self, name: str, scopes: list[Scope], secret: str | None = None
    ) -> tuple[ApiToken, str]: ...

    async def verify(self, token: str) -> Identity | None: ...

    async def list_all(self) -> list[ApiToken]: ...

    async def revoke(self, id_or_name: str) -> list[ApiToken]: ...


class OperationObserver(Protocol):
    """Told of every GraphQL operation (for metrics); labels are schema names only."""

    def observe(self, operation: str, kind: str, seconds: float, failed: bool) -> None: ...
