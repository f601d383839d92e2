"""The domain: what a registered model is, as pydantic models and enums.

Names follow ML-Model-CI's, so that its users find them at once.
Storage and GraphQL both derive from these classes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)


class Framework(Enum):
    TensorFlow = "TensorFlow"
    PyTorch = "PyTorch"
    Sklearn = "Sklearn"
    XGBoost = "XGBoost"
    LightGBM = "LightGBM"
    ONNX = "ONNX"


class Engine(Enum):
    NONE = "NONE"
    TFS = "TFS"
    TORCHSCRIPT = "TORCHSCRIPT"
    ONNX = "ONNX"
    TRT = "TRT"
    TVM = "TVM"
    CUSTOMIZED = "CUSTOMIZED"
    PYTORCH = "PYTORCH"
    AOTINDUCTOR = "AOTINDUCTOR"  # a torch.export program compiled ahead of time (.pt2)


class Task(Enum):
    Image_Classification = "Image_Classification"
    Object_Detection = "Object_Detection"
    Segmentation = "Segmentation"
    Text_Classification = "Text_Classification"
    Token_Classification = "Token_Classification"
    Question_Answering = "Question_Answering"
    Text_Generation = "Text_Generation"
    Speech_Recognition = "Speech_Recognition"
    Regression = "Regression"
    Tabular_Classification = "Tabular_Classification"
    Other = "Other"


class Metric(StrEnum):
    """ML-Model-CI's metric names: still valid, as plain names among any others."""

    acc = "acc"
    top5_acc = "top5_acc"
    mAP = "mAP"
    IoU = "IoU"
    F1 = "F1"
    precision = "precision"
    recall = "recall"
    BLEU = "BLEU"
    perplexity = "perplexity"
    loss = "loss"


class DataType(Enum):
    TYPE_BOOL = "TYPE_BOOL"
    TYPE_UINT8 = "TYPE_UINT8"
    TYPE_UINT16 = "TYPE_UINT16"
    TYPE_UINT32 = "TYPE_UINT32"
    TYPE_UINT64 = "TYPE_UINT64"
    TYPE_INT8 = "TYPE_INT8"
    TYPE_INT16 = "TYPE_INT16"
    TYPE_INT32 = "TYPE_INT32"
    TYPE_INT64 = "TYPE_INT64"
    TYPE_FP16 = "TYPE_FP16"
    TYPE_BF16 = "TYPE_BF16"
    TYPE_FP32 = "TYPE_FP32"
    TYPE_FP64 = "TYPE_FP64"
    TYPE_STRING = "TYPE_STRING"


class ModelInputFormat(Enum):
    FORMAT_NONE = "FORMAT_NONE"
    FORMAT_NHWC = "FORMAT_NHWC"
    FORMAT_NCHW = "FORMAT_NCHW"


class ModelStatus(Enum):
    PUBLISHED = "PUBLISHED"
    CONVERTED = "CONVERTED"
    PROFILING = "PROFILING"
    IN_SERVICE = "IN_SERVICE"
    DRAFT = "DRAFT"
    VALIDATING = "VALIDATING"
    TRAINING = "TRAINING"


class WeightFormat(Enum):
    """A weight file's format, told from its content (None: a file the hub does not read)."""

    ONNX = "ONNX"
    TORCHSCRIPT = "TorchScript"
    TORCH_EXPORT = "torch.export"
    TORCH_PICKLE = "pickled PyTorch"
    AOTI_PACKAGE = "AOTInductor package"


def utcnow() -> datetime:
    """Now, in UTC, at the millisecond precision MongoDB stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Domain(BaseModel):
    # No infinities or NaN: GraphQL's Float literal `1e400` parses to inf, and a stored inf
    # made every page that selects the field fail for every caller.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class IOShape(Domain):
    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(min_length=0, max_length=16)
    dtype: DataType = DataType.TYPE_FP32
    format: ModelInputFormat = ModelInputFormat.FORMAT_NONE

    @field_validator("shape")
    @classmethod
    def _dimensions_known_or_dynamic(cls, shape: list[int]) -> list[int]:
        for dim in shape:
            if dim == 0 or dim < -1:
                raise ValueError("each dimension is a positive size or -1 for a dynamic one")
        return shape


# Free metadata. Metrics, params and tags are lists of {name, value}, each name once:
# stored as such, they are indexed and queried as arrays of sub-documents (storage.py).
METADATA_NAME = re.compile(r"[A-Za-z0-9_./-]{1,64}")
METADATA_NAME_RULE = "1 to 64 letters, digits, '_', '.', '-' or '/'"
MAX_METRICS = 64
MAX_PARAMS = 256
MAX_TAGS = 64
MAX_METADATA_VALUE = 1024  # characters of a param's or a tag's value
MAX_DESCRIPTION = 64 * 1024  # characters of Markdown
MAX_SOURCE_URI = 2048
MAX_RUN_ID = 256
# What a converted variant takes from its source and keeps in step with it: how the
# source was trained and how well it does (a conversion is checked to give the same
# outputs). Its tags are its own, copied from the source when it is converted.
INHERITED_FIELDS = ("metric", "params", "description", "source")
# Whoever registered a model with auth off.
ANONYMOUS = "anonymous"

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_CHARACTERS_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def checked_metadata_name(name: str) -> str:
    if not METADATA_NAME.fullmatch(name):
        raise ValueError(f"a name is {METADATA_NAME_RULE} (got {name[:80]!r})")
    return name


def printable_text(text: str, *, lines: bool = False) -> str:
    """``text`` unless it holds control characters (tabs and line breaks too, unless
    ``lines``): what a terminal or a log would act on."""
    if (CONTROL_CHARACTERS_BUT_LINES if lines else CONTROL_CHARACTERS).search(text):
        raise ValueError("control characters are not allowed" + ("" if lines else " here"))
    return text


# C0 and C1 control characters but tab and newline: what a model's name, an upload's
# error or a job's log could carry to retitle, clear or rewrite a terminal.
TERMINAL_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without control characters, safe to print on any terminal or log."""
    return TERMINAL_CONTROL_CHARACTERS.sub("", text)


def unique_names(items: list[Any], what: str) -> None:
    names = [item.name for item in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"each {what} name may appear once ({', '.join(repeated)} repeated)")


class MetricValue(Domain):
    """A measured quality of the model: any name, a finite number."""

    name: str
    value: float

    _name = field_validator("name")(checked_metadata_name)


class NameValue(Domain):
    """A param (how the model was trained) or a tag (how a team files it): a name and a
    text value."""

    name: str
    value: str = Field(max_length=MAX_METADATA_VALUE)

    _name = field_validator("name")(checked_metadata_name)

    @field_validator("value")
    @classmethod
    def _printable(cls, value: str) -> str:
        return printable_text(value)


# A URI with a scheme: https://…, git+https://…@commit, runs:/…, s3://…, file:///…
SOURCE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


class ModelSource(Domain):
    """What produced the model: the URI of its training run, notebook or commit, and the
    run's id in the tracker that ran it, if any."""

    uri: str = Field(max_length=MAX_SOURCE_URI)
    run_id: str | None = Field(default=None, min_length=1, max_length=MAX_RUN_ID)

    @field_validator("uri")
    @classmethod
    def _a_uri(cls, uri: str) -> str:
        if not SOURCE_URI.fullmatch(uri):
            raise ValueError(
                "give a URI with a scheme and no spaces (https://…, git+https://…, "
                f"runs:/…, s3://…); got {uri[:80]!r}"
            )
        return uri

    @field_validator("run_id")
    @classmethod
    def _printable(cls, run_id: str | None) -> str | None:
        return None if run_id is None else printable_text(run_id)


class Weight(Domain):
    """The weight file's description; its bytes live in the weight store, keyed by sha256."""

    filename: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    format: WeightFormat | None = None


class StaticProfileResult(Domain):
    """Figures from the model graph at batch 1; FLOPs = 2 × MACs, memory figures in bytes."""

    parameters: int = Field(ge=0)
    flops: int = Field(ge=0)
    memory: int = Field(ge=0)
    mread: int = Field(ge=0)
    mwrite: int = Field(ge=0)
    mrw: int = Field(ge=0)
    macs: int | None = Field(default=None, ge=0)
    uncounted_operators: list[str] = Field(default_factory=list, max_length=1024)
    method: str = Field(default="", max_length=1024)


class InfoTuple(Domain):
    """A latency distribution in seconds; p99 only from at least 100 samples."""

    avg: float = Field(ge=0)
    p50: float = Field(ge=0)
    p95: float = Field(ge=0)
    p99: float | None = Field(default=None, ge=0)


class ProfileMemory(Domain):
    total_memory: int = Field(ge=0)
    memory_usage: int = Field(ge=0)
    utilization: float = Field(ge=0)


class ProfileLatency(Domain):
    initialization_latency: InfoTuple
    preprocess_latency: InfoTuple
    inference_latency: InfoTuple
    postprocess_latency: InfoTuple


class ProfileThroughput(Domain):
    """Items per second in each stage."""

    batch_formation_throughput: float = Field(ge=0)
    preprocess_throughput: float = Field(ge=0)
    inference_throughput: float = Field(ge=0)
    postprocess_throughput: float = Field(ge=0)


class SweepStopReason(Enum):
    """Why a device's batch sweep stopped where it did (as Model Analyzer's early exit)."""

    SATURATED = "SATURATED"  # throughput gained under 5 % over the batch before
    LATENCY_LIMIT = "LATENCY_LIMIT"  # the latency went over the limit asked for
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BUDGET = "BUDGET"  # the job's time budget was spent
    MAX_BATCH = "MAX_BATCH"  # the largest batch size was reached
    LIST_DONE = "LIST_DONE"  # every batch size asked for was measured
    NOT_BATCHABLE = "NOT_BATCHABLE"  # the inputs allow no batch size: nothing measured
    BUSY = "BUSY"  # other work on the machine made the figures unfit to decide on


class Measurement(Domain):
    """How a dynamic result was measured, so that a reader can judge it."""

    runtime: str = Field(max_length=64)
    intra_op_threads: int = Field(ge=0)
    samples: int = Field(ge=0)
    windows: int = Field(ge=0)
    stable: bool
    iqr_over_median: float = Field(ge=0)
    percentile_method: str = Field(default="nearest-rank", max_length=64)
    sweep_stop: SweepStopReason | None = Field(
        default=None, description="why the sweep stopped at this batch; null: it went on"
    )
    busy_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="the share of the measuring CPUs' time that other processes (and the "
        "hypervisor's steal) took while the timed windows ran; null: not known",
    )
    contention: str | None = Field(
        default=None,
        max_length=1024,
        description="why these figures may be slower than on a quiet machine (other work "
        "competed for the cores), with the figures; null: the machine was quiet enough",
    )
    p99_missing: str | None = Field(
        default=None,
        max_length=1024,
        description="why the inference p99 is null (too few timed runs, and why); "
        "null: there is a p99",
    )
    attempts: int = Field(
        default=1,
        ge=1,
        description="how many times this batch was measured (an unstable "
        "or contended measurement is taken again once, and the better one kept)",
    )

    @field_serializer("sweep_stop")
    def _stored_by_name(self, reason: SweepStopReason | None) -> str | None:
        # Results are stored as dumped (modelci/server/registry.py): the name, not the member.
        return reason.value if reason else None


class DynamicProfileResult(Domain):
    """One timed run; identified within a model by (ip, device_id, batch)."""

    ip: str = Field(min_length=1, max_length=256)
    device_id: str = Field(min_length=1, max_length=256)
    device_name: str = Field(max_length=256)
    batch: int = Field(ge=1)
    memory: ProfileMemory
    latency: ProfileLatency
    throughput: ProfileThroughput
    measurement: Measurement | None = None
    create_time: datetime = Field(default_factory=utcnow)


class ProfileResult(Domain):
    static_result: StaticProfileResult | None = None
    dynamic_results: list[DynamicProfileResult] = Field(default_factory=list)


# The largest version number: GraphQL's Int is 32-bit, and a model whose version it could
# not carry would break every page that lists it.
MAX_VERSION = 2**31 - 1

# Read-your-writes over HTTP: a response to a request that wrote says the database's
# operation time of the write in WRITE_TIME_HEADER ("seconds.increment"); a client sends
# the latest it has seen in READ_AFTER_HEADER, and whichever server process answers
# reads with that write applied.
WRITE_TIME_HEADER = "x-modelci-write-time"
READ_AFTER_HEADER = "x-modelci-read-after"


def write_time_parts(text: str | None) -> tuple[int, int] | None:
    """A write time as those headers carry it ("seconds.increment"), as its two numbers;
    None for anything else (a header is a hint to wait, never a reason to refuse)."""
    seconds, _, increment = (text or "").strip().partition(".")
    if not (seconds.isdigit() and increment.isdigit()) or len(seconds) + len(increment) > 23:
        return None
    return int(seconds), int(increment)


class ModelKey(Domain):
    """What makes a model unique in the registry."""

    architecture: str
    framework: Framework
    engine: Engine
    version: int
    task: Task
    dataset: str


class ModelFields(Domain):
    """The metadata a user gives when registering a model (``version`` None: the hub
    numbers it, after the last version of its architecture, task and dataset)."""

    architecture: str = Field(min_length=1, max_length=256)
    framework: Framework
    engine: Engine
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    dataset: str = Field(min_length=1, max_length=256)
    metric: list[MetricValue] = Field(default_factory=list, max_length=MAX_METRICS)
    task: Task
    inputs: list[IOShape] = Field(default_factory=list, max_length=256)
    outputs: list[IOShape] = Field(default_factory=list, max_length=256)
    model_status: list[ModelStatus] = Field(default_factory=list, max_length=16)
    creator: str = Field(default="", max_length=256)
    params: list[NameValue] = Field(default_factory=list, max_length=MAX_PARAMS)
    tags: list[NameValue] = Field(default_factory=list, max_length=MAX_TAGS)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    source: ModelSource | None = None

    @field_validator("metric")
    @classmethod
    def _one_value_per_metric(cls, metric: list[MetricValue]) -> list[MetricValue]:
        unique_names(metric, "metric")
        return metric

    @field_validator("params")
    @classmethod
    def _one_value_per_param(cls, params: list[NameValue]) -> list[NameValue]:
        unique_names(params, "param")
        return params

    @field_validator("tags")
    @classmethod
    def _one_value_per_tag(cls, tags: list[NameValue]) -> list[NameValue]:
        unique_names(tags, "tag")
        return tags

    @field_validator("description")
    @classmethod
    def _printable_description(cls, description: str) -> str:
        return printable_text(description, lines=True)

    @field_validator("model_status")
    @classmethod
    def _statuses_unique(cls, statuses: list[ModelStatus]) -> list[ModelStatus]:
        return list(dict.fromkeys(statuses))

    def key(self) -> ModelKey:
        if self.version is None:
            raise ValueError("a model has a key once its version is known")
        return ModelKey(
            architecture=self.architecture,
            framework=self.framework,
            engine=self.engine,
            version=self.version,
            task=self.task,
            dataset=self.dataset,
        )


class ConversionCheck(Domain):
    """How a converted variant was verified against its source before registration."""

    source_engine: Engine
    batch_sizes: list[int]
    max_abs_diff: float = Field(ge=0)
    max_rel_diff: float = Field(ge=0, description="max |variant - source| / max |source|")
    tolerance: float = Field(ge=0)


class MLModel(ModelFields):
    """A registered model: its metadata, weight description and profiling results."""

    id: str
    version: int = Field(ge=1, le=MAX_VERSION)
    parent_model_id: str | None = None
    conversion: ConversionCheck | None = None
    weight: Weight
    profile_result: ProfileResult = Field(default_factory=ProfileResult)
    created_by: str | None = Field(
        default=None,
        max_length=256,
        description="the token that registered it (anonymous with auth off; for a "
        "variant, whoever asked for its conversion); null: registered before the hub "
        "recorded it",
    )
    create_time: datetime
    update_time: datetime


class DeviceKind(Enum):
    CPU = "CPU"
    CUDA = "CUDA"


def device_kind_of(device_id: str) -> DeviceKind:
    """The kind of a device from its id as workers report it (\"cpu\", \"cuda:0\", …)."""
    return DeviceKind.CPU if device_id == "cpu" else DeviceKind.CUDA


class ModelAlias(Domain):
    """A name that points at one model at a time (``resnet50-prod``), moved atomically."""

    alias: str
    model_id: str
    update_time: datetime


class ProfileFilter(Domain):
    """Measured performance a model must show: one of its dynamic results meets every
    given condition (latencies are inference latencies in seconds, throughput in items/s;
    a result without a p99 — under 100 samples — never meets ``max_p99_latency``)."""

    device: str | None = Field(default=None, max_length=256, description="a device id or name")
    device_kind: DeviceKind | None = Field(default=None, description="only devices of this kind")
    batch: int | None = Field(default=None, ge=1, description="exactly this batch size")
    min_batch: int | None = Field(default=None, ge=1, description="batch sizes from this one")
    max_batch: int | None = Field(default=None, ge=1, description="batch sizes up to this one")
    max_p99_latency: float | None = Field(
        default=None, gt=0, description="inference latency p99 at most this, in seconds"
    )
    max_p50_latency: float | None = Field(
        default=None, gt=0, description="inference latency p50 at most this, in seconds"
    )
    min_throughput: float | None = Field(
        default=None, ge=0, description="inference throughput at least this, in items/s"
    )
    stable_only: bool = Field(
        default=False,
        description="only results whose measurement settled (their last windows agreed)",
    )

    def is_empty(self) -> bool:
        return self == ProfileFilter()


# A search (``ModelWhere``) is bounded: how deep ``and``/``or``/``not`` nest, how many
# conditions it holds in all, and how long a text to match is.
MAX_WHERE_DEPTH = 4
MAX_WHERE_CONDITIONS = 32
MAX_MATCHED_TEXT = 256


class TextMatch(Domain):
    """Text a field must match, every part given: ``equals`` exactly as stored; ``prefix``
    (starts with) and ``contains``, ignoring case, the text taken literally (no pattern
    characters)."""

    equals: str | None = Field(default=None, min_length=1, max_length=MAX_MATCHED_TEXT)
    prefix: str | None = Field(default=None, min_length=1, max_length=MAX_MATCHED_TEXT)
    contains: str | None = Field(default=None, min_length=1, max_length=MAX_MATCHED_TEXT)

    @field_validator("equals", "prefix", "contains")
    @classmethod
    def _printable(cls, text: str | None) -> str | None:
        return None if text is None else printable_text(text)

    @model_validator(mode="after")
    def _something_to_match(self) -> TextMatch:
        if self.equals is None and self.prefix is None and self.contains is None:
            raise ValueError("give equals, prefix or contains")
        return self


BOUNDS = ("eq", "gt", "gte", "lt", "lte")


def given_bounds(value: BaseModel) -> dict[str, Any]:
    """The bounds given on ``value``, by operator name (``{"gt": 0.75}``)."""
    return {name: getattr(value, name) for name in BOUNDS if getattr(value, name) is not None}


class VersionRange(Domain):
    """Bounds a version must meet, every one given."""

    eq: int | None = None
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> VersionRange:
        if not given_bounds(self):
            raise ValueError("give eq, gt, gte, lt or lte")
        return self


class MetricCondition(Domain):
    """A metric the model has, by name, within every bound given (none: any value)."""

    name: str
    eq: float | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    _name = field_validator("name")(checked_metadata_name)


class NameValueCondition(Domain):
    """A tag or a param, by name: with this value (``equals``), with any value, or
    absent (``exists: false``)."""

    name: str
    equals: str | None = Field(default=None, max_length=MAX_METADATA_VALUE)
    exists: bool = True

    _name = field_validator("name")(checked_metadata_name)

    @model_validator(mode="after")
    def _absent_has_no_value(self) -> NameValueCondition:
        if not self.exists and self.equals is not None:
            raise ValueError("an absent name has no value: give equals or exists: false")
        return self


class TimeRange(Domain):
    """Strictly after ``after`` and strictly before ``before`` (either may be left out;
    a time without a zone is UTC)."""

    after: datetime | None = None
    before: datetime | None = None

    @field_validator("after", "before")
    @classmethod
    def _in_utc(cls, time: datetime | None) -> datetime | None:
        if time is None or time.tzinfo is not None:
            return time
        return time.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _not_empty(self) -> TimeRange:
        if self.after is None and self.before is None:
            raise ValueError("give after, before or both")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise ValueError(f"after ({self.after}) is not before before ({self.before})")
        return self


class ModelWhere(Domain):
    """A search over models: every condition given holds (with ``and``, each of those
    too), at least one of ``or``, and not ``not``. Bounded: ``and``/``or``/``not`` nest at
    most ``MAX_WHERE_DEPTH`` levels and hold at most ``MAX_WHERE_CONDITIONS`` conditions
    in all (each tag, metric or param a condition)."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    architecture: TextMatch | None = None
    dataset: TextMatch | None = None
    task: Task | None = None
    framework: Framework | None = None
    engine: Engine | None = None
    status: ModelStatus | None = None
    version: VersionRange | None = None
    tags: list[NameValueCondition] | None = Field(default=None, max_length=MAX_WHERE_CONDITIONS)
    metrics: list[MetricCondition] | None = Field(default=None, max_length=MAX_WHERE_CONDITIONS)
    params: list[NameValueCondition] | None = Field(default=None, max_length=MAX_WHERE_CONDITIONS)
    created: TimeRange | None = None
    profile: ProfileFilter | None = None
    and_: list[ModelWhere] | None = Field(
        default=None, alias="and", min_length=1, max_length=MAX_WHERE_CONDITIONS
    )
    or_: list[ModelWhere] | None = Field(
        default=None, alias="or", min_length=1, max_length=MAX_WHERE_CONDITIONS
    )
    not_: ModelWhere | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _bounded(self) -> ModelWhere:
        if self.depth() > MAX_WHERE_DEPTH:
            raise ValueError(
                f"and/or/not nest at most {MAX_WHERE_DEPTH} levels deep (here {self.depth()})"
            )
        if self.conditions() > MAX_WHERE_CONDITIONS:
            raise ValueError(
                f"a search holds at most {MAX_WHERE_CONDITIONS} conditions "
                f"(here {self.conditions()})"
            )
        return self

    def children(self) -> list[ModelWhere]:
        return [*(self.and_ or []), *(self.or_ or []), *([self.not_] if self.not_ else [])]

    def depth(self) -> int:
        """1 for a search without and/or/not; one more for each level of them."""
        return 1 + max((child.depth() for child in self.children()), default=0)

    def conditions(self) -> int:
        """The conditions of the whole search: each field given, each tag, metric and
        param, and each and/or/not operand as one at least (an empty one too: otherwise
        thousands of empty operands would pass as none)."""
        own = sum(
            len(value) if isinstance(value, list) else 1
            for name, value in self
            if value is not None and name not in ("and_", "or_", "not_")
        )
        return own + sum(max(1, child.conditions()) for child in self.children())


class ModelFilter(Domain):
    """Which models a listing returns; every given field must match, and ``where``."""

    architecture: str | None = None
    task: Task | None = None
    framework: Framework | None = None
    engine: Engine | None = None
    version: int | None = None
    dataset: str | None = None
    status: ModelStatus | None = None
    parent_model_id: str | None = None
    profile: ProfileFilter | None = None
    where: ModelWhere | None = None


class JobStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINISHED_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobKind(Enum):
    PROFILE = "PROFILE"
    CONVERT = "CONVERT"


class JobLogEntry(Domain):
    time: datetime
    message: str = Field(max_length=4096)


# A profiling job's time budget when none is given (the README states it): a ResNet-18
# (TorchScript, 224×224) on a 2-core CPU is fully profiled within it. The cage's sweep
# (modelci/profiling/sweep.py) has the same default.
DEFAULT_PROFILE_BUDGET_S = 120.0


class SweepOutcome(Domain):
    """How a profiling job's batch sweep went on one device: what it measured, and why
    it stopped there."""

    device_id: str = Field(min_length=1, max_length=64)
    batches: list[int] = Field(default_factory=list, max_length=4096)
    reason_code: SweepStopReason
    reason: str = Field(max_length=1024)


class ProfilingJob(Domain):
    """Work on one model (profiling or conversion), queued in the database and run by a
    worker under a lease."""

    id: str
    model_id: str
    kind: JobKind = JobKind.PROFILE
    status: JobStatus
    batch_sizes: list[int] = Field(
        description="profiling: the batch sizes asked for; empty: an adaptive sweep"
    )
    devices: list[str] = Field(description="device ids asked for; empty: all of the worker's")
    targets: list[Engine] = Field(
        default_factory=list, description="conversion: the engines to produce"
    )
    profile_variants: bool = Field(
        default=False, description="conversion: queue profiling of every variant produced"
    )
    budget_seconds: float | None = Field(
        default=None, description="profiling: the time the job may take, shared by its devices"
    )
    max_p99_latency: float | None = Field(
        default=None, description="profiling: the sweep stops past this latency (seconds)"
    )
    max_batch: int | None = Field(default=None, description="profiling: the largest batch")
    sweeps: list[SweepOutcome] = Field(
        default_factory=list, description="profiling: each device's sweep, once it has ended"
    )
    progress: float = Field(ge=0, le=1)
    log: list[JobLogEntry] = Field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    owner: str | None = Field(
        default=None, description="who queued it (a token's name): quotas and fair turns"
    )
    claimant: str | None = Field(
        default=None,
        description="the token (its id) that claimed it: only that token writes for it",
    )
    attempts: int = Field(ge=0)
    max_attempts: int = Field(ge=1)
    lease_expires_at: datetime | None = None
    create_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    update_time: datetime


class Device(Domain):
    """A device a worker reported; identified by (host, device_id)."""

    host: str = Field(min_length=1, max_length=256)
    ip: str = Field(min_length=1, max_length=256)
    device_id: str = Field(min_length=1, max_length=64)
    name: str = Field(max_length=256)
    kind: DeviceKind
    total_memory: int = Field(ge=0)
    worker: str = Field(min_length=1, max_length=256)
    last_seen: datetime = Field(default_factory=utcnow)
