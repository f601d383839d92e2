"""The Python client against a live hub, as a notebook would use it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import model_input, modelci_serve
from graphql import parse, validate

from modelci.client import OPERATIONS, AsyncModelHub, ModelHub
from modelci.schema import schema
from modelci.schema.domain import (
    DynamicProfileResult,
    InfoTuple,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    StaticProfileResult,
    Task,
)
from modelci.schema.errors import BadUserInput, Conflict, NotFound
from modelci.server.embedded import free_port

FIELDS = {
    key: value
    for key, value in model_input().items()
    if key not in ("metric", "inputs", "outputs", "modelStatus")
}


def test_every_operation_is_valid_against_the_live_schema() -> None:
    for name, document in OPERATIONS.items():
        assert validate(schema._schema, parse(document)) == [], name


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    folder = tmp_path_factory.mktemp("hub")
    with modelci_serve(folder, free_port(), workers="0") as (url, _), ModelHub(url) as client:
        yield client


def timing(p50: float) -> InfoTuple:
    return InfoTuple(avg=p50, p50=p50, p95=p50, p99=None)


def test_the_seed_service_through_the_client(hub: ModelHub, tmp_path: Path) -> None:
    weight = os.urandom(3 * 1024 * 1024 + 5)
    seen: list[tuple[int, int]] = []
    model = hub.register_model(
        weight,
        progress=lambda done, total: seen.append((done, total)),
        metric=[{"name": "acc", "value": 0.76}],
        **FIELDS,
    )
    assert seen[-1] == (len(weight), len(weight))
    assert model.weight.sha256 == hashlib.sha256(weight).hexdigest()
    assert hub.get_by_id(model.id) == model
    assert [m.id for m in hub.get_models(architecture="ResNet50")] == [model.id]
    assert [m.id for m in hub.get_models(task=Task.Image_Classification)] == [model.id]

    updated = hub.update_model(model.id, creator="alice", metric=[{"name": "acc", "value": 0.8}])
    assert updated.creator == "alice" and updated.metric[0].value == 0.8

    static = StaticProfileResult(parameters=1, flops=2, memory=3, mread=4, mwrite=5, mrw=9)
    assert hub.register_static_profiling_result(model.id, static).profile_result.static_result
    dynamic = DynamicProfileResult(
        ip="10.0.0.1",
        device_id="cpu",
        device_name="CPU",
        batch=4,
        memory=ProfileMemory(total_memory=1, memory_usage=1, utilization=0.5),
        latency=ProfileLatency(
            initialization_latency=timing(1),
            preprocess_latency=timing(0.1),
            inference_latency=timing(0.01),
            postprocess_latency=timing(0.1),
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=1,
            preprocess_throughput=1,
            inference_throughput=400,
            postprocess_throughput=1,
        ),
    )
    hub.register_dynamic_profiling_result(model.id, dynamic)
    with pytest.raises(Conflict):
        hub.register_dynamic_profiling_result(model.id, dynamic)
    faster = dynamic.model_copy(
        update={"latency": dynamic.latency.model_copy(update={"inference_latency": timing(0.005)})}
    )
    results = hub.update_dynamic_profiling_result(model.id, faster).profile_result.dynamic_results
    assert results[0].latency.inference_latency.p50 == 0.005
    assert (
        hub.delete_dynamic_profiling_result(
            model.id, "10.0.0.1", "cpu"
        ).profile_result.dynamic_results
        == []
    )

    received: list[int] = []
    path = hub.download_weight(model.id, tmp_path, progress=lambda done, _: received.append(done))
    assert path.read_bytes() == weight and received[-1] == len(weight)

    assert hub.delete_model(model.id).id == model.id
    with pytest.raises(NotFound):
        hub.get_by_id(model.id)
    with pytest.raises(BadUserInput):
        hub.get_by_id("not-an-id")


def test_jobs_and_the_async_client(hub: ModelHub) -> None:
    model = hub.register_model(b"w", **{**FIELDS, "architecture": "JobNet"})
    job = hub.profile_model(model.id, batch_sizes=[1, 2])
    assert job.batch_sizes == [1, 2] and hub.get_job(job.id).status.value == "QUEUED"
    assert [j.id for j in hub.get_jobs(model_id=model.id)] == [job.id]
    assert hub.cancel_job(job.id).status.value == "CANCELLED"
    assert hub.wait_for_job(job.id).status.value == "CANCELLED"

    async def use_async() -> tuple[str, str, list[str]]:
        async with AsyncModelHub(hub.url) as client:
            found = await client.get_by_id(model.id)
            queued = await client.profile_model(model.id, batch_sizes=[4])
            cancelled = await client.cancel_job(queued.id)
            finished = await client.wait_for_job(queued.id)
            listed = await client.get_models(architecture="JobNet")
            assert cancelled.status is finished.status
            return found.architecture, finished.status.value, [m.id for m in listed]

    assert asyncio.run(use_async()) == ("JobNet", "CANCELLED", [model.id])
