"""Profiling on a busy machine: a real worker, the cage and a ResNet-18, profiled once
quiet and once while CPU-bound processes compete for the cores. The busy figures must
still have a p99, and be either close to the quiet ones or flagged as contended; the
sweep must never call noise saturation."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import register_live
from networks import ResNet18
from test_worker import follow, gql, worker
from typer.testing import CliRunner

from modelci.cli.main import app as cli
from modelci.profiling.dynamic import FreeCores, MeasurementSettings, free_cores

INPUT = [-1, 3, 64, 64]  # small images: a real ResNet-18, fast enough for the suite

PROFILE = """
mutation($id: ID!, $sizes: [Int!], $budget: Float, $maxBatch: Int) {
  profileModel(modelId: $id, batchSizes: $sizes, budgetSeconds: $budget, maxBatch: $maxBatch) {
    id
  }
}"""

RESULTS = """
query($id: ID!) {
  model(id: $id) {
    profileResult {
      dynamicResults {
        batch
        latency { inferenceLatency { p50 p99 } }
        throughput { inferenceThroughput }
        measurement {
          samples stable intraOpThreads sweepStop busyFraction contention p99Missing attempts
        }
      }
    }
  }
}"""

SWEEPS = """
query($id: ID!) {
  profilingJob(id: $id) { status error sweeps { deviceId batches reasonCode reason } }
}"""


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet18") / "resnet18.pt"
    traced = torch.jit.trace(ResNet18().eval(), torch.randn(1, *INPUT[1:]))
    traced.save(str(path))
    return path


def profile(hub: str, model_id: str, **variables: Any) -> tuple[dict[str, Any], list[Any]]:
    """The job run to its end, and the model's dynamic results by batch."""
    job_id = gql(hub, PROFILE, id=model_id, **variables)["profileModel"]["id"]
    states = list(follow(hub, job_id))
    assert states[-1]["status"] == "SUCCEEDED", states[-1]
    job = gql(hub, SWEEPS, id=job_id)["profilingJob"]
    results = gql(hub, RESULTS, id=model_id)["model"]["profileResult"]["dynamicResults"]
    return job, sorted(results, key=lambda result: result["batch"])


@contextmanager
def competitors(count: int) -> Iterator[None]:
    """``count`` processes that spin on a core each until the block ends. Each in a
    session of its own: the kernel shares the CPUs fairly between sessions (autogroups),
    so spinners sharing the test's session would take no more than the cage's one."""
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
        for process in spinning:
            process.wait()


def test_a_busy_machine_is_measured_truly_or_said_to_be_busy(hub: str, resnet18: Path) -> None:
    model_id = register_live(
        hub,
        resnet18.read_bytes(),
        "convert: false",
        architecture=f"ResNet18-{uuid.uuid4().hex[:8]}",
        framework="PyTorch",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": INPUT, "dtype": "TYPE_FP32"}],
        outputs=[{"name": "output", "shape": [-1, 1000], "dtype": "TYPE_FP32"}],
    )
    # One thread: the competitors below then want more of the cores than it leaves free.
    with worker(hub, "--window-seconds", "0.1", "--min-runs", "5"):
        _, quiet_results = profile(hub, model_id, sizes=[1], budget=20)
        (quiet,) = quiet_results
        # More spinners than cores: the cage's thread gets a core only part of the time.
        with competitors(len(os.sched_getaffinity(0)) + 1):
            job, results = profile(hub, model_id, budget=40, maxBatch=4)

    (sweep,) = job["sweeps"]
    busy = results[0]
    assert busy["batch"] == 1
    measurement = busy["measurement"]
    # Enough samples for the figures shown: a p99 at batch 1 despite the competition.
    assert busy["latency"]["inferenceLatency"]["p99"] is not None, measurement
    assert measurement["samples"] >= 100 and measurement["p99Missing"] is None
    assert measurement["intraOpThreads"] == 1
    # How busy the machine was is recorded, read from inside the cage.
    assert measurement["busyFraction"] is not None and measurement["busyFraction"] > 0.3
    # Close to the quiet figure, or flagged as contended with the reason.
    ratio = busy["latency"]["inferenceLatency"]["p50"] / quiet["latency"]["inferenceLatency"]["p50"]
    contention = measurement["contention"]
    assert 0.75 <= ratio <= 1.25 or (contention and "busy" in contention), (ratio, measurement)
    # Never saturation read from figures that were unstable or contended.
    if sweep["reasonCode"] == "SATURATED":
        compared = [r["measurement"] for r in results if r["batch"] in sweep["batches"][-2:]]
        assert all(m["stable"] and m["contention"] is None for m in compared), (sweep, results)
    if sweep["reasonCode"] == "BUSY":
        assert sweep["reason"].startswith("the machine was too busy to measure"), sweep
        assert results[-1]["measurement"]["sweepStop"] == "BUSY"
    # The command line says how busy the machine was, and what contention did.
    shown = CliRunner().invoke(cli, ["show", model_id, "--server", hub])
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.output.split())
    assert "% busy" in said, said
    if contention:
        assert " ".join(contention.split())[:40] in said, said


def test_the_default_threads_leave_busy_cores_to_the_work_on_them() -> None:
    """Unless asked for, a worker's intra-op threads are the cores free of other work,
    counted again when a device's sweep starts: two spinning processes keep two cores."""
    assert isinstance(MeasurementSettings().threads, FreeCores)
    cores = len(os.sched_getaffinity(0))
    with competitors(2):
        chosen = free_cores(0.5)
    assert 1 <= chosen <= max(1, cores - 2)
