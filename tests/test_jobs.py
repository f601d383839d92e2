"""Profiling jobs through the API: queueing, worker claims and leases, retries, cancellation."""

from __future__ import annotations

from typing import Any

from conftest import Api, model_input

JOB_FIELDS = "id modelId status batchSizes devices progress error worker attempts log { message }"

PROFILE = (
    """
mutation Profile($modelId: ID!, $batchSizes: [Int!], $devices: [String!]) {
  profileModel(modelId: $modelId, batchSizes: $batchSizes, devices: $devices) { %s }
}"""
    % JOB_FIELDS
)

CLAIM = (
    """
mutation Claim($worker: String!, $devices: [DeviceInput!]!) {
  claimProfilingJob(worker: $worker, devices: $devices) { %s }
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


async def claim(api: Api, worker: str, devices: list[dict[str, Any]]) -> dict[str, Any] | None:
    data = await api.data(CLAIM, {"worker": worker, "devices": devices})
    job: dict[str, Any] | None = data["claimProfilingJob"]
    return job


async def test_profile_model_queues_a_job(api: Api) -> None:
    model = await api.register()
    job = (await api.data(PROFILE, {"modelId": model["id"]}))["profileModel"]
    assert job["status"] == "QUEUED"
    assert job["modelId"] == model["id"]
    assert job["batchSizes"] == [1, 2, 4, 8, 16, 32]
    assert job["devices"] == [] and job["progress"] == 0 and job["attempts"] == 0

    listed = await api.data(JOBS, {"modelId": model["id"]})
    assert [node["id"] for node in listed["profilingJobs"]["nodes"]] == [job["id"]]
    assert (await api.data(JOBS, {"status": "RUNNING"}))["profilingJobs"]["nodes"] == []


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
