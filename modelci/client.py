"""Python client for a ModelCI Hub: ``ModelHub`` (sync) and ``AsyncModelHub``.

Methods mirror ML-Model-CI's ModelService (``register_model``, ``get_models``,
``get_by_id``, ``update_model``, the profiling-result calls, ``delete_model``) plus jobs.
They run the typed operations generated from ``modelci/operations/*.graphql`` and
``schema.graphql`` (``modelci.graphql_client``, also reachable as ``hub.api``), so what
they return are the schema's own types: ``MLModel``, ``ProfilingJob``, with the schema's
enums (``Engine``, ``WeightFormat``, …) and snake_case fields. They raise the hub's typed
errors (``modelci.core.errors``: ``NotFound``, ``Conflict``, …) by ``extensions.code``.

Arguments are checked against the schema's input types before anything is sent: enums
by name or member (the generated ones, or the hub's domain enums), inputs as pydantic
objects (generated inputs, domain models, earlier results) or plain dicts. Uploads and
downloads stream in chunks and report progress through a callback.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError

from .core.errors import BadUserInput, HubError, invalid_input
from .graphql_client import (
    CompareModelsCompareModels,
    ConversionCheckInput,
    CreateApiTokenCreateApiToken,
    DataType,
    DeleteModelAliasDeleteModelAlias,
    DeviceInput,
    DeviceKind,
    DynamicProfileResult,
    DynamicProfileResultInput,
    Engine,
    Framework,
    GetApiTokensApiTokens,
    GetDevicesDevices,
    GetLineageModelChildren,
    GetModelAliasesModelAliases,
    GetModelModel,
    HubOperations,
    IOShapeInput,
    JobKind,
    JobStatus,
    Metric,
    MetricValueInput,
    MLModel,
    ModelInput,
    ModelInputFormat,
    ModelStatus,
    ModelUpdateInput,
    ProfileFilterInput,
    ProfilingJob,
    RecommendationGoalInput,
    RecommendRecommend,
    Scope,
    SetModelAliasSetModelAlias,
    Shortfall,
    StaticProfileResultInput,
    SweepOutcomeInput,
    SweepStopReason,
    Task,
    Upload,
    WeightFormat,
)
from .transport import (
    CHUNK_SIZE,
    CountingReader,
    HubUnreachable,
    InternalServerError,
    Progress,
    raise_for,
)

__all__ = [
    "AsyncModelHub",
    "ConversionCheckInput",
    "DataType",
    "DeviceInput",
    "DeviceKind",
    "DynamicProfileResult",
    "DynamicProfileResultInput",
    "Engine",
    "Framework",
    "HubUnreachable",
    "IOShapeInput",
    "InternalServerError",
    "JobKind",
    "JobStatus",
    "MLModel",
    "Metric",
    "MetricValueInput",
    "ModelHub",
    "ModelInput",
    "ModelInputFormat",
    "ModelStatus",
    "ModelUpdateInput",
    "ProfileFilterInput",
    "ProfilingJob",
    "Progress",
    "Scope",
    "Shortfall",
    "StaticProfileResultInput",
    "SweepOutcomeInput",
    "SweepStopReason",
    "Task",
    "WeightFormat",
]

PAGE_SIZE = 100
FINISHED_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

Input = TypeVar("Input", bound=BaseModel)
NodeT_co = TypeVar("NodeT_co", covariant=True)
Method = TypeVar("Method", bound=Callable[..., Any])
ModelHubT = TypeVar("ModelHubT")
Params = ParamSpec("Params")
Result = TypeVar("Result")

# The hub's messages are written for GraphQL callers; a caller of this client wrote Python,
# so its errors name the Python ways of saying the same.
PYTHON_REWRITES = [
    (
        re.compile(
            r'deleteModel\(id: "(\w+)", cascade: true\) in the API or '
            r"`modelci rm \w+ --cascade` on the command line"
        ),
        r'hub.delete_model("\1", cascade=True)',
    ),
    (
        re.compile(r'updateModel\(id: "(\w+)", input: \{inputs: (\[.*?\])\}\)'),
        r'hub.update_model("\1", inputs=\2)',
    ),
]
PYTHON_PHRASES = {
    "(setModelAlias)": "(hub.set_alias)",
    "forceInsert: true": "force_insert=True",
    "modelAliases lists them": "hub.aliases() lists them",
    "convert: false, profile: false": "convert=False, profile=False",
    "cascade: true": "cascade=True",
    'inputs: [{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]': (
        'inputs=[{"name": "input", "shape": [-1, 3, 224, 224], "dtype": "FP32"}]'
    ),
    '[{name: "input", shape: [-1, 3, 224, 224], dtype: TYPE_FP32}]': (
        '[{"name": "input", "shape": [-1, 3, 224, 224], "dtype": "FP32"}]'
    ),
}
CAMEL_CASE = re.compile(r"\b[a-z][a-z0-9]*(?:[A-Z][a-z0-9]+)+\b")
INPUT_FIELD = re.compile(r"\binput\.([A-Za-z][A-Za-z0-9]*)")


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def in_python_words(message: str, parameters: set[str], takes_fields: bool) -> str:
    """A hub message as the caller of a method with these keyword ``parameters`` would
    say it; ``takes_fields``: the method takes an input's fields as keyword arguments."""
    for pattern, python in PYTHON_REWRITES:
        message = pattern.sub(python, message)
    for phrase, python in PYTHON_PHRASES.items():
        message = message.replace(phrase, python)
    if takes_fields:
        message = INPUT_FIELD.sub(lambda found: snake_case(found[1]), message)
    return CAMEL_CASE.sub(
        lambda found: snake_case(found[0]) if snake_case(found[0]) in parameters else found[0],
        message,
    )


def speaks_python(method: Method) -> Method:
    """The method's hub errors in the words of its own signature (``force_insert=True``,
    not ``forceInsert: true``), unless its client is told otherwise (the CLI's own words)."""
    signature = inspect.signature(method)
    parameters = set(signature.parameters) - {"self"}
    takes_fields = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())

    @functools.wraps(method)
    def wrapper(self: ModelHub, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except HubError as error:
            if self.python_errors:
                error.message = in_python_words(error.message, parameters, takes_fields)
                error.args = (error.message,)
            raise

    return wrapper  # type: ignore[return-value]


def python_errors(kind: type[ModelHubT]) -> type[ModelHubT]:
    """Every public method of the client speaking Python in its errors."""
    for name, member in list(vars(kind).items()):
        if inspect.isfunction(member) and not name.startswith("_") and name != "close":
            setattr(kind, name, speaks_python(member))
    return kind


def io_names(value: Any) -> Any:
    """Dtypes and layouts as the CLI takes them too: ``FP32`` (or ``fp32``) for
    ``TYPE_FP32``, ``NCHW`` for ``FORMAT_NCHW``."""
    if isinstance(value, list):
        return [io_names(item) for item in value]
    if not isinstance(value, dict):
        return value
    named = {key: io_names(item) for key, item in value.items()}
    for key, prefix, kind in (
        ("dtype", "TYPE_", DataType),
        ("format", "FORMAT_", ModelInputFormat),
    ):
        given_name = named.get(key)
        if isinstance(given_name, str) and given_name not in kind.__members__:
            spelled = prefix + given_name.upper().removeprefix(prefix)
            if spelled in kind.__members__:
                named[key] = spelled
    return named


def plain(value: Any) -> Any:
    """Plain values for an input: models as dicts, enums by their GraphQL name (the
    hub's domain enums carry other values, e.g. WeightFormat.TORCHSCRIPT = 'TorchScript')."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def as_input(kind: type[Input], value: Any, argument: str) -> Input:
    """``value`` as the schema's input type ``kind`` (snake_case or camelCase keys), or
    BAD_USER_INPUT naming what is wrong, before anything is sent."""
    if isinstance(value, kind):
        return value
    try:
        return kind.model_validate(io_names(plain(value)))
    except ValidationError as error:
        raise invalid_input(error, argument) from None


def given(fields: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments a caller gave a value (None: not given)."""
    return {key: value for key, value in fields.items() if value is not None}


def enum_name(value: Any) -> Any:
    return value.name if isinstance(value, Enum) else value


EnumKind = TypeVar("EnumKind", bound=Enum)


def optional_enum(kind: type[EnumKind], value: Any, argument: str) -> EnumKind | None:
    return None if value is None else enum_value(kind, value, argument)


def enum_value(kind: type[EnumKind], value: Any, argument: str) -> EnumKind:
    """``value`` (a member of any enum, by name, or a name) as the schema's enum ``kind``;
    BAD_USER_INPUT listing the valid names otherwise."""
    try:
        return kind(enum_name(value))
    except ValueError:
        valid = ", ".join(member.value for member in kind)
        raise BadUserInput(
            f"{argument}: {enum_name(value)!r} is not a valid {kind.__name__}; one of {valid}",
            field=argument,
        ) from None


@contextmanager
def opened_upload(weight: str | Path | bytes, filename: str | None = None) -> Iterator[Upload]:
    """An Upload reading a path (streamed from disk) or bytes, counting what is read (the
    transport reports the progress of what it sends)."""
    if isinstance(weight, bytes):
        reader = CountingReader(io.BytesIO(weight), len(weight))
        yield Upload(filename or "weight", reader, "application/octet-stream")
        return
    path = Path(weight)
    with path.open("rb") as file:
        reader = CountingReader(file, path.stat().st_size)
        yield Upload(filename or path.name, reader, "application/octet-stream")


def attachment_name(disposition: str) -> str | None:
    """The file name a Content-Disposition header gives (``filename*`` first), reduced
    to a plain name: no folders, nothing hidden behind dots."""
    extended = re.search(r"filename\*\s*=\s*([^;]+)", disposition, re.IGNORECASE)
    if extended:
        encoded = extended.group(1).strip().strip('"')
        name = unquote(encoded.split("''", 1)[-1])
    else:
        simple = re.search(
            r'filename\s*=\s*"((?:[^"\\]|\\.)*)"|filename\s*=\s*([^;]+)', disposition, re.IGNORECASE
        )
        if not simple:
            return None
        name = (simple.group(1) or simple.group(2) or "").strip()
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    return name or None


def is_folder_target(target: str | Path) -> bool:
    """``-o weights/`` (a trailing slash) or an existing folder: write into it."""
    text = str(target)
    return text.endswith(("/", os.sep)) or Path(target).is_dir()


class JobFollower:
    """What following a job means, for the sync and async clients alike: report each
    change, stop when the job has ended, give up after ``timeout_s``."""

    def __init__(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None,
        timeout_s: float | None,
    ) -> None:
        self.job_id, self.on_update = job_id, on_update
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.last_update: Any = None
        self.job: ProfilingJob

    def ended(self, job: ProfilingJob) -> bool:
        self.job = job
        if job.update_time != self.last_update:
            self.last_update = job.update_time
            if self.on_update is not None:
                self.on_update(job)
        if job.status in FINISHED_JOB_STATUSES:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"job {self.job_id} still {job.status.value}")
        return False


@python_errors
class ModelHub:
    """A hub at ``url``; ``token`` for servers with auth on.

    ``hub.api`` is the generated operation layer itself (one typed method per operation
    in ``modelci/operations``), on the same kept-alive connections. Its methods' errors
    name their Python arguments (``python_errors``; the CLI turns that off for its own).
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        self.api = HubOperations(url, token, timeout)
        self.python_errors = True

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> ModelHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.api.url

    # ML-Model-CI's model service

    def register_model(
        self,
        weight: str | Path | bytes,
        *,
        convert: bool = True,
        profile: bool = False,
        progress: Progress | None = None,
        **fields: Any,
    ) -> MLModel:
        """Register a model; ``fields`` as ModelInput (architecture, framework, engine,
        version, dataset, task, inputs, outputs, metric, model_status, creator)."""
        model_input = as_input(ModelInput, given(fields), "input")
        with opened_upload(weight) as upload:
            registered = self.api.register_model(
                input=model_input,
                weight=upload,
                convert=convert,
                profile=profile,
                progress=progress,
            )
        return registered.register_model

    def get_by_id(self, model_id: str) -> MLModel:
        return self.api.get_by_id(model_id).model

    def get_models(
        self,
        limit: int | None = None,
        *,
        architecture: str | None = None,
        task: Task | str | None = None,
        framework: Framework | str | None = None,
        engine: Engine | str | None = None,
        version: int | None = None,
        dataset: str | None = None,
        status: ModelStatus | str | None = None,
        profile: ProfileFilterInput | dict[str, Any] | None = None,
    ) -> list[MLModel]:
        """Models matching every filter given, newest first. ``profile`` keeps the models
        with a dynamic result that meets every condition in it (ProfileFilterInput's
        fields, e.g. ``{"device": "cpu", "batch": 8, "max_p99_latency": 0.01}``: seconds,
        items/s)."""
        wanted_task = optional_enum(Task, task, "task")
        wanted_framework = optional_enum(Framework, framework, "framework")
        wanted_engine = optional_enum(Engine, engine, "engine")
        wanted_status = optional_enum(ModelStatus, status, "status")
        wanted_profile = (
            None if profile is None else as_input(ProfileFilterInput, profile, "profile")
        )
        return every_page(
            lambda first, after: (
                self.api.get_models(
                    first=first,
                    after=after,
                    architecture=architecture,
                    task=wanted_task,
                    framework=wanted_framework,
                    engine=wanted_engine,
                    version=version,
                    dataset=dataset,
                    status=wanted_status,
                    profile=wanted_profile,
                ).models
            ),
            limit,
        )

    def update_model(
        self,
        model_id: str,
        weight: str | Path | bytes | None = None,
        progress: Progress | None = None,
        **changes: Any,
    ) -> MLModel:
        """Change the given fields (ModelUpdateInput's); a weight replaces the bytes."""
        update = as_input(ModelUpdateInput, given(changes), "input")
        if weight is None:
            return self.api.update_model(id=model_id, input=update).update_model
        with opened_upload(weight) as upload:
            updated = self.api.update_model(
                id=model_id, input=update, weight=upload, progress=progress
            )
        return updated.update_model

    def delete_model(self, model_id: str, cascade: bool = False) -> MLModel:
        """Delete a model and its weight; ``cascade`` its converted variants too."""
        return self.api.delete_model(id=model_id, cascade=cascade).delete_model

    def register_static_profiling_result(self, model_id: str, result: Any) -> MLModel:
        """Add or replace the static profile (a StaticProfileResultInput, a domain
        StaticProfileResult or a dict)."""
        static = as_input(StaticProfileResultInput, result, "result")
        changed = self.api.register_static_profiling_result(model_id=model_id, result=static)
        return changed.register_static_profiling_result

    def register_dynamic_profiling_result(self, model_id: str, result: Any) -> MLModel:
        dynamic = as_input(DynamicProfileResultInput, result, "result")
        changed = self.api.register_dynamic_profiling_result(model_id=model_id, result=dynamic)
        return changed.register_dynamic_profiling_result

    def update_dynamic_profiling_result(
        self, model_id: str, result: Any, force_insert: bool = False
    ) -> MLModel:
        dynamic = as_input(DynamicProfileResultInput, result, "result")
        changed = self.api.update_dynamic_profiling_result(
            model_id=model_id, result=dynamic, force_insert=force_insert
        )
        return changed.update_dynamic_profiling_result

    def delete_dynamic_profiling_result(
        self, model_id: str, ip: str, device_id: str, batch: int | None = None
    ) -> MLModel:
        changed = self.api.delete_dynamic_profiling_result(
            model_id=model_id, ip=ip, device_id=device_id, batch=batch
        )
        return changed.delete_dynamic_profiling_result

    def get_variants(self, model_id: str) -> list[GetLineageModelChildren]:
        """The variants converted from a model (id, engine, status, weight format)."""
        return self.api.get_lineage(model_id).model.children

    def download_weight(
        self,
        model_id: str,
        target: str | Path,
        progress: Progress | None = None,
        *,
        overwrite: bool = False,
    ) -> Path:
        """Stream the weight into ``target``: a file, or a folder (an existing one, or
        any path ending in '/', created if missing) to put it in under the name the hub
        gives. An existing file is kept (FileExistsError) unless ``overwrite``; nothing
        is left behind when the download fails."""
        into_folder = is_folder_target(target)
        with self.api.response("GET", f"/models/{model_id}/weight") as (response, _):
            if response.status != 200:
                raise_for(self.error_body(response.read()), response.status)
            path = Path(target)
            if into_folder:
                name = attachment_name(response.getheader("content-disposition") or "")
                path = path / (name or model_id)
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} exists already")
            path.parent.mkdir(parents=True, exist_ok=True)
            total = int(response.getheader("content-length") or 0)
            done = 0
            handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(handle, "wb") as file:
                    while chunk := response.read(CHUNK_SIZE):
                        file.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                os.chmod(partial, 0o666 & ~current_umask())  # as any new file: not 0600
                os.replace(partial, path)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        return path

    @staticmethod
    def error_body(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            return {"errors": [{"message": raw[:200].decode(errors="replace")}]}

    # Choosing a model, and aliases

    def recommend(
        self,
        task: Task | str,
        *,
        architecture: str | None = None,
        dataset: str | None = None,
        max_p99_latency: float | None = None,
        min_throughput: float | None = None,
        device: str | None = None,
        device_kind: DeviceKind | str | None = None,
        max_batch: int | None = None,
        allow_unstable: bool = False,
        first: int = 10,
    ) -> RecommendRecommend:
        """Which (model, device, batch) to serve a task with under a goal: ``.options`` best
        first (most throughput within the goal; ``on_frontier`` marks the Pareto frontier),
        ``.rejected`` with their ``shortfalls``, ``.closest`` when nothing meets the goal,
        ``.not_profiled``. Latencies in seconds (p99 of inference), throughput in items/s."""
        goal = as_input(
            RecommendationGoalInput,
            {
                "max_p99_latency": max_p99_latency,
                "min_throughput": min_throughput,
                "device": device,
                "device_kind": optional_enum(DeviceKind, device_kind, "device_kind"),
                "max_batch": max_batch,
                "allow_unstable": allow_unstable,
            },
            "goal",
        )
        return self.api.recommend(
            task=enum_value(Task, task, "task"),
            architecture=architecture,
            dataset=dataset,
            goal=goal,
            first=first,
        ).recommend

    def compare_models(self, model_ids: list[str]) -> CompareModelsCompareModels:
        """Models side by side: ``.models`` in the order asked, ``.rows`` one per (device,
        batch) with each model's result there (None where it has none)."""
        return self.api.compare_models(model_ids).compare_models

    def get_model(self, model_id: str | None = None, *, alias: str | None = None) -> GetModelModel:
        """A model by id or by an alias that names it (give one), with its ``aliases``."""
        return self.api.get_model(id=model_id, alias=alias).model

    def set_alias(self, alias: str, model_id: str) -> SetModelAliasSetModelAlias:
        """Point ``alias`` at a model (creating it, or moving it atomically)."""
        return self.api.set_model_alias(alias=alias, model_id=model_id).set_model_alias

    def delete_alias(self, alias: str) -> DeleteModelAliasDeleteModelAlias:
        """Remove an alias; the model stays."""
        return self.api.delete_model_alias(alias=alias).delete_model_alias

    def aliases(self) -> list[GetModelAliasesModelAliases]:
        """Every alias and the model it names, by name."""
        return self.api.get_model_aliases().model_aliases

    # Devices and API tokens

    def get_devices(self) -> list[GetDevicesDevices]:
        """The devices workers have reported."""
        return self.api.get_devices().devices

    def create_token(self, name: str, scopes: list[Scope | str]) -> CreateApiTokenCreateApiToken:
        """A new API token (admin): ``.token`` is its secret, shown this once."""
        wanted = [enum_value(Scope, scope, "scopes") for scope in scopes]
        return self.api.create_api_token(name=name, scopes=wanted).create_api_token

    def get_tokens(self) -> list[GetApiTokensApiTokens]:
        """Every API token, never its secret (admin)."""
        return self.api.get_api_tokens().api_tokens

    def revoke_token(self, id_or_name: str) -> list[str]:
        """Revoke a token by id, or every token with a name (admin); the ids revoked."""
        return [token.id for token in self.api.revoke_api_token(id_or_name).revoke_api_token]

    # Jobs

    def profile_model(
        self,
        model_id: str,
        batch_sizes: list[int] | None = None,
        devices: list[str] | None = None,
        *,
        budget_seconds: float | None = None,
        max_p99_latency: float | None = None,
        max_batch: int | None = None,
    ) -> ProfilingJob:
        """Queue profiling: at ``batch_sizes``, or (none given) an adaptive sweep up to
        ``max_batch`` and within ``max_p99_latency`` (seconds), under a time budget in
        seconds (default: the hub's); the job's ``sweeps`` say where each device stopped."""
        return self.api.profile_model(
            model_id=model_id,
            batch_sizes=batch_sizes,
            devices=devices,
            budget_seconds=budget_seconds,
            max_p99_latency=max_p99_latency,
            max_batch=max_batch,
        ).profile_model

    def convert_model(
        self,
        model_id: str,
        targets: list[Engine | str] | None = None,
        profile: bool = False,
    ) -> ProfilingJob:
        engines = None
        if targets is not None:
            engines = [enum_value(Engine, target, "targets") for target in targets]
        return self.api.convert_model(
            model_id=model_id, targets=engines, profile=profile
        ).convert_model

    def get_job(self, job_id: str) -> ProfilingJob:
        return self.api.get_job(job_id).profiling_job

    def get_jobs(
        self,
        model_id: str | None = None,
        status: JobStatus | str | None = None,
        limit: int | None = PAGE_SIZE,
    ) -> list[ProfilingJob]:
        """Jobs, newest first (of one model, in one status), at most ``limit``."""
        wanted = optional_enum(JobStatus, status, "status")
        return every_page(
            lambda first, after: (
                self.api.get_jobs(
                    first=first, after=after, model_id=model_id, status=wanted
                ).profiling_jobs
            ),
            limit,
        )

    def cancel_job(self, job_id: str) -> ProfilingJob:
        return self.api.cancel_job(job_id).cancel_profiling_job

    def wait_for_job(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> ProfilingJob:
        """Follow a job until it ends, calling ``on_update`` whenever it changed."""
        follower = JobFollower(job_id, on_update, timeout_s)
        while not follower.ended(self.get_job(job_id)):
            time.sleep(poll_s)
        return follower.job


class InAThread(Generic[Params, Result]):
    """A ModelHub method as an AsyncModelHub method: the same parameters, awaited.

    The synchronous call runs in a worker thread, so uploads and downloads stream just
    the same and the event loop never blocks; type checkers see the method's own
    signature, its result wrapped in a coroutine."""

    def __init__(self, method: Callable[Concatenate[ModelHub, Params], Result]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, client: None, owner: type[AsyncModelHub]) -> InAThread[Params, Result]: ...

    @overload
    def __get__(
        self, client: AsyncModelHub, owner: type[AsyncModelHub]
    ) -> Callable[Params, Coroutine[Any, Any, Result]]: ...

    def __get__(
        self, client: AsyncModelHub | None, owner: type[AsyncModelHub]
    ) -> InAThread[Params, Result] | Callable[Params, Coroutine[Any, Any, Result]]:
        if client is None:
            return self
        method, hub = self.method, client.hub

        async def in_a_thread(*args: Params.args, **kwargs: Params.kwargs) -> Result:
            return await asyncio.to_thread(method, hub, *args, **kwargs)

        in_a_thread.__name__ = in_a_thread.__qualname__ = method.__name__
        in_a_thread.__doc__ = method.__doc__
        return in_a_thread


class AsyncModelHub:
    """The same client for asyncio code: ModelHub's methods, awaited (``InAThread``)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        self.hub = ModelHub(url, token, timeout)

    async def __aenter__(self) -> AsyncModelHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return self.hub.url

    close = InAThread(ModelHub.close)
    register_model = InAThread(ModelHub.register_model)
    get_by_id = InAThread(ModelHub.get_by_id)
    get_models = InAThread(ModelHub.get_models)
    update_model = InAThread(ModelHub.update_model)
    delete_model = InAThread(ModelHub.delete_model)
    set_tag = InAThread(ModelHub.set_tag)
    remove_tag = InAThread(ModelHub.remove_tag)
    register_static_profiling_result = InAThread(ModelHub.register_static_profiling_result)
    register_dynamic_profiling_result = InAThread(ModelHub.register_dynamic_profiling_result)
    update_dynamic_profiling_result = InAThread(ModelHub.update_dynamic_profiling_result)
    delete_dynamic_profiling_result = InAThread(ModelHub.delete_dynamic_profiling_result)
    get_variants = InAThread(ModelHub.get_variants)
    download_weight = InAThread(ModelHub.download_weight)
    recommend = InAThread(ModelHub.recommend)
    compare_models = InAThread(ModelHub.compare_models)
    get_model = InAThread(ModelHub.get_model)
    set_alias = InAThread(ModelHub.set_alias)
    delete_alias = InAThread(ModelHub.delete_alias)
    aliases = InAThread(ModelHub.aliases)
    get_devices = InAThread(ModelHub.get_devices)
    create_token = InAThread(ModelHub.create_token)
    get_tokens = InAThread(ModelHub.get_tokens)
    revoke_token = InAThread(ModelHub.revoke_token)
    profile_model = InAThread(ModelHub.profile_model)
    convert_model = InAThread(ModelHub.convert_model)
    get_job = InAThread(ModelHub.get_job)
    get_jobs = InAThread(ModelHub.get_jobs)
    cancel_job = InAThread(ModelHub.cancel_job)

    async def wait_for_job(
        self,
        job_id: str,
        on_update: Callable[[ProfilingJob], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> ProfilingJob:
        """Follow a job until it ends, without blocking the event loop between polls."""
        follower = JobFollower(job_id, on_update, timeout_s)
        # Polling a remote state: there is no local event to wait on.
        while not follower.ended(await self.get_job(job_id)):  # noqa: ASYNC110
            await asyncio.sleep(poll_s)
        return follower.job


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Connection(Protocol[NodeT_co]):
    """A page of a list as the generated types carry it."""

    @property
    def nodes(self) -> Sequence[NodeT_co]: ...

    @property
    def page_info(self) -> Any: ...


def every_page(
    fetch: Callable[[int, str | None], Connection[NodeT_co]], limit: int | None
) -> list[NodeT_co]:
    """The items of a list, page after page, until ``limit`` (None: all of them)."""
    found: list[NodeT_co] = []
    after = None
    while limit is None or len(found) < limit:
        page = fetch(PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found)), after)
        found += page.nodes
        if not page.page_info.has_next_page:
            break
        after = page.page_info.end_cursor
    return found
