from datetime import datetime
from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    DataType,
    Engine,
    Framework,
    JobKind,
    JobStatus,
    ModelInputFormat,
    ModelStatus,
    RegistryEventType,
    Shortfall,
    SweepStopReason,
    Task,
    WebhookDeliveryStatus,
    WeightFormat,
)


class DynamicProfileResult(BaseModel):
    ip: str
    device_id: str = Field(alias="deviceId")
    device_name: str = Field(alias="deviceName")
    batch: int
    create_time: datetime = Field(alias="createTime")
    memory: "DynamicProfileResultMemory"
    latency: "DynamicProfileResultLatency"
    throughput: "DynamicProfileResultThroughput"
    measurement: Optional["DynamicProfileResultMeasurement"]


class DynamicProfileResultMemory(BaseModel):
    total_memory: int = Field(alias="totalMemory")
    memory_usage: int = Field(alias="memoryUsage")
    utilization: float


class DynamicProfileResultLatency(BaseModel):
    initialization_latency: "DynamicProfileResultLatencyInitializationLatency" = Field(
        alias="initializationLatency"
    )
    preprocess_latency: "DynamicProfileResultLatencyPreprocessLatency" = Field(
        alias="preprocessLatency"
    )
    inference_latency: "DynamicProfileResultLatencyInferenceLatency" = Field(
        alias="inferenceLatency"
    )
    postprocess_latency: "DynamicProfileResultLatencyPostprocessLatency" = Field(
        alias="postprocessLatency"
    )


class DynamicProfileResultLatencyInitializationLatency(BaseModel):
    avg: float
    p50: float
    p95: float
    p99: Optional[float]


class DynamicProfileResultLatencyPreprocessLatency(BaseModel):
    avg: float
    p50: float
    p95: float
    p99: Optional[float]


class DynamicProfileResultLatencyInferenceLatency(BaseModel):
    avg: float
    p50: float
    p95: float
    p99: Optional[float]


class DynamicProfileResultLatencyPostprocessLatency(BaseModel):
    avg: float
    p50: float
    p95: float
    p99: Optional[float]


class DynamicProfileResultThroughput(BaseModel):
    batch_formation_throughput: float = Field(alias="batchFormationThroughput")
    preprocess_throughput: float = Field(alias="preprocessThroughput")
    inference_throughput: float = Field(alias="inferenceThroughput")
    postprocess_throughput: float = Field(alias="postprocessThroughput")


class DynamicProfileResultMeasurement(BaseModel):
    runtime: str
    intra_op_threads: int = Field(alias="intraOpThreads")
    samples: int
    windows: int
    stable: bool
    iqr_over_median: float = Field(alias="iqrOverMedian")
    percentile_method: str = Field(alias="percentileMethod")
    sweep_stop: Optional[SweepStopReason] = Field(alias="sweepStop")
    busy_fraction: Optional[float] = Field(alias="busyFraction")
    contention: Optional[str]
    p99_missing: Optional[str] = Field(alias="p99Missing")
    attempts: int


class MLModel(BaseModel):
    id: str
    architecture: str
    framework: Framework
    engine: Engine
    version: int
    dataset: str
    task: Task
    creator: str
    model_status: list[ModelStatus] = Field(alias="modelStatus")
    parent_model_id: Optional[str] = Field(alias="parentModelId")
    create_time: datetime = Field(alias="createTime")
    update_time: datetime = Field(alias="updateTime")
    created_by: Optional[str] = Field(alias="createdBy")
    metric: list["MLModelMetric"]
    params: list["MLModelParams"]
    tags: list["MLModelTags"]
    description: str
    source: Optional["MLModelSource"]
    inputs: list["MLModelInputs"]
    outputs: list["MLModelOutputs"]
    weight: "MLModelWeight"
    conversion: Optional["MLModelConversion"]
    profile_result: "MLModelProfileResult" = Field(alias="profileResult")


class MLModelMetric(BaseModel):
    name: str
    value: float


class MLModelParams(BaseModel):
    name: str
    value: str


class MLModelTags(BaseModel):
    name: str
    value: str


class MLModelSource(BaseModel):
    uri: str
    run_id: Optional[str] = Field(alias="runId")


class MLModelInputs(BaseModel):
    name: str
    shape: list[int]
    dtype: DataType
    format: ModelInputFormat


class MLModelOutputs(BaseModel):
    name: str
    shape: list[int]
    dtype: DataType
    format: ModelInputFormat


class MLModelWeight(BaseModel):
    filename: str
    size: int
    sha256: str
    content_type: str = Field(alias="contentType")
    format: Optional[WeightFormat]


class MLModelConversion(BaseModel):
    source_engine: Engine = Field(alias="sourceEngine")
    batch_sizes: list[int] = Field(alias="batchSizes")
    max_abs_diff: float = Field(alias="maxAbsDiff")
    max_rel_diff: float = Field(alias="maxRelDiff")
    tolerance: float


class MLModelProfileResult(BaseModel):
    static_result: Optional["MLModelProfileResultStaticResult"] = Field(
        alias="staticResult"
    )
    dynamic_results: list["MLModelProfileResultDynamicResults"] = Field(
        alias="dynamicResults"
    )


class MLModelProfileResultStaticResult(BaseModel):
    parameters: int
    flops: int
    memory: int
    mread: int
    mwrite: int
    mrw: int
    macs: Optional[int]
    uncounted_operators: list[str] = Field(alias="uncountedOperators")
    method: str


class MLModelProfileResultDynamicResults(DynamicProfileResult):
    pass


class ProfilingJob(BaseModel):
    id: str
    model_id: str = Field(alias="modelId")
    kind: JobKind
    status: JobStatus
    batch_sizes: list[int] = Field(alias="batchSizes")
    devices: list[str]
    targets: list[Engine]
    profile_variants: bool = Field(alias="profileVariants")
    budget_seconds: Optional[float] = Field(alias="budgetSeconds")
    max_p99_latency: Optional[float] = Field(alias="maxP99Latency")
    max_batch: Optional[int] = Field(alias="maxBatch")
    sweeps: list["ProfilingJobSweeps"]
    progress: float
    error: Optional[str]
    worker: Optional[str]
    attempts: int
    max_attempts: int = Field(alias="maxAttempts")
    lease_expires_at: Optional[datetime] = Field(alias="leaseExpiresAt")
    create_time: datetime = Field(alias="createTime")
    start_time: Optional[datetime] = Field(alias="startTime")
    end_time: Optional[datetime] = Field(alias="endTime")
    update_time: datetime = Field(alias="updateTime")
    log: list["ProfilingJobLog"]


class ProfilingJobSweeps(BaseModel):
    device_id: str = Field(alias="deviceId")
    batches: list[int]
    reason_code: SweepStopReason = Field(alias="reasonCode")
    reason: str


class ProfilingJobLog(BaseModel):
    time: datetime
    message: str


class RecommendationOption(BaseModel):
    model: "RecommendationOptionModel"
    device_id: str = Field(alias="deviceId")
    device_name: str = Field(alias="deviceName")
    ip: str
    batch: int
    p50: float
    p99: Optional[float]
    throughput: float
    stable: bool
    on_frontier: bool = Field(alias="onFrontier")
    shortfalls: list[Shortfall]


class RecommendationOptionModel(BaseModel):
    id: str
    architecture: str
    framework: Framework
    engine: Engine
    version: int
    dataset: str
    parent_model_id: Optional[str] = Field(alias="parentModelId")


class Webhook(BaseModel):
    id: str
    url: str
    events: list[RegistryEventType]
    active: bool
    created_by: Optional[str] = Field(alias="createdBy")
    create_time: datetime = Field(alias="createTime")
    update_time: datetime = Field(alias="updateTime")


class WebhookDelivery(BaseModel):
    id: str
    webhook_id: str = Field(alias="webhookId")
    event_id: str = Field(alias="eventId")
    event_type: RegistryEventType = Field(alias="eventType")
    status: WebhookDeliveryStatus
    attempts: int
    max_attempts: int = Field(alias="maxAttempts")
    response_code: Optional[int] = Field(alias="responseCode")
    error: Optional[str]
    create_time: datetime = Field(alias="createTime")
    last_attempt_time: Optional[datetime] = Field(alias="lastAttemptTime")
    next_attempt_time: Optional[datetime] = Field(alias="nextAttemptTime")
    delivered_time: Optional[datetime] = Field(alias="deliveredTime")


DynamicProfileResult.model_rebuild()
MLModel.model_rebuild()
ProfilingJob.model_rebuild()
RecommendationOption.model_rebuild()
Webhook.model_rebuild()
WebhookDelivery.model_rebuild()
