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
import numbers
import os
import re
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload
from urllib.parse import unquote

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake

from .core.domain import Metric, ModelWhere
from .core.errors import BadUserInput, HubError, invalid_input
from .core.where_text import WhereTextError, parse_where
from .graphql_client import (
    CompareModelsCompareModels,
    ConversionCheckInput,
    CreateApiTokenCreateApiToken,
    CreateWebhookCreateWebhook,
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
    MetricValueInput,
    MLModel,
    ModelInput,
    ModelInputFormat,
    ModelSourceInput,
    ModelStatus,
    ModelUpdateInput,
    ModelWhereInput,
    NameValueInput,
    ProfileFilterInput,
    ProfilingJob,
    RecommendationGoalInput,
    RecommendRecommend,
    RegistryEventType,
    Scope,
    SetModelAliasSetModelAlias,
    Shortfall,
    StaticProfileResultInput,
    SweepOutcomeInput,
    SweepStopReason,
    Task,
    Upload,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
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
    "ModelSourceInput",
    "ModelStatus",
    "ModelUpdateInput",
    "ModelWhere",
    "ModelWhereInput",
    "NameValueInput",
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
    "WhereTextError",
    "parse_where",
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
    (re.compile(r"\binput\.metric\b"), "metrics"),
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
    takes_fields = any(
        p.kind in (p.VAR_KEYWORD, p.KEYWORD_ONLY) for p in signature.parameters.values()
    )

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


def search_input(
    where: str | ModelWhere | ModelWhereInput | dict[str, Any] | None,
) -> ModelWhereInput | None:
    """A search as the schema's input: a text read by ``parse_where``, anything else
    checked as ``ModelWhereInput``."""
    if where is None or isinstance(where, ModelWhereInput):
        return where
    if isinstance(where, str):
        where = parse_where(where)
    elif not isinstance(where, ModelWhere):  # checked by the domain: nothing unknown dropped
        try:
            where = ModelWhere.model_validate(snake_case_keys(plain(where)))
        except ValidationError as error:
            raise invalid_input(error, "where") from None
    return as_input(ModelWhereInput, where.model_dump(exclude_none=True), "where")


def snake_case_keys(value: Any) -> Any:
    """``{"maxP99Latency": …}`` as ``{"max_p99_latency": …}``, all the way down."""
    if isinstance(value, list):
        return [snake_case_keys(item) for item in value]
    if isinstance(value, dict):
        return {to_snake(key): snake_case_keys(item) for key, item in value.items()}
    return value


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


WeightFile = str | os.PathLike[str] | bytes
# What the metadata keyword arguments take: a dict of name → value, or a list of
# {name, value} (dicts, the schema's inputs, earlier results) or (name, value) pairs.
NamedValues = dict[str, Any] | Sequence[Any]


def checked_weight_file(weight: Any, argument: str = "weight", hint: str = "") -> WeightFile:
    """``weight`` if it names a file (a path) or holds its bytes; a TypeError naming the
    argument otherwise (pathlib's own says nothing of which argument was wrong)."""
    if isinstance(weight, str | os.PathLike | bytes):
        return weight
    raise TypeError(
        f"{argument}: give the weight file's path or its bytes, not {type(weight).__name__}" + hint
    )


def named_values(value: NamedValues | None, argument: str, kind: str) -> list[dict[str, Any]]:
    """Metrics (``kind`` "number") or params and tags ("text") as the schema's list of
    {name, value}: numbers stay numbers (a bool is not one), texts are texts (numbers
    and bools written out: ``lr=0.1`` is the param "0.1")."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise TypeError(
            f"{argument}: give a dict of name → value or a list of {{name, value}}, "
            f"not {type(value).__name__}"
        )
    else:
        pairs = []
        for item in value:
            if isinstance(item, tuple) and len(item) == 2:
                pairs.append(item)
                continue
            fields = plain(item)
            if not isinstance(fields, dict) or set(fields) != {"name", "value"}:
                raise TypeError(
                    f"{argument}: each item is {{name, value}} or a (name, value) pair, "
                    f"not {item!r}"
                )
            pairs.append((fields["name"], fields["value"]))
    named = []
    for name, each in pairs:
        name = enum_name(name)
        if not isinstance(name, str):
            raise BadUserInput(f"{argument}: a name is text, not {name!r}", field=argument)
        if kind == "number":
            if isinstance(each, bool) or not isinstance(each, numbers.Real):
                raise BadUserInput(
                    f"{argument}: {name}'s value must be a number, not {each!r}", field=argument
                )
            named.append({"name": name, "value": float(each)})
        elif isinstance(each, str | numbers.Real):  # a bool is a Real too: "True"
            named.append({"name": name, "value": each if isinstance(each, str) else str(each)})
        else:
            raise BadUserInput(
                f"{argument}: {name}'s value must be text, a number or a bool, not {each!r}",
                field=argument,
            )
    return named


def model_source(source: Any, run_id: str | None) -> dict[str, Any] | None:
    """The source as the schema's ModelSourceInput: a URI (with ``run_id``), or a dict or
    input of both."""
    if source is None:
        if run_id is not None:
            raise BadUserInput(
                "run_id: give source (the URI of the run, notebook or commit) with it",
                field="run_id",
            )
        return None
    if isinstance(source, str):
        return {"uri": source, "run_id": run_id}
    fields = plain(source)
    if not isinstance(fields, dict):
        raise TypeError(
            f"source: give the URI of the run, notebook or commit, not {type(source).__name__}"
        )
    return fields if run_id is None else {**fields, "run_id": run_id}


def metadata(
    metrics: NamedValues | None,
    metric: NamedValues | None,
    params: NamedValues | None,
    description: str | None,
    source: Any,
    run_id: str | None,
) -> dict[str, Any]:
    """The metadata keyword arguments given, as the schema's input fields."""
    if metrics is not None and metric is not None:
        raise TypeError("give metrics or metric (its ML-Model-CI name), not both")
    fields: dict[str, Any] = {}
    given_metrics = metrics if metrics is not None else metric
    if given_metrics is not None:
        fields["metric"] = named_values(given_metrics, "metrics", "number")
    if params is not None:
        fields["params"] = named_values(params, "params", "text")
    if description is not None:
        if not isinstance(description, str):
            raise TypeError(f"description: give Markdown text, not {type(description).__name__}")
        fields["description"] = description
    if (found := model_source(source, run_id)) is not None:
        fields["source"] = found
    return fields


@contextmanager
def opened_upload(weight: WeightFile, filename: str | None = None) -> Iterator[Upload]:
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


FOLLOW_EVENTS = """
subscription($types: [RegistryEventType!], $modelId: ID, $since: DateTime) {
  registryEvents(types: $types, modelId: $modelId, since: $since) {
    id type time modelId modelName modelVersion actor data
  }
}"""


def event_type(value: Any) -> RegistryEventType:
    """An event type as the schema's enum: by member, name, or dotted name (tag.set)."""
    name = enum_name(value)
    if isinstance(name, str) and "." in name:
        name = name.replace(".", "_").upper()
    return enum_value(RegistryEventType, name, "events")


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

    @property
    def write_time(self) -> str | None:
        """The database's time of the latest write this client made (or was given): sent
        with every request, so that any server process of the hub reads with it applied.
        Give it to another client (``other.write_time = hub.write_time``) for that client
        to see this one's writes too."""
        return self.api.write_time

    @write_time.setter
    def write_time(self, time: str | None) -> None:
        self.api.saw_write(time)

    # ML-Model-CI's model service

    def register_model(
        self,
        weight: WeightFile,
        *,
        architecture: str | None = None,
        framework: Framework | str | None = None,
        engine: Engine | str | None = None,
        dataset: str | None = None,
        task: Task | str | None = None,
        version: int | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        metrics: NamedValues | None = None,
        params: NamedValues | None = None,
        tags: NamedValues | None = None,
        description: str | None = None,
        source: str | ModelSourceInput | dict[str, Any] | None = None,
        run_id: str | None = None,
        model_status: Sequence[ModelStatus | str] | None = None,
        creator: str | None = None,
        metric: NamedValues | None = None,
        convert: bool = True,
        profile: bool = False,
        progress: Progress | None = None,
    ) -> MLModel:
        """Register a model from its weight file (a path, or its bytes).

        ``version`` left out: the hub gives the next number for the architecture, task
        and dataset; the model returned carries it. ``metrics``: name → number (a dict,
        or a list of {name, value}; ``metric`` is ML-Model-CI's name for it); ``params``
        and ``tags``: name → text; ``description``: Markdown; ``source``: the URI of the
        run, notebook or commit that produced it, with its tracker's ``run_id``."""
        fields = given(
            {
                "architecture": architecture,
                "framework": framework,
                "engine": engine,
                "dataset": dataset,
                "task": task,
                "version": version,
                "inputs": inputs,
                "outputs": outputs,
                "model_status": model_status,
                "creator": creator,
            }
        )
        fields |= metadata(metrics, metric, params, description, source, run_id)
        if tags is not None:
            fields["tags"] = named_values(tags, "tags", "text")
        model_input = as_input(ModelInput, fields, "input")
        with opened_upload(checked_weight_file(weight)) as upload:
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
        where: str | ModelWhere | ModelWhereInput | dict[str, Any] | None = None,
    ) -> list[MLModel]:
        """Models matching every filter given, newest first. ``profile`` keeps the models
        with a dynamic result that meets every condition in it (ProfileFilterInput's
        fields, e.g. ``{"device": "cpu", "batch": 8, "max_p99_latency": 0.01}``: seconds,
        items/s). ``where`` is a search, as the CLI's ``--where`` writes it
        (``"tags.team = vision and metrics.acc > 0.75 and architecture ^= ResNet"``, read
        here: a ``WhereTextError`` names the first token that cannot be read) or as the
        schema's ``ModelWhereInput`` (an input, the domain's ``ModelWhere`` or a dict)."""
        wanted_task = optional_enum(Task, task, "task")
        wanted_framework = optional_enum(Framework, framework, "framework")
        wanted_engine = optional_enum(Engine, engine, "engine")
        wanted_status = optional_enum(ModelStatus, status, "status")
        wanted_profile = (
            None if profile is None else as_input(ProfileFilterInput, profile, "profile")
        )
        wanted_where = search_input(where)
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
                    where=wanted_where,
                ).models
            ),
            limit,
        )

    def update_model(
        self,
        model_id: str,
        weight: WeightFile | None = None,
        progress: Progress | None = None,
        *,
        architecture: str | None = None,
        framework: Framework | str | None = None,
        engine: Engine | str | None = None,
        dataset: str | None = None,
        task: Task | str | None = None,
        version: int | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        metrics: NamedValues | None = None,
        params: NamedValues | None = None,
        description: str | None = None,
        source: str | ModelSourceInput | dict[str, Any] | None = None,
        run_id: str | None = None,
        model_status: Sequence[ModelStatus | str] | None = None,
        creator: str | None = None,
        metric: NamedValues | None = None,
    ) -> MLModel:
        """Change the fields given (as ``register_model`` takes them; metrics and params
        are replaced whole; tags change one at a time: ``set_tag``, ``remove_tag``). A
        ``weight`` replaces the stored bytes only while nothing was made from them (no
        profile, no converted variant): after that the hub refuses it (Conflict), and a
        new weight is a new version."""
        if weight is not None:
            hint = ""
            if isinstance(weight, dict):
                hint = "; give the fields to change as keyword arguments, e.g. " + (
                    f"update_model(model_id, {', '.join(f'{key}=…' for key in weight)})"
                )
            weight = checked_weight_file(weight, hint=hint)
        changes = given(
            {
                "architecture": architecture,
                "framework": framework,
                "engine": engine,
                "dataset": dataset,
                "task": task,
                "version": version,
                "inputs": inputs,
                "outputs": outputs,
                "model_status": model_status,
                "creator": creator,
            }
        )
        changes |= metadata(metrics, metric, params, description, source, run_id)
        update = as_input(ModelUpdateInput, changes, "input")
        if weight is None:
            return self.api.update_model(id=model_id, input=update).update_model
        with opened_upload(weight) as upload:
            updated = self.api.update_model(
                id=model_id, input=update, weight=upload, progress=progress
            )
        return updated.update_model

    def set_tag(self, model_id: str, name: str, value: str) -> MLModel:
        """Set one tag of the model (added, or its value replaced) in one write."""
        return self.api.set_model_tag(id=model_id, name=name, value=value).set_model_tag

    def remove_tag(self, model_id: str, name: str) -> MLModel:
        """Remove one tag of the model (NotFound when it has none of that name)."""
        return self.api.delete_model_tag(id=model_id, name=name).delete_model_tag

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

    # Webhooks and events

    def create_webhook(
        self, url: str, events: Sequence[Any], secret: str | None = None
    ) -> CreateWebhookCreateWebhook:
        """Send the events of these types (``"model.registered"``, ``"MODEL_REGISTERED"``
        or ``EventType.MODEL_REGISTERED``) to ``url`` (admin); ``.secret`` is what the
        deliveries are signed with, shown this once (made by the hub unless given)."""
        wanted = [event_type(each) for each in events]
        return self.api.create_webhook(url=url, events=wanted, secret=secret).create_webhook

    def webhooks(self) -> list[Webhook]:
        """Every webhook, never its secret (admin)."""
        return list(self.api.get_webhooks().webhooks)

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[Any] | None = None,
        active: bool | None = None,
        secret: str | None = None,
    ) -> Webhook:
        """Change what is given, keep the rest (admin)."""
        wanted = None if events is None else [event_type(each) for each in events]
        return self.api.update_webhook(
            id=webhook_id, url=url, events=wanted, active=active, secret=secret
        ).update_webhook

    def delete_webhook(self, webhook_id: str) -> Webhook:
        """Delete a webhook and its delivery log (admin)."""
        return self.api.delete_webhook(id=webhook_id).delete_webhook

    def test_webhook(self, webhook_id: str) -> WebhookDelivery:
        """Send a ``webhook.test`` event now, once; how it went (admin)."""
        return self.api.test_webhook(id=webhook_id).test_webhook

    def webhook_deliveries(
        self, webhook_id: str, status: Any = None, first: int = 50
    ) -> list[WebhookDelivery]:
        """The webhook's deliveries, newest first: status, attempts, the last response
        code or error (admin)."""
        wanted = optional_enum(WebhookDeliveryStatus, status, "status")
        found = self.api.get_webhook_deliveries(webhook_id=webhook_id, status=wanted, first=first)
        return list(found.webhook_deliveries)

    def events(
        self,
        types: Sequence[Any] | None = None,
        model_id: str | None = None,
        since: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Registry events as they happen (the ``registryEvents`` subscription, over a
        WebSocket), as dictionaries of the API's fields; with ``since``, from that time
        on. Runs until the caller stops iterating."""
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

        transport = self.api
        url = "ws" + transport.url.removeprefix("http") + "/graphql"
        variables = {
            "types": None if types is None else [event_type(each).value for each in types],
            "modelId": model_id,
            "since": since.isoformat() if since is not None else None,
        }
        init: dict[str, Any] = {"type": "connection_init", "payload": {}}
        if "authorization" in transport.headers:
            init["payload"]["Authorization"] = transport.headers["authorization"]
        with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            ws.send(json.dumps(init))
            if json.loads(ws.recv())["type"] != "connection_ack":
                raise HubError("the hub refused the subscription's connection")
            subscribe = {"query": FOLLOW_EVENTS, "variables": variables}
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
            while True:
                message = json.loads(ws.recv())
                if message["type"] == "next":
                    payload = message["payload"]
                    raise_for(payload, 200)
                    yield payload["data"]["registryEvents"]
                elif message["type"] == "error":
                    raise_for({"errors": message["payload"]}, 200)
                elif message["type"] == "complete":
                    return

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

    @property
    def write_time(self) -> str | None:
        """As ``ModelHub.write_time``."""
        return self.hub.write_time

    @write_time.setter
    def write_time(self, time: str | None) -> None:
        self.hub.write_time = time

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
    create_webhook = InAThread(ModelHub.create_webhook)
    webhooks = InAThread(ModelHub.webhooks)
    update_webhook = InAThread(ModelHub.update_webhook)
    delete_webhook = InAThread(ModelHub.delete_webhook)
    test_webhook = InAThread(ModelHub.test_webhook)
    webhook_deliveries = InAThread(ModelHub.webhook_deliveries)
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
