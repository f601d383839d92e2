from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    DataType,
    DeviceKind,
    Engine,
    Framework,
    ModelInputFormat,
    ModelStatus,
    SweepStopReason,
    Task,
)


class ConversionCheckInput(BaseModel):
    source_engine: Engine = Field(alias="sourceEngine")
    batch_sizes: list[int] = Field(alias="batchSizes")
    max_abs_diff: float = Field(alias="maxAbsDiff")
    max_rel_diff: float = Field(alias="maxRelDiff")
    "max |variant - source| / max |source|"
    tolerance: float


class DeviceInput(BaseModel):
    host: str
    ip: str
    device_id: str = Field(alias="deviceId")
    name: str
    kind: DeviceKind
    total_memory: int = Field(alias="totalMemory")


class DynamicProfileResultInput(BaseModel):
    ip: str
    device_id: str = Field(alias="deviceId")
    device_name: str = Field(alias="deviceName")
    batch: int
    memory: "ProfileMemoryInput"
    latency: "ProfileLatencyInput"
    throughput: "ProfileThroughputInput"
    measurement: Optional["MeasurementInput"] = None


class IOShapeInput(BaseModel):
    name: str
    shape: list[int]
    dtype: DataType = DataType.TYPE_FP32
    format: ModelInputFormat = ModelInputFormat.FORMAT_NONE


class InfoTupleInput(BaseModel):
    avg: float
    p50: float
    p95: float
    p99: Optional[float] = None


class MeasurementInput(BaseModel):
    runtime: str
    intra_op_threads: int = Field(alias="intraOpThreads")
    samples: int
    windows: int
    stable: bool
    iqr_over_median: float = Field(alias="iqrOverMedian")
    percentile_method: str = Field(alias="percentileMethod", default="nearest-rank")
    sweep_stop: Optional[SweepStopReason] = Field(alias="sweepStop", default=None)
    "why the sweep stopped at this batch; null: it went on"
    busy_fraction: Optional[float] = Field(alias="busyFraction", default=None)
    "the share of the measuring CPUs' time that other processes (and the hypervisor's steal) took while the timed windows ran; null: not known"
    contention: Optional[str] = None
    "why these figures may be slower than on a quiet machine (other work competed for the cores), with the figures; null: the machine was quiet enough"
    p99_missing: Optional[str] = Field(alias="p99Missing", default=None)
    "why the inference p99 is null (too few timed runs, and why); null: there is a p99"
    attempts: int = 1
    "how many times this batch was measured (an unstable or contended measurement is taken again once, and the better one kept)"


class MetricConditionInput(BaseModel):
    """A metric the model has, by name, within every bound given (none: any value)."""

    name: str
    eq: Optional[float] = None
    gt: Optional[float] = None
    gte: Optional[float] = None
    lt: Optional[float] = None
    lte: Optional[float] = None


class MetricValueInput(BaseModel):
    name: str
    value: float


class ModelInput(BaseModel):
    """A model's metadata. Leave `version` out and the hub gives the next number for the architecture, task and dataset (the registered model carries it). At most 64 metrics, 256 params and 64 tags, each name once; a Markdown description up to 65536 characters."""

    architecture: str
    framework: Framework
    engine: Engine
    version: Optional[int] = None
    dataset: str
    metric: list["MetricValueInput"] = Field(default_factory=lambda: [])
    task: Task
    inputs: list["IOShapeInput"] = Field(default_factory=lambda: [])
    outputs: list["IOShapeInput"] = Field(default_factory=lambda: [])
    model_status: list[ModelStatus] = Field(
        alias="modelStatus", default_factory=lambda: []
    )
    creator: str = ""
    params: list["NameValueInput"] = Field(default_factory=lambda: [])
    tags: list["NameValueInput"] = Field(default_factory=lambda: [])
    description: str = ""
    source: Optional["ModelSourceInput"] = None


class ModelSourceInput(BaseModel):
    uri: str
    run_id: Optional[str] = Field(alias="runId", default=None)


class ModelUpdateInput(BaseModel):
    """Only the fields given change; a field may not be set to null. Tags change one at a time (setModelTag, deleteModelTag). A converted variant takes its metrics, params, description and source from its source model: change them there."""

    architecture: Optional[str] = None
    framework: Optional[Framework] = None
    engine: Optional[Engine] = None
    version: Optional[int] = None
    dataset: Optional[str] = None
    metric: Optional[list["MetricValueInput"]] = None
    task: Optional[Task] = None
    inputs: Optional[list["IOShapeInput"]] = None
    outputs: Optional[list["IOShapeInput"]] = None
    model_status: Optional[list[ModelStatus]] = Field(alias="modelStatus", default=None)
    creator: Optional[str] = None
    params: Optional[list["NameValueInput"]] = None
    description: Optional[str] = None
    source: Optional["ModelSourceInput"] = None


class ModelWhereInput(BaseModel):
    """A search over models: every condition given holds (and each of `and`), at least one of `or`, and not `not`. Tags, metrics and params each hold on some entry of the model's. At most 4 levels of and/or/not and 32 conditions in all (each tag, metric or param one)."""

    architecture: Optional["TextMatchInput"] = None
    dataset: Optional["TextMatchInput"] = None
    task: Optional[Task] = None
    framework: Optional[Framework] = None
    engine: Optional[Engine] = None
    status: Optional[ModelStatus] = None
    "One of the model's statuses."
    version: Optional["VersionRangeInput"] = None
    tags: Optional[list["NameValueConditionInput"]] = None
    "Every one holds."
    metrics: Optional[list["MetricConditionInput"]] = None
    "Every one holds."
    params: Optional[list["NameValueConditionInput"]] = None
    "Every one holds."
    created: Optional["TimeRangeInput"] = None
    "When the model was registered."
    profile: Optional["ProfileFilterInput"] = None
    "One dynamic result meets every condition here."
    and_: Optional[list["ModelWhereInput"]] = Field(alias="and", default=None)
    "Every one holds."
    or_: Optional[list["ModelWhereInput"]] = Field(alias="or", default=None)
    "At least one holds."
    not_: Optional["ModelWhereInput"] = Field(alias="not", default=None)
    "It does not hold."


class NameValueConditionInput(BaseModel):
    """A tag or a param, by name: with this value (`equals`), with any value, or absent (`exists: false`)."""

    name: str
    equals: Optional[str] = None
    exists: bool = True


class NameValueInput(BaseModel):
    name: str
    value: str


class ProfileFilterInput(BaseModel):
    """Measured performance a model must show: one of its dynamic results meets every condition given. `device` is a device id as workers report them (cpu, cuda:0) or, in any other form, a device's name (NVIDIA A100-SXM4-40GB). Latencies are the inference latency's percentiles in seconds, throughput inference items/s; a result without a p99 (under 100 samples) never meets maxP99Latency."""

    device: Optional[str] = None
    "a device id or name"
    device_kind: Optional[DeviceKind] = Field(alias="deviceKind", default=None)
    "only devices of this kind"
    batch: Optional[int] = None
    "exactly this batch size"
    min_batch: Optional[int] = Field(alias="minBatch", default=None)
    "batch sizes from this one"
    max_batch: Optional[int] = Field(alias="maxBatch", default=None)
    "batch sizes up to this one"
    max_p99_latency: Optional[float] = Field(alias="maxP99Latency", default=None)
    "inference latency p99 at most this, in seconds"
    max_p50_latency: Optional[float] = Field(alias="maxP50Latency", default=None)
    "inference latency p50 at most this, in seconds"
    min_throughput: Optional[float] = Field(alias="minThroughput", default=None)
    "inference throughput at least this, in items/s"
    stable_only: bool = Field(alias="stableOnly", default=False)
    "only results whose measurement settled (their last windows agreed)"


class ProfileLatencyInput(BaseModel):
    initialization_latency: "InfoTupleInput" = Field(alias="initializationLatency")
    preprocess_latency: "InfoTupleInput" = Field(alias="preprocessLatency")
    inference_latency: "InfoTupleInput" = Field(alias="inferenceLatency")
    postprocess_latency: "InfoTupleInput" = Field(alias="postprocessLatency")


class ProfileMemoryInput(BaseModel):
    total_memory: int = Field(alias="totalMemory")
    memory_usage: int = Field(alias="memoryUsage")
    utilization: float


class ProfileThroughputInput(BaseModel):
    batch_formation_throughput: float = Field(alias="batchFormationThroughput")
    preprocess_throughput: float = Field(alias="preprocessThroughput")
    inference_throughput: float = Field(alias="inferenceThroughput")
    postprocess_throughput: float = Field(alias="postprocessThroughput")


class RecommendationGoalInput(BaseModel):
    """What to choose for; a field left out leaves that dimension free. Latency is the inference latency's p99 in seconds, throughput inference items/s."""

    max_p99_latency: Optional[float] = Field(alias="maxP99Latency", default=None)
    "Inference latency p99 at most this, in seconds."
    min_throughput: Optional[float] = Field(alias="minThroughput", default=None)
    "Inference throughput at least this, in items/s."
    device: Optional[str] = None
    "Only this device: an id (cpu, cuda:0) or a name (NVIDIA A100 …)."
    device_kind: Optional[DeviceKind] = Field(alias="deviceKind", default=None)
    "Only this kind."
    max_batch: Optional[int] = Field(alias="maxBatch", default=None)
    "Batches up to this."
    allow_unstable: bool = Field(alias="allowUnstable", default=False)
    "Admit results whose measurement never settled."


class StaticProfileResultInput(BaseModel):
    parameters: int
    flops: int
    memory: int
    mread: int
    mwrite: int
    mrw: int
    macs: Optional[int] = None
    uncounted_operators: list[str] = Field(
        alias="uncountedOperators", default_factory=lambda: []
    )
    method: str = ""


class SweepOutcomeInput(BaseModel):
    device_id: str = Field(alias="deviceId")
    batches: list[int] = Field(default_factory=lambda: [])
    reason_code: SweepStopReason = Field(alias="reasonCode")
    reason: str


class TextMatchInput(BaseModel):
    """Text a field must match, every part given: `equals` exactly as stored; `prefix` (starts with) and `contains`, ignoring case, the text taken literally, at most 256 characters (no pattern characters)."""

    equals: Optional[str] = None
    prefix: Optional[str] = None
    contains: Optional[str] = None


class TimeRangeInput(BaseModel):
    """Strictly after `after` and strictly before `before` (either may be left out)."""

    after: Optional[datetime] = None
    before: Optional[datetime] = None


class VersionRangeInput(BaseModel):
    """Bounds the version must meet, every one given."""

    eq: Optional[int] = None
    gt: Optional[int] = None
    gte: Optional[int] = None
    lt: Optional[int] = None
    lte: Optional[int] = None


DynamicProfileResultInput.model_rebuild()
ModelInput.model_rebuild()
ModelUpdateInput.model_rebuild()
ModelWhereInput.model_rebuild()
ProfileLatencyInput.model_rebuild()
