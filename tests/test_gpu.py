"""On a CUDA GPU: torch profiled with synchronisation, NVML sampling, the devices read from
NVML, a job for `cuda:0` served end to end by a GPU worker, and the cage with the GPU bound.

Marked ``gpu`` and skipped, saying why, where torch sees no CUDA GPU (``pytest -m gpu``
runs only these; deploy/gpu/run.sh runs them on a GPU machine and writes a report).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from conftest import register_live
from networks import SmallConvNet
from test_cage import REPORTS, Payload, convert_request, reported
from test_worker import QUICK, RESULTS, SWEEPS, follow, gql, worker

from modelci.cage.runner import Limits, bubblewrap, bubblewrap_command, run_caged
from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, WeightFormat
from modelci.profiling import steps
from modelci.profiling.devices import GpuSampler, LocalDevice, discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner
from modelci.profiling.sweep import StopReason, plan_sweep, sweep


def cuda_absent() -> str | None:
    """Why these tests cannot run here, or None on a machine with a CUDA GPU."""
    if not torch.cuda.is_available():
        built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU build)"
        return f"no CUDA GPU here: torch {torch.__version__}, built for {built}, sees none"
    return None


ABSENT = cuda_absent()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(ABSENT is not None, reason=str(ABSENT))]

MiB = 1024**2
SHAPE = (-1, 3, 16, 16)
SPECS = [InputSpec("input", SHAPE, DataType.TYPE_FP32)]
QUICK_SETTINGS = MeasurementSettings(
    window_s=0.05, min_runs=10, max_windows=3, warmup_runs=2, warmup_s=0.1, threads=1
)


def first_gpu() -> LocalDevice:
    devices, note = discover_devices()
    assert note is None, note
    gpus = [device for device in devices if device.kind == "CUDA"]
    assert gpus, devices
    assert gpus[0].device_id == "cuda:0"
    return gpus[0]


def saved_network(folder: Path, model_format: WeightFormat) -> tuple[torch.nn.Module, Path]:
    """SmallConvNet (in eval mode, on the CPU) and the file it was saved to."""
    torch.manual_seed(0)
    net = SmallConvNet().eval()
    example = torch.randn(2, 3, 16, 16)
    if model_format is WeightFormat.TORCHSCRIPT:
        path = folder / "net.pt"
        torch.jit.trace(net, example).save(str(path))
    else:
        path = folder / "net.pt2"
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    return net, path


@pytest.mark.parametrize("model_format", [WeightFormat.TORCHSCRIPT, WeightFormat.TORCH_EXPORT])
def test_torch_on_cuda_is_profiled_with_synchronisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_format: WeightFormat
) -> None:
    device = first_gpu()
    net, path = saved_network(tmp_path, model_format)
    synchronised: list[Any] = []
    synchronize = torch.cuda.synchronize

    def counted(on: Any = None) -> None:
        synchronised.append(on)
        synchronize(on)

    monkeypatch.setattr(torch.cuda, "synchronize", counted)
    runner, load_s = load_runner(path, model_format, device, threads=1)
    results = []
    try:
        host = np.random.default_rng(0).standard_normal((4, 3, 16, 16), dtype=np.float32)
        inputs = runner.prepare([host])
        assert [tensor.device for tensor in inputs] == [torch.device("cuda", 0)]
        before = len(synchronised)
        outputs = runner.infer(inputs)
        # The inference returned once the GPU had done it: synchronised, nothing queued.
        assert synchronised[before:] == [torch.device("cuda", 0)]
        assert torch.cuda.current_stream(0).query()
        (fetched,) = runner.fetch(outputs)
        with torch.inference_mode():
            expected = net(torch.from_numpy(host)).numpy()
        np.testing.assert_allclose(fetched, expected, rtol=1e-3, atol=1e-4)

        # The real sweep on cuda:0 (as the cage runs it), two batch sizes asked for.
        synchronised.clear()
        outcome = sweep(
            runner,
            SPECS,
            device,
            "127.0.0.1",
            load_s,
            QUICK_SETTINGS,
            plan_sweep(SPECS, [1, 4], budget_s=120),
            on_result=lambda result, stop: results.append(result),
        )
    finally:
        runner.close()
    assert outcome.batches == [1, 4] and outcome.stop.code is StopReason.LIST_DONE, outcome.stop
    timed = 0
    for result in results:
        assert (result.device_id, result.device_name) == ("cuda:0", device.name)
        measurement = result.measurement
        assert measurement is not None and measurement.runtime.startswith("torch")
        assert measurement.samples >= 100  # a p99's worth
        latency = result.latency.inference_latency
        assert latency.p99 is not None and 0 < latency.p50 <= latency.p95 <= latency.p99
        # Memory and utilisation from NVML, not the host's RSS.
        assert result.memory.total_memory == device.total_memory
        assert 0 < result.memory.memory_usage <= device.total_memory
        assert 0 <= result.memory.utilization <= 1
        timed += measurement.samples
    # Every timed run synchronised twice: after the copy to the GPU and after inference.
    assert len(synchronised) >= 2 * timed
    assert set(synchronised) == {torch.device("cuda", 0)}


def test_nvml_samples_the_gpus_memory_and_utilisation() -> None:
    device = first_gpu()
    sampler = GpuSampler(device)
    sampler.start()
    try:
        held = torch.empty(256 * MiB // 4, dtype=torch.float32, device="cuda:0")
        matrix = torch.randn(4096, 4096, device="cuda:0")
        for _ in range(200):  # kernels back to back up to the reading below
            matrix = matrix @ matrix
            matrix = matrix / matrix.norm()
        torch.cuda.synchronize()
        sampler.sample()  # a reading while the block is held and the GPU just worked
    finally:
        readings = sampler.stop()
    assert len(sampler.memory_used) >= 3  # at the start, the one above, at the stop
    assert readings.peak_memory_used >= held.numel() * held.element_size()
    assert readings.peak_memory_used <= device.total_memory
    assert 0 <= readings.mean_utilization <= 1
    assert max(sampler.utilization) > 0, sampler.utilization


def test_the_devices_come_from_nvml() -> None:
    devices, note = discover_devices()
    assert note is None, note
    assert devices[0].device_id == "cpu"
    gpus = [device for device in devices if device.kind == "CUDA"]
    assert [gpu.device_id for gpu in gpus] == [f"cuda:{i}" for i in range(len(gpus))]
    assert [gpu.index for gpu in gpus] == list(range(len(gpus)))
    # NVML counts every GPU of the host; CUDA those CUDA_VISIBLE_DEVICES leaves it.
    assert len(gpus) >= torch.cuda.device_count() >= 1
    first = torch.cuda.get_device_properties(0)
    assert first.name in gpus[0].name or gpus[0].name in first.name
    # NVML's total is the card's; CUDA's leaves out what the driver keeps.
    assert first.total_memory <= gpus[0].total_memory <= first.total_memory * 1.1


def test_a_job_for_cuda0_is_served_by_a_gpu_worker(hub: str, tmp_path: Path) -> None:
    device = first_gpu()
    _, path = saved_network(tmp_path, WeightFormat.TORCHSCRIPT)
    model_id = register_live(
        hub,
        path.read_bytes(),
        "convert: false, profile: false",
        architecture=f"GpuNet-{uuid.uuid4().hex[:8]}",
        framework="PyTorch",
        engine="TORCHSCRIPT",
        inputs=[{"name": "input", "shape": list(SHAPE), "dtype": "TYPE_FP32"}],
        outputs=[{"name": "output", "shape": [-1, 10], "dtype": "TYPE_FP32"}],
    )
    queue = """
    mutation($id: ID!) {
      profileModel(modelId: $id, devices: ["cuda:0"], batchSizes: [1, 4], budgetSeconds: 120) {
        id devices
      }
    }"""
    job = gql(hub, queue, id=model_id)["profileModel"]
    assert job["devices"] == ["cuda:0"]
    with worker(hub, *QUICK):
        states = list(follow(hub, job["id"]))
    final = states[-1]
    assert final["status"] == "SUCCEEDED", final
    (device_sweep,) = gql(hub, SWEEPS, id=job["id"])["profilingJob"]["sweeps"]
    assert device_sweep["deviceId"] == "cuda:0", device_sweep
    assert device_sweep["batches"] == [1, 4] and device_sweep["reasonCode"] == "LIST_DONE"

    results = gql(hub, RESULTS, id=model_id)["model"]["profileResult"]["dynamicResults"]
    assert [(result["deviceId"], result["batch"]) for result in results] == [
        ("cuda:0", 1),
        ("cuda:0", 4),
    ]
    for result in results:
        assert result["deviceName"] == device.name
        assert result["memory"]["totalMemory"] == device.total_memory
        assert 0 < result["memory"]["memoryUsage"] <= device.total_memory
        assert result["measurement"]["runtime"].startswith("torch")
        assert result["latency"]["inferenceLatency"]["p50"] > 0

    # The hub's device registry holds the GPU as the worker read it from NVML.
    listed = gql(hub, "query { devices { deviceId name kind totalMemory worker } }")["devices"]
    assert {
        "deviceId": "cuda:0",
        "name": device.name,
        "kind": "CUDA",
        "totalMemory": device.total_memory,
    } in [{key: value for key, value in each.items() if key != "worker"} for each in listed]
    assert httpx.get(f"{hub}/readyz").status_code == 200


def test_the_cage_binds_the_gpus_device_files(tmp_path: Path) -> None:
    nodes = sorted(Path("/dev").glob("nvidia*"))
    assert nodes, "a CUDA GPU without /dev/nvidia* device files"
    model, scratch = tmp_path / "model", tmp_path / "scratch"

    def bound(cuda: bool) -> list[str]:
        command = bubblewrap_command("bwrap", model, scratch, cuda, None)
        return [command[at + 1] for at, word in enumerate(command) if word == "--dev-bind"]

    assert bound(cuda=True) == [str(node) for node in nodes]
    assert bound(cuda=False) == []


def test_a_caged_profile_runs_on_the_gpu(tmp_path: Path) -> None:
    """The step the worker runs for a CUDA device, in whichever cage this host has."""
    device = first_gpu()
    _, model = saved_network(tmp_path, WeightFormat.TORCHSCRIPT)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    request = {
        "step": "profile",
        "inputs": [{"name": "input", "shape": list(SHAPE), "dtype": "TYPE_FP32"}],
        "batch_sizes": [2],
        "budget_s": 120,
        "device": asdict(device),
        "ip": "127.0.0.1",
        "measurement": asdict(QUICK_SETTINGS),
    }
    limits = Limits(wall_s=300, memory_bytes=None)  # as the worker's for CUDA
    caged = run_caged(steps.__name__, request, model, scratch, limits, lambda: False, cuda=True)
    messages = list(caged)
    (dynamic,) = [message for message in messages if message["type"] == "dynamic"]
    assert dynamic["batch"] == 2 and dynamic["result"]["device_id"] == "cuda:0"
    assert dynamic["result"]["memory"]["total_memory"] == device.total_memory
    (end,) = [message for message in messages if message["type"] == "sweep_end"]
    assert end["reason_code"] == "LIST_DONE", end


@pytest.mark.skipif(
    bubblewrap() is None,
    reason="bubblewrap is not installed here: the weaker cage has the host's /dev, no binding",
)
def test_under_bubblewrap_a_step_sees_the_gpu_only_when_bound(tmp_path: Path) -> None:
    code = """
import os, torch
report("gpu", {"nodes": sorted(n for n in os.listdir("/dev") if n.startswith("nvidia")),
               "cuda": torch.cuda.is_available()})
"""
    seen = {}
    for cuda in (True, False):
        scratch = tmp_path / f"scratch-{cuda}"
        scratch.mkdir()
        model = tmp_path / f"model-{cuda}.pt"
        torch.save(Payload(REPORTS % {"scratch": "/job/scratch"} + code), model)
        limits = Limits(wall_s=120, memory_bytes=None)
        list(
            run_caged(
                steps.__name__, convert_request(), model, scratch, limits, lambda: False, cuda
            )
        )
        seen[cuda] = reported(scratch, "gpu")
    host = sorted(node.name for node in Path("/dev").glob("nvidia*"))
    assert seen[True] == {"nodes": host, "cuda": True}
    assert seen[False] == {"nodes": [], "cuda": False}
