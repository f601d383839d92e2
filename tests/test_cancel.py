"""Honest cancel and hand-back: nothing is written for a cancelled job, and a worker
that stops gracefully gives its job back at once (real database, real workers)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import Api, dynamic_result, modelci_serve, register_live
from test_worker import worker

from modelci.server.embedded import free_port

T = TypeVar("T")

JOB_FIELDS = "id status worker attempts progress log { message } sweeps { deviceId }"
RESULTS = """
query Results($id: ID!) {
  model(id: $id) {
    profileResult {
      staticResult { parameters flops }
      dynamicResults { ip deviceId batch createTime }
    }
  }
}"""
JOB = "query Job($id: ID!) { profilingJob(id: $id) { %s } }" % JOB_FIELDS
PROFILE = """
mutation Profile($id: ID!, $sizes: [Int!]) {
  profileModel(modelId: $id, batchSizes: $sizes) { id }
}"""
CANCEL = "mutation Cancel($id: ID!) { cancelProfilingJob(id: $id) { %s } }" % JOB_FIELDS
CLAIM = (
    """
mutation Claim($worker: String!) {
  claimProfilingJob(worker: $worker, devices: [{host: "h", ip: "10.0.0.7", deviceId: "cpu",
                    name: "CPU", kind: CPU, totalMemory: 1024}]) { %s }
}"""
    % JOB_FIELDS
)
FENCED_DYNAMIC = """
mutation Dynamic($model: ID!, $result: DynamicProfileResultInput!, $job: ID, $worker: String) {
  updateDynamicProfilingResult(modelId: $model, result: $result, forceInsert: true,
                               jobId: $job, worker: $worker) { id }
}"""
FENCED_STATIC = """
mutation Static($model: ID!, $job: ID, $worker: String) {
  registerStaticProfilingResult(
    modelId: $model, jobId: $job, worker: $worker,
    result: {parameters: 1, flops: 2, memory: 3, mread: 4, mwrite: 5, mrw: 9}
  ) { id }
}"""
FENCED_VARIANT = """
mutation Variant($source: ID!, $weight: Upload!, $job: ID, $worker: String) {
  registerConvertedModel(
    sourceId: $source, engine: ONNX, weight: $weight, jobId: $job, worker: $worker,
    conversion: {sourceEngine: TORCHSCRIPT, batchSizes: [1], maxAbsDiff: 0, maxRelDiff: 0,
                 tolerance: 0.001}
  ) { id }
}"""
SLOW = ("--window-seconds", "0.3", "--min-runs", "5", "--max-windows", "10")
MANY_BATCHES = list(range(1, 33))  # far more work than any test waits for


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    """Poll an observable state until ``probe`` returns something; bounded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def gql(hub: str, query: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(f"{hub}/graphql", json={"query": query, "variables": variables}).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def job_of(hub: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = gql(hub, JOB, id=job_id)["profilingJob"]
    return job


def results_of(hub: str, model_id: str) -> dict[str, Any]:
    result: dict[str, Any] = gql(hub, RESULTS, id=model_id)["model"]["profileResult"]
    return result


def messages(job: dict[str, Any]) -> list[str]:
    return [entry["message"] for entry in job["log"]]


@pytest.fixture(scope="module")
def onnx_weight(onnx_model: Path) -> bytes:
    return onnx_model.read_bytes()


def register(hub: str, weight: bytes) -> str:
    return register_live(
        hub,
        weight,
        "convert: false",
        architecture=f"Small-{uuid.uuid4().hex[:8]}",
        framework="ONNX",
        engine="ONNX",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],
    )


def queue_profiling(hub: str, model_id: str, sizes: list[int]) -> str:
    job_id: str = gql(hub, PROFILE, id=model_id, sizes=sizes)["profileModel"]["id"]
    return job_id


def test_a_cancelled_profile_writes_nothing_more(hub: str, onnx_weight: bytes) -> None:
    model_id, other_model = register(hub, onnx_weight), register(hub, onnx_weight)
    name = f"cancel-{uuid.uuid4().hex[:6]}"
    with worker(hub, "--name", name, *SLOW):
        job_id = queue_profiling(hub, model_id, MANY_BATCHES)
        # Mid-profile: the static result and a first dynamic result are in.
        wait_for("a first dynamic result", lambda: results_of(hub, model_id)["dynamicResults"])
        cancelled = gql(hub, CANCEL, id=job_id)["cancelProfilingJob"]
        at_cancel = results_of(hub, model_id)
        assert cancelled["status"] == "CANCELLED"
        assert at_cancel["staticResult"] is not None
        assert len(at_cancel["dynamicResults"]) < len(MANY_BATCHES)

        # The worker has let go of the job once it runs the next one (it runs one at a time).
        next_job = queue_profiling(hub, other_model, [1])
        wait_for(
            "the worker to take the next job",
            lambda: job_of(hub, next_job)["worker"] == name,
        )
    assert results_of(hub, model_id) == at_cancel
    final = job_of(hub, job_id)
    assert final["status"] == "CANCELLED"
    assert messages(final)[-1] == "cancelled"
    assert final["progress"] == cancelled["progress"]
    assert final["sweeps"] == []  # cancelled mid-sweep: no outcome written after the cancel


async def test_the_hub_refuses_writes_fenced_to_a_job_not_running_there(api: Api) -> None:
    model = await api.register(weight=b"weights", filename="model.pt")
    job = (
        await api.data(
            "mutation($id: ID!) { profileModel(modelId: $id, batchSizes: [1]) { id } }",
            {"id": model["id"]},
        )
    )["profileModel"]
    claimed = (await api.data(CLAIM, {"worker": "w1"}))["claimProfilingJob"]
    assert claimed["id"] == job["id"]
    fence = {"model": model["id"], "job": job["id"], "worker": "w1"}

    # While the job is the worker's, its writes land.
    await api.data(FENCED_DYNAMIC, {**fence, "result": dynamic_result(batch=1)})
    await api.data(FENCED_STATIC, fence)
    # Another worker's are refused; so is a write naming the job without its worker.
    assert await api.error_code(FENCED_STATIC, {**fence, "worker": "w2"}) == "CONFLICT"
    assert await api.error_code(FENCED_STATIC, {**fence, "worker": None}) == "BAD_USER_INPUT"

    await api.data(CANCEL, {"id": job["id"]})
    before = (await api.data(RESULTS, {"id": model["id"]}))["model"]["profileResult"]
    body = await api.post(FENCED_DYNAMIC, {**fence, "result": dynamic_result(batch=2)})
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "CONFLICT", "jobStatus": "CANCELLED"}
    assert "cancelled" in error["message"]
    assert await api.error_code(FENCED_STATIC, fence) == "CONFLICT"
    variant = {"source": model["id"], "job": job["id"], "worker": "w1"}
    files = {"weight": ("variant.onnx", b"not even looked at")}
    assert await api.error_code(FENCED_VARIANT, variant, files) == "CONFLICT"
    after = (await api.data(RESULTS, {"id": model["id"]}))["model"]["profileResult"]
    assert after == before
    models = await api.data("{ models { nodes { id } } }")
    assert [node["id"] for node in models["models"]["nodes"]] == [model["id"]]

    # Without a job, a write is an ordinary write, as it always was.
    await api.data(FENCED_DYNAMIC, {"model": model["id"], "result": dynamic_result(batch=2)})


async def test_no_fenced_write_lands_after_the_cancel_is_acknowledged(api: Api) -> None:
    model = await api.register(weight=b"weights", filename="model.pt")
    await api.data(
        "mutation($id: ID!) { profileModel(modelId: $id, batchSizes: [1]) { id } }",
        {"id": model["id"]},
    )
    job = (await api.data(CLAIM, {"worker": "w1"}))["claimProfilingJob"]
    fence = {"model": model["id"], "job": job["id"], "worker": "w1"}

    async def write(batch: int) -> bool:
        body = await api.post(FENCED_DYNAMIC, {**fence, "result": dynamic_result(batch=batch)})
        return not body.get("errors")

    async def cancel_then_look() -> list[int]:
        await api.data(CANCEL, {"id": job["id"]})
        results = (await api.data(RESULTS, {"id": model["id"]}))["model"]["profileResult"]
        return [result["batch"] for result in results["dynamicResults"]]

    writes = [asyncio.create_task(write(batch)) for batch in range(1, 61)]
    # Cancel while writes are under way: once the first has been answered.
    await asyncio.wait(writes, return_when=asyncio.FIRST_COMPLETED)
    seen_at_cancel = await cancel_then_look()
    landed = await asyncio.gather(*writes)
    final = (await api.data(RESULTS, {"id": model["id"]}))["model"]["profileResult"]
    batches = sorted(result["batch"] for result in final["dynamicResults"])
    # Every write the hub accepted was in before the cancel answered; the rest were refused.
    assert batches == sorted(seen_at_cancel)
    assert batches == [batch for batch, ok in zip(range(1, 61), landed, strict=True) if ok]


def test_a_worker_given_sigterm_hands_its_job_back(hub: str, onnx_weight: bytes) -> None:
    model_id = register(hub, onnx_weight)
    name = f"sigterm-{uuid.uuid4().hex[:6]}"
    # A 60 s lease: the job could come back within the test only by being handed back.
    with worker(hub, "--name", name, *SLOW, "--lease-seconds", "60") as process:
        job_id = queue_profiling(hub, model_id, MANY_BATCHES)
        wait_for("a first dynamic result", lambda: results_of(hub, model_id)["dynamicResults"])
        assert job_of(hub, job_id)["status"] == "RUNNING"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    job = job_of(hub, job_id)
    assert (job["status"], job["worker"], job["attempts"]) == ("QUEUED", None, 0)
    assert messages(job)[-1] == f"handed back by {name}: stopping"


def test_serve_hands_back_the_jobs_of_its_own_workers(tmp_path: Path, onnx_weight: bytes) -> None:
    port = free_port()
    log: list[str] = []
    with modelci_serve(
        tmp_path, port, log=log, workers="1", profile_window_s="0.3", profile_min_runs="5"
    ) as (hub, server):
        model_id = register(hub, onnx_weight)
        job_id = queue_profiling(hub, model_id, MANY_BATCHES)
        worker_name = wait_for(
            "the serve worker to take the job", lambda: job_of(hub, job_id)["worker"]
        )
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    # A clean stop warns of nothing (the worker's hand-back finds the hub already gone).
    warned = [line for line in log if "WARNING" in line and "authentication is OFF" not in line]
    assert not warned, "".join(log)
    with modelci_serve(tmp_path, port, workers="0") as (hub, _):
        job = job_of(hub, job_id)
    assert (job["status"], job["worker"], job["attempts"]) == ("QUEUED", None, 0)
    assert messages(job)[-1].startswith(f"handed back by {worker_name}: stopping")
