"""Static and dynamic profiling on real small networks, on this machine's CPU: the
measurement rule, the time budget and the adaptive batch sweep.

Timings on this machine are noisy (2 cores shared with other work): the tests assert
only the budget rule (a sweep ends within its budget plus one window) and what the
sweep decided from the figures it published, never how fast anything ran."""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from networks import ComputeBoundConvNet, MemoryHungryNet, ResNet50, SmallConvNet

from modelci.cage.formats import UnsupportedModel, detect_format
from modelci.cage.runner import GiB, Limits, run_caged
from modelci.cage.tensors import InputSpec
from modelci.core.domain import (
    DataType,
    DynamicProfileResult,
    InfoTuple,
    Measurement,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    WeightFormat,
)
from modelci.profiling import steps
from modelci.profiling.devices import LocalDevice, discover_devices
from modelci.profiling.dynamic import (
    MeasurementSettings,
    Runner,
    load_runner,
    measure,
    measure_batch,
)
from modelci.profiling.static import onnx_static_profile, torch_static_profile
from modelci.profiling.sweep import (
    DEFAULT_BUDGET_S,
    MIN_THROUGHPUT_GAIN,
    BatchRecord,
    StopReason,
    SweepOutcome,
    SweepStop,
    judge,
    ladder,
    plan_sweep,
    sweep,
)

SMALL_INPUT = InputSpec("input", (-1, 3, 16, 16), DataType.TYPE_FP32)
QUICK = MeasurementSettings(window_s=0.05, min_runs=10, max_windows=6, threads=1)
# Never stable (windows never agree within 0 %): runs until its windows or its time end.
NEVER_STABLE = MeasurementSettings(
    window_s=0.1, min_runs=5, max_windows=10, tolerance=0.0, threads=1
)
# Bookkeeping beyond the windows themselves (statistics, a result's model): small, but
# the machine is shared, so it gets a second.
BOOKKEEPING_S = 1.0


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return path


def save_torchscript(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    torch.jit.trace(module, example).save(str(path))
    return path


def save_torch_export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), path)
    return path


@pytest.fixture(scope="module")
def small_models(tmp_path_factory: pytest.TempPathFactory) -> dict[WeightFormat, Path]:
    folder = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    net = SmallConvNet().eval()
    example = torch.randn(2, 3, 16, 16)
    return {
        WeightFormat.ONNX: export_onnx(net, example, folder / "a"),
        WeightFormat.TORCHSCRIPT: save_torchscript(net, example, folder / "b"),
        WeightFormat.TORCH_EXPORT: save_torch_export(net, example, folder / "c"),
    }


def small_net_macs() -> int:
    conv = (8 * 16 * 16) * (3 * 3 * 3)  # each output element: a 3×3 kernel over 3 channels
    linear = 8 * 10
    return conv + linear


def test_formats_are_told_by_content(
    small_models: dict[WeightFormat, Path], tmp_path: Path
) -> None:
    for model_format, path in small_models.items():
        assert detect_format(path) is model_format
    pickled = tmp_path / "model.onnx"  # a misleading name changes nothing
    torch.save(SmallConvNet(), pickled)
    assert detect_format(pickled) is WeightFormat.TORCH_PICKLE
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not a model" * 10)
    with pytest.raises(UnsupportedModel):
        detect_format(garbage)


def test_static_profile_of_a_small_network(small_models: dict[WeightFormat, Path]) -> None:
    net = SmallConvNet()
    parameters = sum(p.numel() for p in net.parameters())
    # ONNX graph: export folds the batch norm into the convolution (its 8 scales and 8
    # shifts become part of the convolution's weight and bias).
    from_graph = onnx_static_profile(onnx.load(str(small_models[WeightFormat.ONNX])), [SMALL_INPUT])
    assert from_graph.macs == small_net_macs()
    assert from_graph.flops == 2 * small_net_macs()
    assert from_graph.parameters == parameters - 16
    assert "Relu" in from_graph.uncounted_operators
    input_bytes = 3 * 16 * 16 * 4
    assert from_graph.mread > input_bytes and from_graph.mwrite > 8 * 16 * 16 * 4
    assert from_graph.mrw == from_graph.mread + from_graph.mwrite
    assert from_graph.memory > parameters * 4

    scripted = torch.jit.load(str(small_models[WeightFormat.TORCHSCRIPT]))
    from_torch = torch_static_profile(scripted, [torch.randn(1, 3, 16, 16)])
    assert from_torch.parameters == parameters
    assert from_torch.macs == small_net_macs()
    assert "relu" in from_torch.uncounted_operators


def test_static_profile_of_resnet50_matches_published_figures(tmp_path: Path) -> None:
    """torchvision ResNet-50 v1.5: 25,557,032 parameters, 4.089 G MACs at 224×224."""
    net = ResNet50().eval()
    example = torch.randn(2, 3, 224, 224)
    spec = InputSpec("input", (-1, 3, 224, 224), DataType.TYPE_FP32)

    scripted = torch.jit.load(str(save_torchscript(net, example, tmp_path / "r50.pt")))
    from_torch = torch_static_profile(scripted, [torch.randn(1, 3, 224, 224)])
    assert from_torch.parameters == 25_557_032
    assert from_torch.macs == pytest.approx(4.089e9, rel=1e-3)

    graph = onnx.load(str(export_onnx(net, example, tmp_path / "r50.onnx")))
    from_graph = onnx_static_profile(graph, [spec])
    assert from_graph.macs == pytest.approx(4.089e9, rel=1e-3)
    assert from_graph.parameters == pytest.approx(25_557_032, rel=0.02)  # BN folded


@pytest.mark.parametrize("model_format", list(WeightFormat)[:3])
def test_dynamic_profile_on_the_cpu(
    small_models: dict[WeightFormat, Path], model_format: WeightFormat
) -> None:
    devices, gpu_note = discover_devices()
    cpu = devices[0]
    assert cpu.device_id == "cpu" and cpu.total_memory > 0
    if len(devices) == 1:  # no GPU here: said so, with the reason
        assert gpu_note is not None and gpu_note.startswith("GPUs absent")
    runner, load_s = load_runner(small_models[model_format], model_format, cpu, QUICK.threads)
    try:
        for batch in (1, 4):
            result = measure(runner, [SMALL_INPUT], batch, cpu, "127.0.0.1", load_s, QUICK)
            latency = result.latency.inference_latency
            assert 0 < latency.p50 <= latency.p95
            assert result.measurement is not None
            if result.measurement.samples >= 100:
                assert latency.p99 is not None and latency.p95 <= latency.p99
            else:
                assert latency.p99 is None
            assert result.throughput.inference_throughput == pytest.approx(batch / latency.avg)
            assert result.latency.initialization_latency.avg >= load_s
            assert result.measurement.windows >= 3 and result.measurement.intra_op_threads == 1
            assert result.memory.memory_usage > 0 and result.memory.total_memory == cpu.total_memory
            assert (result.device_id, result.batch) == ("cpu", batch)
    finally:
        runner.close()


def assert_measured_truly(result: DynamicProfileResult, settings: MeasurementSettings) -> None:
    """The stability fields say how the figures were reached."""
    measurement = result.measurement
    assert measurement is not None
    assert 1 <= measurement.windows <= settings.max_windows
    used = min(measurement.windows, settings.stable_windows)
    assert measurement.samples >= settings.min_runs * used
    assert measurement.iqr_over_median >= 0
    if measurement.stable:
        assert measurement.windows >= settings.stable_windows
    latency = result.latency.inference_latency
    assert (latency.p99 is not None) == (measurement.samples >= 100)
    # A missing p99 says why; a measurement has no p99 only when its time ran out.
    assert (latency.p99 is None) == (measurement.p99_missing is not None)
    assert latency.p99 is not None or measurement.windows < settings.stable_windows
    assert measurement.busy_fraction is not None and 0 <= measurement.busy_fraction <= 1


def test_a_measurement_told_its_deadline_ends_with_its_window(
    small_models: dict[WeightFormat, Path],
) -> None:
    cpu = discover_devices()[0][0]
    path = small_models[WeightFormat.TORCHSCRIPT]
    runner, load_s = load_runner(path, WeightFormat.TORCHSCRIPT, cpu, 1)
    try:
        started = time.monotonic()
        deadline = started + 0.3
        measured = measure_batch(
            runner, [SMALL_INPUT], 2, cpu, "127.0.0.1", load_s, NEVER_STABLE, deadline=deadline
        )
        ended = time.monotonic()
    finally:
        runner.close()
    measurement = measured.result.measurement
    assert measurement is not None and not measurement.stable
    assert measured.cut_by_deadline and 1 <= measurement.windows < NEVER_STABLE.max_windows
    assert all(window.wall_s >= NEVER_STABLE.window_s for window in measured.windows)
    assert all(len(window.inference) >= NEVER_STABLE.min_runs for window in measured.windows)
    # Past the deadline it finished the window under way (and at most a warm-up run).
    overshoot = measured.longest_window_s + measured.longest_run_s + BOOKKEEPING_S
    assert ended <= deadline + overshoot
    assert_measured_truly(measured.result, NEVER_STABLE)


@pytest.fixture(scope="module")
def saturating_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """A conv net whose per-item work dominates at one thread: throughput stops growing
    within a few doublings of the batch."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("saturating") / "net.pt"
    save_torchscript(ComputeBoundConvNet().eval(), torch.randn(2, 3, 32, 32), path)
    runner, _ = load_runner(path, WeightFormat.TORCHSCRIPT, discover_devices()[0][0], 1)
    yield runner
    runner.close()


SATURATING_INPUT = InputSpec("input", (-1, 3, 32, 32), DataType.TYPE_FP32)


def run_sweep(
    runner: Runner, settings: MeasurementSettings, **plan: Any
) -> tuple[SweepOutcome, list[tuple[int, SweepStop | None]], float, float]:
    """The sweep's outcome, what it published (batch, stop), when it started and ended."""
    cpu: LocalDevice = discover_devices()[0][0]
    published: list[tuple[int, SweepStop | None]] = []
    started = time.monotonic()
    outcome = sweep(
        runner,
        [SATURATING_INPUT],
        cpu,
        "127.0.0.1",
        0.0,
        settings,
        plan_sweep([SATURATING_INPUT], **plan),
        started,
        lambda result, stop: published.append((result.batch, stop)),
    )
    return outcome, published, started, time.monotonic()


def test_the_sweep_ends_within_its_budget_plus_one_window(saturating_model: Runner) -> None:
    budget = 1.5
    outcome, published, started, ended = run_sweep(
        saturating_model, NEVER_STABLE, batch_sizes=[1, 2, 4, 8, 16, 32, 64], budget_s=budget
    )
    # Unbounded, seven batches of ten windows of at least 0.1 s would take over 7 s.
    assert outcome.stop.code is StopReason.BUDGET
    assert outcome.records and len(outcome.records) < 7
    longest_window = max(record.longest_window_s for record in outcome.records)
    longest_run = max(record.longest_run_s for record in outcome.records)
    assert ended - started <= budget + longest_window + longest_run + BOOKKEEPING_S
    for record in outcome.records:  # never stable: published as unstable, with its windows
        assert record.result.measurement is not None and not record.result.measurement.stable
        assert_measured_truly(record.result, NEVER_STABLE)
    assert (
        [batch for batch, _ in published]
        == outcome.batches
        == [1, 2, 4, 8, 16, 32, 64][: len(outcome.records)]
    )
    # Spent during the last batch measured, or the next would not fit: either way the
    # last result is published once, carrying the stop.
    assert outcome.stopped_at == outcome.batches[-1]
    assert published[-1][1] == outcome.stop


def test_the_adaptive_sweep_stops_where_throughput_saturates(saturating_model: Runner) -> None:
    outcome, published, _, _ = run_sweep(saturating_model, QUICK, budget_s=60, max_batch=64)
    if outcome.stop.code is StopReason.BUSY:  # others on this shared machine: said so
        assert outcome.stop.reason.startswith("the machine was too busy to measure")
        compared = [record.result.measurement for record in outcome.records[-2:]]
        assert any(m is not None and m.contention is not None for m in compared)
        return
    assert outcome.stop.code is StopReason.SATURATED, outcome.stop
    batches = outcome.batches
    assert batches == ladder(64)[: len(batches)] and 2 <= len(batches) < len(ladder(64))
    throughput = [r.result.throughput.inference_throughput for r in outcome.records]
    gains = [after / before - 1 for before, after in itertools.pairwise(throughput)]
    assert gains[-1] < MIN_THROUGHPUT_GAIN and all(g >= MIN_THROUGHPUT_GAIN for g in gains[:-1])
    assert f"batch {batches[-1]}" in outcome.stop.reason and "saturated" in outcome.stop.reason
    assert published == [(batch, None) for batch in batches[:-1]] + [(batches[-1], outcome.stop)]
    for record in outcome.records:
        assert_measured_truly(record.result, QUICK)


def test_explicit_batch_sizes_are_measured_as_asked(saturating_model: Runner) -> None:
    outcome, published, _, _ = run_sweep(saturating_model, QUICK, batch_sizes=[4, 1, 2, 1])
    assert outcome.stop.code is StopReason.LIST_DONE  # no early stop on saturation
    assert outcome.batches == [4, 1, 2] == [batch for batch, _ in published]
    assert published[-1][1] == outcome.stop and outcome.stopped_at == 2


def test_a_latency_limit_stops_the_sweep(saturating_model: Runner) -> None:
    outcome, _, _, _ = run_sweep(saturating_model, QUICK, max_p99_latency_s=1e-6)
    # BUSY: measured while others on this shared machine took the cores, which it says.
    assert outcome.stop.code in (StopReason.LATENCY_LIMIT, StopReason.BUSY)
    assert outcome.batches == [1]
    measurement = outcome.records[0].result.measurement
    assert measurement is not None
    which = "p99" if measurement.samples >= 100 else "p50 (too few samples for a p99)"
    assert f"latency {which}" in outcome.stop.reason


def test_plans() -> None:
    assert ladder(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert ladder(100) == [1, 2, 4, 8, 16, 32, 64, 100] and ladder(1) == [1]
    default = plan_sweep([SMALL_INPUT], [])
    assert default.adaptive and default.batches == tuple(ladder(256))
    assert default.budget_s == DEFAULT_BUDGET_S
    explicit = plan_sweep([SMALL_INPUT], [8, 2, 8], max_batch=4)
    assert not explicit.adaptive and explicit.batches == (2,)
    assert plan_sweep([SMALL_INPUT], [1, 4], adaptive=True).adaptive
    fixed = plan_sweep([InputSpec("x", (3, 4), DataType.TYPE_FP32)], None)
    assert fixed.batches == (3,) and fixed.notes
    with pytest.raises(ValueError):
        plan_sweep([SMALL_INPUT], [0])


def test_running_out_of_memory_ends_the_sweep_in_the_cage(tmp_path: Path) -> None:
    """Through the cage, as the worker runs it: a memory limit the model's batch of
    8192 (8 GiB of copies) cannot fit in; batch 1 is published, then the sweep ends
    with OUT_OF_MEMORY and the reason."""
    model = save_torchscript(MemoryHungryNet(), torch.randn(2, 1, 32, 32), tmp_path / "m.pt")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    request = {
        "step": "profile",
        "inputs": [{"name": "x", "shape": [-1, 1, 32, 32], "dtype": "TYPE_FP32"}],
        "batch_sizes": [1, 8192],
        # Ample: the estimate of batch 8192 (scaled from batch 1, a p99's runs) must fit.
        "budget_s": 600,
        "ip": "127.0.0.1",
        "device": {"device_id": "cpu", "name": "cpu", "kind": "CPU", "total_memory": 1},
        "measurement": {"window_s": 0.05, "min_runs": 5, "max_windows": 3, "threads": 1},
    }
    limits = Limits(wall_s=120, memory_bytes=2 * GiB)
    messages = list(run_caged(steps.__name__, request, model, scratch, limits, lambda: False))
    kinds = [message["type"] for message in messages]
    assert kinds == ["plan", "dynamic", "sweep_end"], messages
    plan, dynamic, end = messages
    assert plan["batches"] == [1, 8192] and not plan["adaptive"] and plan["budget_s"] == 600
    assert dynamic["batch"] == 1 and dynamic["sweep_stop"] is None
    assert dynamic["result"]["measurement"]["windows"] >= 1
    assert end["reason_code"] == "OUT_OF_MEMORY" and end["batch"] == 8192
    assert end["last_batch"] == 1 and end["batches"] == [1] and len(end["stable"]) == 1
    assert end["reason"].startswith("batch 8192 ran out of memory")
    assert end["elapsed_s"] > 0 and end["budget_s"] == 600


def measured_at(
    batch: int, throughput: float, stable: bool = True, busy: float = 0.0
) -> BatchRecord:
    """A batch's record with these figures; contended where others took half the CPUs."""
    run = InfoTuple(avg=batch / throughput, p50=batch / throughput, p95=2 * batch / throughput)
    contention = "the machine was busy: …" if busy >= 0.5 else None
    result = DynamicProfileResult(
        ip="127.0.0.1",
        device_id="cpu",
        device_name="cpu",
        batch=batch,
        memory=ProfileMemory(total_memory=1, memory_usage=1, utilization=0.5),
        latency=ProfileLatency(
            initialization_latency=run,
            preprocess_latency=run,
            inference_latency=run,
            postprocess_latency=run,
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=throughput,
            preprocess_throughput=throughput,
            inference_throughput=throughput,
            postprocess_throughput=throughput,
        ),
        measurement=Measurement(
            runtime="torch",
            intra_op_threads=1,
            samples=60,
            windows=10 if not stable else 3,
            stable=stable,
            iqr_over_median=1.83 if not stable else 0.05,
            busy_fraction=busy,
            contention=contention,
            p99_missing="60 timed runs: a p99 needs 100",
            attempts=2 if not stable or contention else 1,
        ),
    )
    return BatchRecord(batch, result, 1.0, 0.1, False, 5.0)


def test_noise_is_never_read_as_saturation() -> None:
    """A throughput that fell from batch 1 to 2 stops the climb as SATURATED only when
    both figures were stable on a quiet machine; contended, the machine was too busy to
    tell (BUSY, with the figures); unstable but quiet, nothing is decided."""
    plan = plan_sweep([SMALL_INPUT], None, max_batch=8)
    before, fell = 4.32, 2.3  # items/s: a 46.8 % fall
    busy = judge(
        plan, measured_at(2, fell, stable=False, busy=0.6), measured_at(1, before, busy=0.6), False
    )
    assert busy is not None and busy.code is StopReason.BUSY
    assert busy.reason.startswith("the machine was too busy to measure: throughput at batch 2")
    assert "-46.8 %" in busy.reason.replace("%", " %") and "60% of the CPUs" in busy.reason
    # Stable, but measured while others took the cores: still not saturation.
    contended = judge(plan, measured_at(2, fell, busy=0.6), measured_at(1, before), False)
    assert contended is not None and contended.code is StopReason.BUSY
    assert judge(plan, measured_at(2, fell, stable=False), measured_at(1, before), False) is None
    saturated = judge(plan, measured_at(2, fell), measured_at(1, before), False)
    assert saturated is not None and saturated.code is StopReason.SATURATED


def test_a_latency_limit_is_not_blamed_on_the_model_when_the_machine_was_busy() -> None:
    plan = plan_sweep([SMALL_INPUT], None, max_batch=8, max_p99_latency_s=0.1)
    slow = 1 / 0.5  # items/s: a 2 s p50 at batch 1
    busy = judge(plan, measured_at(1, slow, stable=False, busy=0.7), None, False)
    assert busy is not None and busy.code is StopReason.BUSY and "over the limit" in busy.reason
    quiet = judge(plan, measured_at(1, slow, stable=False), None, False)
    assert quiet is not None and quiet.code is StopReason.LATENCY_LIMIT
