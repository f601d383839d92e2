"""Static and dynamic profiling on real small networks, on this machine's CPU."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import pytest
import torch
from networks import ResNet50, SmallConvNet

from modelci.profiling.devices import discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner, measure
from modelci.profiling.formats import UnsupportedModel, detect_format
from modelci.profiling.static import onnx_static_profile, torch_static_profile
from modelci.profiling.tensors import InputSpec
from modelci.schema.domain import DataType, WeightFormat

SMALL_INPUT = InputSpec("input", (-1, 3, 16, 16), DataType.TYPE_FP32)
QUICK = MeasurementSettings(window_s=0.05, min_runs=10, max_windows=6, threads=1)


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
