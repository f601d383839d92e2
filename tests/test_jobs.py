"""Profiling jobs through the API: queueing, worker claims and leases, retries, cancellation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Api, model_input

from modelci.core.domain import DEFAULT_PROFILE_BUDGET_S
from modelci.profiling import sweep

JOB_FIELDS = (
    "id modelId kind status batchSizes devices progress error worker attempts log { message } "
    "budgetSeconds maxP99Latency maxBatch sweeps { deviceId batches reasonCode reason }"
)

PROFILE = (
    """
mutation Profile($modelId: ID!, $batchSizes: [Int!], $devices: [String!], $budget: Float,
                 $p99: Float, $maxBatch: Int) {
  profileModel(modelId: $modelId, batchSizes: $batchSizes, devices: $devices,
               budgetSeconds: $budget, maxP99Latency: $p99, maxBatch: $maxBatch) { %s }
}"""
    % JOB_FIELDS
)

CLAIM = (
    """
mutation Claim($worker: String!, $devices: [DeviceInput!]!, $kinds: [JobKind!]) {
  claimProfilingJob(worker: $worker, devices: $devices, kinds: $kinds) { %s }
}"""
    % JOB_FIELDS
)

SWEEP = (
    """
mutation Sweep($id: ID!, $worker: String!, $sweep: SweepOutcomeInput!) {
  recordProfilingSweep(id: $id, worker: $worker, sweep: $sweep) { %s }
}"""
    % JOB_FIELDS
)

HEARTBEAT = (
    """
mutation Beat($id: ID!, $worker: String!, $progress: Float!, $message: String) {
  heartbeatProfilingJob(id: $id, worker: $worker, progress: $progress, message: $message) {
    %s
  }
}"""
    % JOB_FIELDS
)

FINISH = (
    """
mutation Finish($id: ID!, $worker: String!, $error: String) {
  finishProfilingJob(id: $id, worker: $worker, error: $error) { %s }
}"""
    % JOB_FIELDS
)

CANCEL = "mutation Cancel($id: ID!) { cancelProfilingJob(id: $id) { %s } }" % JOB_FIELDS

JOB = "query Job($id: ID!) { profilingJob(id: $id) { %s } }" % JOB_FIELDS

JOBS = """
query Jobs($modelId: ID, $status: JobStatus) {
  profilingJobs(modelId: $modelId, status: $status) { nodes { id status } }
}"""

DEVICES = "{ devices { host ip deviceId name kind totalMemory worker } }"


def cpu(host: str = "gpu-host-1") -> dict[str, Any]:
    return {
        "host": host,
        "ip": "10.0.0.7",
        "deviceId": "cpu",
        "name": "Test CPU",
        "kind": "CPU",
        "totalMemory": 64 * 1024**3,
    }


def gpu(host: str = "gpu-host-1") -> dict[str, Any]:
    return {
        **cpu(host),
        "deviceId": "cuda:0",
        "name": "NVIDIA H100",
        "kind": "CUDA",
        "totalMemory": 80 * 1024**3,
    }


async def claim(
    api: Api, worker: str, devices: list[dict[str, Any]], kinds: list[str] | None = None
) -> dict[str, Any] | None:
    data = await api.data(CLAIM, {"worker": worker, "devices": devices, "kinds": kinds})
    job: dict[str, Any] | None = data["claimProfilingJob"]
    return job


async def test_profile_model_queues_a_job(api: Api) -> None:
    model = await api.register()
    job = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    assert job["status"] == "QUEUED"
    assert job["modelId"] == model["id"]
    # No batch sizes: an adaptive sweep, under the hub's default budget.
    assert job["batchSizes"] == [] and job["budgetSeconds"] == DEFAULT_PROFILE_BUDGET_S
    assert (job["maxP99Latency"], job["maxBatch"], job["sweeps"]) == (None, None, [])
    assert job["devices"] == [] and job["progress"] == 0 and job["attempts"] == 0

    listed = await api.data(JOBS, {"modelId": model["id"]})
    assert [node["id"] for node in listed["profilingJobs"]["nodes"]] == [job["id"]]
    assert (await api.data(JOBS, {"status": "RUNNING"}))["profilingJobs"]["nodes"] == []

    limited = {"batchSizes": [8, 1, 2], "budget": 30, "p99": 0.01, "maxBatch": 4}
    job = (await api.data(PROFILE, {"modelId": model["id"], **limited}))["profileModel"]
    assert (job["batchSizes"], job["budgetSeconds"]) == ([1, 2, 8], 30)
    assert (job["maxP99Latency"], job["maxBatch"]) == (0.01, 4)


async def test_register_with_profile_queues_a_job(api: Api) -> None:
    data = await api.data(
        "mutation($input: ModelInput!, $weight: Upload!) {"
        " registerModel(input: $input, weight: $weight, profile: true) { id } }",
        {"input": model_input()},
        {"weight": ("m.onnx", b"w")},
    )
    model_id = data["registerModel"]["id"]
    jobs = (await api.data(JOBS, {"modelId": model_id}))["profilingJobs"]["nodes"]
    assert [job["status"] for job in jobs] == ["QUEUED"]


async def test_bad_profiling_requests(api: Api) -> None:
    model = await api.register()
    unknown_model = {"modelId": "0123456789abcdef01234567"}
    assert await api.error_code(PROFILE, unknown_model) == "NOT_FOUND"
    assert await api.error_code(PROFILE, {"modelId": "nope"}) == "BAD_USER_INPUT"
    for sizes in ([0], [], [-4], [1, 100000]):
        bad_batch = {"modelId": model["id"], "batchSizes": sizes}
        assert await api.error_code(PROFILE, bad_batch) == "BAD_USER_INPUT"
    # Budgets of nothing or of years, latencies of nothing or in milliseconds taken for
    # seconds, batches of none or too many; sizes all above the largest batch asked for.
    for limits in (
        {"budget": 0},
        {"budget": -5},
        {"budget": 1e9},
        {"p99": 0},
        {"p99": 10000},
        {"maxBatch": 0},
        {"maxBatch": 100000},
        {"batchSizes": [8, 16], "maxBatch": 4},
    ):
        body = await api.post(PROFILE, {"modelId": model["id"], **limits})
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", limits
    body = await api.post(PROFILE, {"modelId": model["id"], "devices": ["tpu:3"]})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "tpu:3" in body["errors"][0]["message"]
    assert (await api.data(JOBS, {"modelId": model["id"]}))["profilingJobs"]["nodes"] == []
    assert await api.error_code(JOB, {"id": "0123456789abcdef01234567"}) == "NOT_FOUND"


async def test_worker_claims_reports_and_finishes(api: Api) -> None:
    model = await api.register()
    queued = (await api.data(PROFILE, {"modelId": model["id"], "batchSizes": [1, 4]}))[
        "profileModel"
    ]

    job = await claim(api, "worker-a", [cpu()])
    assert job is not None and job["id"] == queued["id"]
    assert job["status"] == "RUNNING" and job["worker"] == "worker-a" and job["attempts"] == 1
    assert await claim(api, "worker-b", [cpu("other-host")]) is None  # held under a lease

    devices = (await api.data(DEVICES))["devices"]
    assert [(d["host"], d["deviceId"], d["worker"]) for d in devices] == [
        ("gpu-host-1", "cpu", "worker-a"),
        ("other-host", "cpu", "worker-b"),
    ]

    beat = {"id": job["id"], "worker": "worker-a", "progress": 0.5, "message": "batch 1 done"}
    job = (await api.data(HEARTBEAT, beat))["heartbeatProfilingJob"]
    assert job["progress"] == 0.5
    assert job["log"][-1]["message"] == "batch 1 done"
    # Only the holder may report.
    assert await api.error_code(HEARTBEAT, {**beat, "worker": "worker-b"}) == "CONFLICT"
    assert await api.error_code(HEARTBEAT, {**beat, "progress": 2}) == "BAD_USER_INPUT"

    job = (await api.data(FINISH, {"id": job["id"], "worker": "worker-a"}))["finishProfilingJob"]
    assert job["status"] == "SUCCEEDED" and job["progress"] == 1
    assert await api.error_code(CANCEL, {"id": job["id"]}) == "CONFLICT"


async def test_jobs_asking_for_a_gpu_wait_for_a_worker_with_one(api: Api) -> None:
    model = await api.register()
    await claim(api, "gpu-worker", [cpu(), gpu()])  # the GPU is now known
    await claim(api, "gpu-worker", [cpu(), gpu()])
    job = (await api.data(PROFILE, {"modelId": model["id"], "devices": ["cuda:0"]}))["profileModel"]
    assert job["devices"] == ["cuda:0"]
    assert await claim(api, "cpu-only", [cpu("laptop")]) is None
    claimed = await claim(api, "gpu-worker", [cpu(), gpu()])
    assert claimed is not None and claimed["id"] == job["id"]


async def test_failed_attempts_are_retried_then_the_job_fails(api: Api) -> None:
    model = await api.register()
    job = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    for attempt in (1, 2, 3):
        claimed = await claim(api, f"worker-{attempt}", [cpu()])
        assert claimed is not None and claimed["attempts"] == attempt
        finish = {"id": job["id"], "worker": f"worker-{attempt}", "error": "model did not load"}
        job = (await api.data(FINISH, finish))["finishProfilingJob"]
    assert job["status"] == "FAILED"
    assert job["error"] == "model did not load"
    assert await claim(api, "worker-4", [cpu()]) is None


async def test_cancelling_tells_the_worker_to_stop(api: Api) -> None:
    model = await api.register()
    queued = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    cancelled = (await api.data(CANCEL, {"id": queued["id"]}))["cancelProfilingJob"]
    assert cancelled["status"] == "CANCELLED"
    assert await claim(api, "worker-a", [cpu()]) is None

    running = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    assert (await claim(api, "worker-a", [cpu()]))["id"] == running["id"]  # type: ignore[index]
    await api.data(CANCEL, {"id": running["id"]})
    beat = {"id": running["id"], "worker": "worker-a", "progress": 0.3}
    assert (await api.data(HEARTBEAT, beat))["heartbeatProfilingJob"]["status"] == "CANCELLED"


async def test_deleting_a_model_drops_its_pending_jobs(api: Api) -> None:
    model = await api.register()
    running = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    await claim(api, "worker-a", [cpu()])
    queued = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]

    await api.data("mutation($id: ID!) { deleteModel(id: $id) { id } }", {"id": model["id"]})
    assert await api.error_code(JOB, {"id": queued["id"]}) == "NOT_FOUND"
    assert (await api.data(JOB, {"id": running["id"]}))["profilingJob"]["status"] == "CANCELLED"


def test_the_cage_sweep_and_the_hub_share_one_default_budget() -> None:
    assert sweep.DEFAULT_BUDGET_S == DEFAULT_PROFILE_BUDGET_S


async def test_a_worker_claims_in_lanes(api: Api, onnx_model: Path) -> None:
    """A conversion queued after a profile is claimed by the lane that takes conversions,
    while the profile waits for the lane that takes profiles."""
    plain = await api.register()
    profile = (await api.data(PROFILE, {"modelId": plain["id"]}))["profileModel"]
    # An ONNX model queues its conversion (to TensorRT) when registered.
    onnx = await api.register(
        weight=onnx_model.read_bytes(),
        filename="m.onnx",
        architecture="LaneNet",
        framework="ONNX",
        engine="ONNX",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],
    )
    (conversion,) = (await api.data(JOBS, {"modelId": onnx["id"]}))["profilingJobs"]["nodes"]

    light = await claim(api, "worker-a", [cpu()], ["CONVERT"])
    assert light is not None and (light["id"], light["kind"]) == (conversion["id"], "CONVERT")
    assert await claim(api, "worker-a", [cpu()], ["CONVERT"]) is None
    device = await claim(api, "worker-a", [cpu()], ["PROFILE"])
    assert device is not None and (device["id"], device["kind"]) == (profile["id"], "PROFILE")
    body = await api.post(CLAIM, {"worker": "worker-a", "devices": [cpu()], "kinds": []})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_sweep_outcome_is_recorded_only_by_the_jobs_worker(api: Api) -> None:
    model = await api.register()
    queued = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    job = await claim(api, "worker-a", [cpu()])
    assert job is not None and job["id"] == queued["id"]
    outcome = {
        "deviceId": "cpu",
        "batches": [1, 2, 4],
        "reasonCode": "SATURATED",
        "reason": "throughput at batch 4 gained +2.0% over batch 2",
    }
    recorded = (await api.data(SWEEP, {"id": job["id"], "worker": "worker-a", "sweep": outcome}))[
        "recordProfilingSweep"
    ]
    assert recorded["sweeps"] == [outcome]
    assert "cpu: sweep stopped (SATURATED)" in recorded["log"][-1]["message"]

    other = {"id": job["id"], "worker": "worker-b", "sweep": outcome}
    assert await api.error_code(SWEEP, other) == "CONFLICT"
    nameless = {"id": job["id"], "worker": "worker-a", "sweep": {**outcome, "deviceId": ""}}
    assert await api.error_code(SWEEP, nameless) == "BAD_USER_INPUT"
    await api.data(CANCEL, {"id": job["id"]})
    body = await api.post(SWEEP, {"id": job["id"], "worker": "worker-a", "sweep": outcome})
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "CONFLICT", "jobStatus": "CANCELLED"}
    assert (await api.data(JOB, {"id": job["id"]}))["profilingJob"]["sweeps"] == [outcome]
