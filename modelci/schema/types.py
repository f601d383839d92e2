"""GraphQL object types and inputs, derived from the pydantic domain.

Resolvers return the pydantic instances themselves; these classes only describe
which fields the API exposes.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, NewType

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic

from modelci.core import domain
from modelci.core.domain import (
    DataType,
    Engine,
    Framework,
    ModelInputFormat,
    ModelStatus,
    SweepStopReason,
    Task,
    WeightFormat,
)

from .context import HubInfo

for enum in (
    Framework,
    Engine,
    Task,
    DataType,
    ModelInputFormat,
    ModelStatus,
    WeightFormat,
    SweepStopReason,
):
    strawberry.enum(enum)


def parse_long(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Long must be an integer")
    if not -(2**63) <= value < 2**63:
        raise ValueError("Long must fit in 64 bits")
    return value


Long = NewType("Long", int)

LONG_SCALAR = strawberry.scalar(
    name="Long",
    description="A 64-bit integer (byte counts, FLOPs), sent as a JSON number.",
    serialize=int,
    parse_value=parse_long,
)


@strawberry_pydantic.type(model=domain.IOShape, description="A tensor: -1 marks a dynamic size.")
class IOShape:
    name: strawberry.auto
    shape: strawberry.auto
    dtype: strawberry.auto
    format: strawberry.auto


METADATA_NAMES = f"names are {domain.METADATA_NAME_RULE}"


@strawberry_pydantic.type(
    model=domain.MetricValue,
    description=f"A measured quality of the model: any name, a finite number ({METADATA_NAMES}).",
)
class MetricValue:
    name: strawberry.auto
    value: strawberry.auto


@strawberry_pydantic.type(
    model=domain.NameValue,
    description=f"A param or a tag: a name and a text value ({METADATA_NAMES}; values up to "
    f"{domain.MAX_METADATA_VALUE} characters).",
)
class NameValue:
    name: strawberry.auto
    value: strawberry.auto


@strawberry_pydantic.type(
    model=domain.ModelSource,
    description="What produced the model: the URI of its training run, notebook or commit, "
    "and the run's id in the tracker that ran it.",
)
class ModelSource:
    uri: strawberry.auto
    run_id: strawberry.auto


@strawberry_pydantic.type(
    model=domain.Weight, description="The weight file; bytes at /models/{id}/weight."
)
class Weight:
    filename: strawberry.auto
    size: Long
    sha256: strawberry.auto
    content_type: strawberry.auto
    format: strawberry.auto


@strawberry_pydantic.type(
    model=domain.StaticProfileResult,
    description="Figures from the model graph at batch 1: FLOPs = 2 × MACs (multiply-"
    "accumulates of conv, GEMM and matmul); memory figures in bytes.",
)
class StaticProfileResult:
    parameters: Long
    flops: Long
    memory: Long
    mread: Long
    mwrite: Long
    mrw: Long
    macs: Long | None
    uncounted_operators: strawberry.auto
    method: strawberry.auto


@strawberry_pydantic.type(model=domain.InfoTuple, description="A latency distribution in seconds.")
class InfoTuple:
    avg: strawberry.auto
    p50: strawberry.auto
    p95: strawberry.auto
    p99: strawberry.auto


@strawberry_pydantic.type(model=domain.ProfileMemory)
class ProfileMemory:
    total_memory: Long
    memory_usage: Long
    utilization: strawberry.auto


@strawberry_pydantic.type(model=domain.ProfileLatency)
class ProfileLatency:
    initialization_latency: strawberry.auto
    preprocess_latency: strawberry.auto
    inference_latency: strawberry.auto
    postprocess_latency: strawberry.auto


@strawberry_pydantic.type(model=domain.ProfileThroughput, description="Items per second.")
class ProfileThroughput:
    batch_formation_throughput: strawberry.auto
    preprocess_throughput: strawberry.auto
    inference_throughput: strawberry.auto
    postprocess_throughput: strawberry.auto


@strawberry_pydantic.type(
    model=domain.Measurement,
    description="How a dynamic result was measured: windows of timed runs until stable "
    "(unstable: the last windows never agreed; show it as such), and whether the batch "
    "sweep stopped at this batch (sweepStop).",
)
class Measurement:
    runtime: strawberry.auto
    intra_op_threads: strawberry.auto
    samples: strawberry.auto
    windows: strawberry.auto
    stable: strawberry.auto
    iqr_over_median: strawberry.auto
    percentile_method: strawberry.auto
    sweep_stop: strawberry.auto
    busy_fraction: strawberry.auto
    contention: strawberry.auto
    p99_missing: strawberry.auto
    attempts: strawberry.auto


@strawberry_pydantic.type(
    model=domain.DynamicProfileResult,
    description="One timed run, identified within a model by (ip, deviceId, batch).",
)
class DynamicProfileResult:
    ip: strawberry.auto
    device_id: strawberry.auto
    device_name: strawberry.auto
    batch: strawberry.auto
    memory: strawberry.auto
    latency: strawberry.auto
    throughput: strawberry.auto
    measurement: strawberry.auto
    create_time: strawberry.auto


@strawberry_pydantic.type(model=domain.ProfileResult)
class ProfileResult:
    static_result: strawberry.auto
    dynamic_results: strawberry.auto


@strawberry_pydantic.type(
    model=domain.ConversionCheck,
    description="How a converted variant was checked against its source: the same random "
    "inputs through both, at each batch size.",
)
class ConversionCheck:
    source_engine: strawberry.auto
    batch_sizes: strawberry.auto
    max_abs_diff: strawberry.auto
    max_rel_diff: strawberry.auto
    tolerance: strawberry.auto


@strawberry_pydantic.input(model=domain.ConversionCheck)
class ConversionCheckInput:
    source_engine: strawberry.auto
    batch_sizes: strawberry.auto
    max_abs_diff: strawberry.auto
    max_rel_diff: strawberry.auto
    tolerance: strawberry.auto


# MLModel's lineage fields refer to MLModel itself, which Strawberry resolves lazily.
LazyMLModel = Annotated["MLModel", strawberry.lazy(__name__)]


@strawberry_pydantic.type(model=domain.MLModel, description="A registered model.")
class MLModel:
    id: strawberry.ID
    architecture: strawberry.auto
    framework: strawberry.auto
    engine: strawberry.auto
    version: strawberry.auto
    dataset: strawberry.auto
    metric: strawberry.auto
    task: strawberry.auto
    inputs: strawberry.auto
    outputs: strawberry.auto
    model_status: strawberry.auto
    parent_model_id: strawberry.ID | None
    conversion: strawberry.auto
    weight: strawberry.auto
    profile_result: strawberry.auto
    creator: strawberry.auto
    params: strawberry.auto
    tags: strawberry.auto
    description: strawberry.auto
    source: strawberry.auto
    created_by: strawberry.auto
    create_time: strawberry.auto
    update_time: strawberry.auto

    @strawberry.field(
        description="The model this one was converted from; null for a source.",
        graphql_type=LazyMLModel | None,
    )
    async def parent(self, info: HubInfo) -> domain.MLModel | None:
        parent_id = self.parent_model_id
        return await info.context.loaders.model.load(parent_id) if parent_id else None

    @strawberry.field(
        description="The variants converted from this model.", graphql_type=list[LazyMLModel]
    )
    async def children(self, info: HubInfo) -> list[domain.MLModel]:
        return await info.context.loaders.children.load(str(self.id))

    @strawberry.field(description="The aliases that name this model (setModelAlias), by name.")
    async def aliases(self, info: HubInfo) -> list[str]:
        return await info.context.loaders.aliases.load(str(self.id))


# Inputs


@strawberry_pydantic.input(model=domain.IOShape)
class IOShapeInput:
    name: strawberry.auto
    shape: strawberry.auto
    dtype: strawberry.auto
    format: strawberry.auto


@strawberry_pydantic.input(model=domain.MetricValue)
class MetricValueInput:
    name: strawberry.auto
    value: strawberry.auto


@strawberry_pydantic.input(model=domain.NameValue)
class NameValueInput:
    name: strawberry.auto
    value: strawberry.auto


@strawberry_pydantic.input(model=domain.ModelSource)
class ModelSourceInput:
    uri: strawberry.auto
    run_id: strawberry.auto


def input_data(value: Any) -> Any:
    """An input's value as plain data: input objects as dicts, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: input_data(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, list):
        return [input_data(item) for item in value]
    return value


@strawberry_pydantic.input(
    model=domain.ModelFields,
    description="A model's metadata. Leave `version` out and the hub gives the next number "
    "for the architecture, task and dataset (the registered model carries it). At most "
    f"{domain.MAX_METRICS} metrics, {domain.MAX_PARAMS} params and {domain.MAX_TAGS} tags, "
    f"each name once; a Markdown description up to {domain.MAX_DESCRIPTION} characters.",
)
class ModelInput:
    architecture: strawberry.auto
    framework: strawberry.auto
    engine: strawberry.auto
    version: strawberry.auto
    dataset: strawberry.auto
    metric: strawberry.auto
    task: strawberry.auto
    inputs: strawberry.auto
    outputs: strawberry.auto
    model_status: strawberry.auto
    creator: strawberry.auto
    params: strawberry.auto
    tags: strawberry.auto
    description: strawberry.auto
    source: strawberry.auto

    def to_pydantic(self, **extra: Any) -> domain.ModelFields:
        """Validated whole, so that an error in one item names its place in the input
        (``input.metric.3.name``), not only its field."""
        return domain.ModelFields.model_validate(input_data(self) | extra)


# Maybe[X | None]: the resolver, not the coercion, refuses null, so the error names the field.
@strawberry.input(
    description="Only the fields given change; a field may not be set to null. Tags change "
    "one at a time (setModelTag, deleteModelTag). A converted variant takes its metrics, "
    "params, description and source from its source model: change them there."
)
class ModelUpdateInput:
    architecture: strawberry.Maybe[str | None]
    framework: strawberry.Maybe[Framework | None]
    engine: strawberry.Maybe[Engine | None]
    version: strawberry.Maybe[int | None]
    dataset: strawberry.Maybe[str | None]
    metric: strawberry.Maybe[list[MetricValueInput] | None]
    task: strawberry.Maybe[Task | None]
    inputs: strawberry.Maybe[list[IOShapeInput] | None]
    outputs: strawberry.Maybe[list[IOShapeInput] | None]
    model_status: strawberry.Maybe[list[ModelStatus] | None]
    creator: strawberry.Maybe[str | None]
    params: strawberry.Maybe[list[NameValueInput] | None]
    description: strawberry.Maybe[str | None]
    source: strawberry.Maybe[ModelSourceInput | None]


@strawberry_pydantic.input(model=domain.StaticProfileResult)
class StaticProfileResultInput:
    parameters: Long
    flops: Long
    memory: Long
    mread: Long
    mwrite: Long
    mrw: Long
    macs: Long | None
    uncounted_operators: strawberry.auto
    method: strawberry.auto


@strawberry_pydantic.input(model=domain.InfoTuple)
class InfoTupleInput:
    avg: strawberry.auto
    p50: strawberry.auto
    p95: strawberry.auto
    p99: strawberry.auto


@strawberry_pydantic.input(model=domain.ProfileMemory)
class ProfileMemoryInput:
    total_memory: Long
    memory_usage: Long
    utilization: strawberry.auto


@strawberry_pydantic.input(model=domain.ProfileLatency)
class ProfileLatencyInput:
    initialization_latency: strawberry.auto
    preprocess_latency: strawberry.auto
    inference_latency: strawberry.auto
    postprocess_latency: strawberry.auto


@strawberry_pydantic.input(model=domain.ProfileThroughput)
class ProfileThroughputInput:
    batch_formation_throughput: strawberry.auto
    preprocess_throughput: strawberry.auto
    inference_throughput: strawberry.auto
    postprocess_throughput: strawberry.auto


@strawberry_pydantic.input(model=domain.Measurement)
class MeasurementInput:
    runtime: strawberry.auto
    intra_op_threads: strawberry.auto
    samples: strawberry.auto
    windows: strawberry.auto
    stable: strawberry.auto
    iqr_over_median: strawberry.auto
    percentile_method: strawberry.auto
    sweep_stop: strawberry.auto
    busy_fraction: strawberry.auto
    contention: strawberry.auto
    p99_missing: strawberry.auto
    attempts: strawberry.auto


@strawberry_pydantic.input(model=domain.DynamicProfileResult)
class DynamicProfileResultInput:
    ip: strawberry.auto
    device_id: strawberry.auto
    device_name: strawberry.auto
    batch: strawberry.auto
    memory: strawberry.auto
    latency: strawberry.auto
    throughput: strawberry.auto
    measurement: strawberry.auto


@strawberry_pydantic.input(
    model=domain.ProfileFilter,
    description="Measured performance a model must show: one of its dynamic results meets "
    "every condition given. `device` is a device id as workers report them (cpu, cuda:0) "
    "or, in any other form, a device's name (NVIDIA A100-SXM4-40GB). Latencies are the "
    "inference latency's percentiles in seconds, throughput inference items/s; a result "
    "without a p99 (under 100 samples) never meets maxP99Latency.",
)
class ProfileFilterInput:
    device: strawberry.auto
    device_kind: strawberry.auto
    batch: strawberry.auto
    min_batch: strawberry.auto
    max_batch: strawberry.auto
    max_p99_latency: strawberry.auto
    max_p50_latency: strawberry.auto
    min_throughput: strawberry.auto
    stable_only: strawberry.auto
