from typing import Optional

from pydantic import Field

from .base_model import BaseModel
from .enums import (
    DataType,
    DeviceKind,
    Engine,
    Framework,
    Metric,
    ModelInputFormat,
    ModelStatus,
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


class MetricValueInput(BaseModel):
    name: Metric
    value: float


class ModelInput(BaseModel):
    """A model's metadata."""

    architecture: str
    framework: Framework
    engine: Engine
    version: int
    dataset: str
    metric: list["MetricValueInput"] = Field(default_factory=lambda: [])
    task: Task
    inputs: list["IOShapeInput"] = Field(default_factory=lambda: [])
    outputs: list["IOShapeInput"] = Field(default_factory=lambda: [])
    model_status: list[ModelStatus] = Field(
        alias="modelStatus", default_factory=lambda: []
    )
    creator: str = ""


class ModelUpdateInput(BaseModel):
    """Only the fields given change; a field may not be set to null."""

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


DynamicProfileResultInput.model_rebuild()
ModelInput.model_rebuild()
ModelUpdateInput.model_rebuild()
ProfileLatencyInput.model_rebuild()
