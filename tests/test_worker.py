"""End to end: a live hub, real worker processes, the job followed over the subscription."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import (
    PREFLIGHT,
    REGISTER,
    model_input,
    modelci_env,
    modelci_serve,
    multipart,
    register_live,
)
from typer.testing import CliRunner
from websockets.sync.client import connect

from modelci.cage.tensors import InputSpec
from modelci.cli.main import app as cli
from modelci.core.domain import DEFAULT_PROFILE_BUDGET_S, DataType
from modelci.profiling.static import onnx_static_profile
from modelci.server.embedded import free_port

SUBSCRIBE = """
subscription Follow($id: ID!) {
  profilingJob(id: $id) { id status progress worker attempts error log { message } }
}"""

RESULTS = """
query Results($id: ID!) {
  model(id: $id) {
    profileResult {
      staticResult { parameters flops macs memory mread mwrite mrw uncountedOperators }
      dynamicResults {
        ip deviceId deviceName batch
        latency { inferenceLatency { avg p50 p95 p99 } initializationLatency { avg } }
        throughput { inferenceThroughput }
        memory { totalMemory memoryUsage utilization }
        measurement {
          runtime samples windows stable intraOpThreads iqrOverMedian sweepStop
          busyFraction contention p99Missing attempts
        }
      }
    }
  }
}"""

PROFILE = """
mutation($id: ID!, $sizes: [Int!], $budget: Float) {
  profileModel(modelId: $id, batchSizes: $sizes, budgetSeconds: $budget) { id }
}"""

SWEEPS = """
query($id: ID!) {
  profilingJob(id: $id) { status budgetSeconds sweeps { deviceId batches reasonCode reason } }
}"""


@contextmanager
def worker(hub: str, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelci.cli.main",
            "worker",
            "--server",
            hub,
            "--poll-seconds",
            "0.2",
            "--threads",
            "1",
            *options,
        ],
        env=modelci_env(),
        stdin=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:  # not one a test stopped already
            process.kill()
        process.wait()


QUICK = ("--window-seconds", "0.05", "--min-runs", "10")


def register(hub: str, weight: Path, profile: bool = False) -> str:
    return register_live(
        hub,
        weight.read_bytes(),
        f"convert: false, profile: {json.dumps(profile)}",
        architecture=f"Small-{uuid.uuid4().hex[:8]}",
        framework="ONNX",
        engine="ONNX",
        inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        outputs=[],  # filled in from the graph
    )


def queue_profiling(
    hub: str,
    model_id: str,
    sizes: list[int] | None = None,
    headers: dict[str, str] | None = None,
    budget: float | None = None,
) -> str:
    body = httpx.post(
        f"{hub}/graphql",
        headers=headers,
        json={"query": PROFILE, "variables": {"id": model_id, "sizes": sizes, "budget": budget}},
    )
    job_id: str = body.json()["data"]["profileModel"]["id"]
    return job_id


def jobs_of(hub: str, model_id: str) -> list[str]:
    query = "query($id: ID) { profilingJobs(modelId: $id) { nodes { id } } }"
    body = httpx.post(f"{hub}/graphql", json={"query": query, "variables": {"id": model_id}})
    return [node["id"] for node in body.json()["data"]["profilingJobs"]["nodes"]]


def follow(hub: str, job_id: str, token: str | None = None) -> Iterator[dict[str, Any]]:
    """Each state of the job over graphql-transport-ws, until the server completes."""
    url = hub.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=30) as socket:  # type: ignore[list-item]
        init = {"Authorization": token} if token else {}
        socket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(socket.recv(timeout=30))["type"] == "connection_ack"
        socket.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIBE, "variables": {"id": job_id}},
                }
            )
        )
        while True:
            message = json.loads(socket.recv(timeout=120))
            if message["type"] == "complete":
                return
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            yield message["payload"]["data"]["profilingJob"]


def test_register_profile_and_follow_to_the_end(hub: str, onnx_model: Path) -> None:
    model_id = register(hub, onnx_model, profile=True)
    (job_id,) = jobs_of(hub, model_id)
    with worker(hub, *QUICK, "--lease-seconds", "30"):
        states = list(follow(hub, job_id))
    statuses = [state["status"] for state in states]
    assert statuses[0] in ("QUEUED", "RUNNING") and statuses[-1] == "SUCCEEDED"
    progress = [state["progress"] for state in states]
    assert progress == sorted(progress) and progress[-1] == 1
    messages = [entry["message"] for entry in states[-1]["log"]]
    assert any(message.startswith("GPUs absent") for message in messages) or any(
        "cuda" in message for message in messages
    )

    body = httpx.post(f"{hub}/graphql", json={"query": RESULTS, "variables": {"id": model_id}})
    result = body.json()["data"]["model"]["profileResult"]
    # Static figures, against figures computed here from the same graph file.
    expected = onnx_static_profile(
        onnx.load(str(onnx_model)), [InputSpec("input", (-1, 3, 16, 16), DataType.TYPE_FP32)]
    )
    static = result["staticResult"]
    assert static["macs"] == expected.macs == 8 * 16 * 16 * 27 + 80
    assert static["flops"] == 2 * static["macs"]
    assert static["parameters"] == expected.parameters
    assert (static["mread"], static["mwrite"]) == (expected.mread, expected.mwrite)

    # An adaptive sweep: batch 1, 2, 4, … until it stopped paying (or another stop), which
    # the job records with its reason and the result where it stopped is marked with.
    job = gql(hub, SWEEPS, id=job_id)["profilingJob"]
    assert job["budgetSeconds"] == DEFAULT_PROFILE_BUDGET_S
    (sweep,) = [each for each in job["sweeps"] if each["deviceId"] == "cpu"]
    assert sweep["batches"] == [2**power for power in range(len(sweep["batches"]))]
    # BUSY: other work on this machine left the gain unfit to decide on.
    assert sweep["reasonCode"] in ("SATURATED", "MAX_BATCH", "BUDGET", "BUSY") and sweep["reason"]
    assert any(sweep["reason"] in message for message in messages)  # in the job's log too
    dynamic = result["dynamicResults"]
    cpu = [entry for entry in dynamic if entry["deviceId"] == "cpu"]
    assert [entry["batch"] for entry in cpu] == sweep["batches"]
    stops = [entry["measurement"]["sweepStop"] for entry in cpu]
    assert stops == [None] * (len(cpu) - 1) + [sweep["reasonCode"]]
    for entry in cpu:
        latency = entry["latency"]["inferenceLatency"]
        assert 0 < latency["p50"] <= latency["p95"]
        if latency["p99"] is not None:
            assert latency["p95"] <= latency["p99"]
        else:  # a missing p99 says why
            assert "a p99 needs 100" in entry["measurement"]["p99Missing"]
        assert entry["throughput"]["inferenceThroughput"] == pytest.approx(
            entry["batch"] / latency["avg"]
        )
        measurement = entry["measurement"]
        assert measurement["runtime"].startswith("onnxruntime")
        assert measurement["intraOpThreads"] == 1
        # How sure each figure is: stable or not, from how many windows and samples.
        assert isinstance(measurement["stable"], bool) and measurement["windows"] >= 1
        assert measurement["samples"] >= 1 and measurement["iqrOverMedian"] >= 0
        # How busy the machine was while it was measured, read from inside the cage.
        assert 0 <= measurement["busyFraction"] <= 1 and measurement["attempts"] in (1, 2)

    # The CLI shows it: each result's stability, and where and why the sweep stopped.
    shown = CliRunner().invoke(cli, ["show", model_id, "--server", hub])
    assert shown.exit_code == 0, shown.output
    assert f"{cpu[0]['measurement']['windows']} windows" in shown.output
    assert "IQR/median" in shown.output
    assert f"stopped: {sweep['reasonCode']}" in shown.output and "sweeps" in shown.output
    if not all(entry["measurement"]["stable"] for entry in cpu):
        assert "~ unstable" in shown.output


def gql(hub: str, query: str, **variables: Any) -> dict[str, Any]:
    body = httpx.post(f"{hub}/graphql", json={"query": query, "variables": variables}).json()
    assert not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def test_a_budget_ends_the_sweep_and_says_so(hub: str, onnx_model: Path) -> None:
    """32 batch sizes at windows of 0.3 s need far more than 8 s: the sweep stops at the
    budget, the job still succeeds, and the job and the last result say why."""
    model_id = register(hub, onnx_model)
    sizes = list(range(1, 33))
    with worker(hub, "--window-seconds", "0.3", "--min-runs", "5"):
        job_id = queue_profiling(hub, model_id, sizes, budget=8)
        final = list(follow(hub, job_id))[-1]
    assert final["status"] == "SUCCEEDED", final
    job = gql(hub, SWEEPS, id=job_id)["profilingJob"]
    assert job["budgetSeconds"] == 8
    (sweep,) = job["sweeps"]
    assert sweep["deviceId"] == "cpu" and sweep["reasonCode"] == "BUDGET", sweep
    # Some sizes measured (8 s pays for batch 1 at the least), in order with none skipped,
    # and not all of them.
    assert 1 <= len(sweep["batches"]) < len(sizes)
    assert sweep["batches"] == sizes[: len(sweep["batches"])]
    body = httpx.post(f"{hub}/graphql", json={"query": RESULTS, "variables": {"id": model_id}})
    dynamic = body.json()["data"]["model"]["profileResult"]["dynamicResults"]
    assert [entry["batch"] for entry in dynamic] == sweep["batches"]
    assert dynamic[-1]["measurement"]["sweepStop"] == "BUDGET"


def test_a_killed_workers_job_completes_on_another(hub: str, onnx_model: Path) -> None:
    model_id = register(hub, onnx_model)
    slow = ("--window-seconds", "0.5", "--min-runs", "10", "--lease-seconds", "1")
    with worker(hub, *slow) as first:
        job_id = queue_profiling(hub, model_id)
        states = follow(hub, job_id)
        for state in states:
            if state["status"] == "RUNNING":
                first.kill()  # as kill -9: no goodbye, the lease just runs out
                first.wait()
                first_worker = state["worker"]
                break
        with worker(hub, *QUICK, "--lease-seconds", "30"):
            final = list(states)[-1]
    assert final["status"] == "SUCCEEDED"
    assert final["attempts"] == 2
    assert final["worker"] != first_worker


def test_cancelling_a_running_job(hub: str, onnx_model: Path) -> None:
    model_id = register(hub, onnx_model)
    with worker(hub, "--window-seconds", "0.5", "--min-runs", "10"):
        job_id = queue_profiling(hub, model_id)
        states = follow(hub, job_id)
        for state in states:
            if state["status"] == "RUNNING":
                cancel = "mutation($id: ID!) { cancelProfilingJob(id: $id) { status } }"
                httpx.post(f"{hub}/graphql", json={"query": cancel, "variables": {"id": job_id}})
                break
        assert list(states)[-1]["status"] == "CANCELLED"

        # The worker let go of it and takes the next job.
        next_job = queue_profiling(hub, model_id, sizes=[1])
        assert list(follow(hub, next_job))[-1]["status"] == "SUCCEEDED"


def test_the_downloaded_model_computes_what_was_registered(hub: str, onnx_model: Path) -> None:
    model_id = register(hub, onnx_model)
    downloaded = httpx.get(f"{hub}/models/{model_id}/weight").content
    session = ort.InferenceSession(downloaded, providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    batch = torch.randn(3, 3, 16, 16).numpy()
    (ours,) = session.run(None, {"input": batch})
    (theirs,) = original.run(None, {"input": batch})
    assert (ours == theirs).all()


# With two web processes, the worker and its token come from the supervising process.
@pytest.mark.parametrize("processes", ["1", "2"])
def test_with_auth_on_the_serve_worker_uses_its_own_token(
    tmp_path: Path, onnx_model: Path, processes: str
) -> None:
    with modelci_serve(
        tmp_path,
        free_port(),
        auth="on",
        workers="1",
        processes=processes,
        profile_window_s="0.05",
        profile_min_runs="10",
    ) as (hub, _):
        created = CliRunner().invoke(
            cli,
            [
                "token",
                "create",
                "--name",
                "tester",
                "--scope",
                "write",
                "--data-dir",
                str(tmp_path),
            ],
        )
        assert created.exit_code == 0, created.output
        headers = {"authorization": f"Bearer {created.stdout.strip().splitlines()[0]}"}
        fields = model_input(
            framework="ONNX",
            engine="ONNX",
            outputs=[],
            inputs=[{"name": "input", "shape": [-1, 3, 16, 16]}],
        )
        query = REGISTER.replace("weight: $weight)", "weight: $weight, convert: false)")
        request = multipart(
            query, {"input": fields}, {"weight": ("m.onnx", onnx_model.read_bytes())}
        )
        model_id = httpx.post(f"{hub}/graphql", headers={**PREFLIGHT, **headers}, **request).json()[
            "data"
        ]["registerModel"]["id"]
        profile = queue_profiling(hub, model_id, sizes=[1], headers=headers)
        job = "query($id: ID!) { profilingJob(id: $id) { status worker } }"
        # No token: refused. The worker, with the token serve gave it, gets the job done.
        anonymous = httpx.post(f"{hub}/graphql", json={"query": job, "variables": {"id": profile}})
        assert anonymous.status_code == 401
        final = list(follow(hub, profile, token=headers["authorization"]))[-1]
        assert final["status"] == "SUCCEEDED"
