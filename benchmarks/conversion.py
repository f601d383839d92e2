"""Conversion time for a ResNet-50-sized network, against a bare export of the same model.

Ours = ``profiling.conversion.convert`` (export + numerical verification at two batch
sizes); reference = a bare ``torch.onnx.export`` of the same source in the same run.

    python benchmarks/conversion.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, Engine, WeightFormat
from modelci.profiling.conversion import NotProduced, convert

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from networks import ResNet50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = [InputSpec("input", (-1, 3, 224, 224), DataType.TYPE_FP32)]
    example = torch.randn(2, 3, 224, 224)
    net = ResNet50().eval()
    timings: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workdir = Path(folder)
        scripted = workdir / "resnet50.pt"
        torch.jit.save(torch.jit.trace(net, example), str(scripted))
        exported = workdir / "resnet50.pt2"
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.export.save(
            torch.export.export(net, (example,), dynamic_shapes=({0: batch},)), exported
        )

        for _ in range(args.rounds):
            cases = (
                ("TorchScript -> ONNX", scripted, WeightFormat.TORCHSCRIPT, [Engine.ONNX]),
                (
                    "torch.export -> TorchScript + ONNX",
                    exported,
                    WeightFormat.TORCH_EXPORT,
                    [Engine.TORCHSCRIPT, Engine.ONNX],
                ),
            )
            for name, source, weight_format, targets in cases:
                started = time.perf_counter()
                outcomes = convert(source, weight_format, spec, ["output"], targets, workdir)
                timings.setdefault(name, []).append(time.perf_counter() - started)
                failed = [o for o in outcomes if isinstance(o, NotProduced)]
                assert not failed, failed

            started = time.perf_counter()
            torch.onnx.export(
                torch.jit.load(str(scripted)),
                (example,),
                str(workdir / "bare.onnx"),
                dynamo=False,
                input_names=["input"],
                dynamic_axes={"input": {0: "batch"}},
            )
            timings.setdefault("bare TorchScript export", []).append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name:>36}: {value:6.2f} s (median of {args.rounds})")
    ratio = medians["TorchScript -> ONNX"] / medians["bare TorchScript export"]
    print(f"ratio TorchScript -> ONNX with verification / bare export: {ratio:.2f}")


if __name__ == "__main__":
    main()
