"""A ResNet-18 (built in code) on this CPU through each PyTorch serving target the hub makes.

From one ``torch.export`` program (dynamic batch) the hub's own converter
(``profiling.conversion.convert``: conversion and numerical verification) makes an
AOTInductor package, a TorchScript variant and an ONNX variant; its time per target is
printed. Then each variant is measured the way a profile measures it
(``profiling.dynamic.measure``: the runner a worker loads, its warm-up, windows and
figures) at each batch size, in ``--rounds`` rounds that alternate the three engines
(the order turns each round) so that all three see the same machine. Printed: a Markdown
table of the median over rounds of each engine's inference p50, and the ratios of
TorchScript and ONNX Runtime to AOTInductor (above 1: AOTInductor is faster).

    python benchmarks/pytorch_targets.py [--side 224] [--batches 1 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from networks import ResNet18

from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, Engine, WeightFormat
from modelci.profiling.conversion import NotProduced, convert
from modelci.profiling.devices import discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner, measure

TARGETS = {
    Engine.AOTINDUCTOR: WeightFormat.AOTI_PACKAGE,
    Engine.TORCHSCRIPT: WeightFormat.TORCHSCRIPT,
    Engine.ONNX: WeightFormat.ONNX,
}
NAMES = {
    Engine.AOTINDUCTOR: "AOTInductor",
    Engine.TORCHSCRIPT: "TorchScript",
    Engine.ONNX: "ONNX Runtime",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cpu = discover_devices()[0][0]
    settings = MeasurementSettings()
    spec = InputSpec("input", (-1, 3, args.side, args.side), DataType.TYPE_FP32)
    print(f"{cpu.name}, {os.cpu_count()} cores, {settings.threads} threads, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workdir = Path(folder)
        source = workdir / "resnet18.pt2"
        example = torch.randn(2, 3, args.side, args.side)
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(ResNet18().eval(), (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, source)
        variants: dict[Engine, Path] = {}
        for engine in TARGETS:
            started = time.perf_counter()
            (outcome,) = convert(source, WeightFormat.TORCH_EXPORT, [spec], [], [engine], workdir)
            if isinstance(outcome, NotProduced):
                raise SystemExit(f"{engine.value}: {outcome.reason}")
            seconds = time.perf_counter() - started
            size = outcome.path.stat().st_size / 2**20
            print(
                f"{NAMES[engine]}: converted and verified in {seconds:.1f} s, {size:.1f} MiB, "
                f"max relative difference {outcome.check.max_rel_diff:.1e}"
            )
            variants[engine] = outcome.path
        p50s: dict[tuple[Engine, int], list[float]] = {}
        order = list(TARGETS)
        for round_ in range(args.rounds):
            for engine in order if round_ % 2 == 0 else reversed(order):
                runner, load_s = load_runner(
                    variants[engine], TARGETS[engine], cpu, settings.threads
                )
                try:
                    for size in args.batches:
                        result = measure(runner, [spec], size, cpu, "127.0.0.1", load_s, settings)
                        p50 = result.latency.inference_latency.p50
                        p50s.setdefault((engine, size), []).append(p50)
                finally:
                    runner.close()
    print()
    print(
        "| batch | "
        + " | ".join(f"{NAMES[e]} p50 (ms)" for e in TARGETS)
        + " | TorchScript / AOTI | ORT / AOTI |"
    )
    print("|---|" + "---|" * (len(TARGETS) + 2))
    ratios = []
    for size in args.batches:
        medians = {engine: statistics.median(p50s[engine, size]) for engine in TARGETS}
        aoti = medians[Engine.AOTINDUCTOR]
        to_script = medians[Engine.TORCHSCRIPT] / aoti
        to_ort = medians[Engine.ONNX] / aoti
        ratios.append(f"batch {size}: TorchScript/AOTI {to_script:.2f}, ORT/AOTI {to_ort:.2f}")
        cells = " | ".join(f"{medians[engine] * 1000:.2f}" for engine in TARGETS)
        print(f"| {size} | {cells} | {to_script:.2f} | {to_ort:.2f} |")
    print()
    print("; ".join(ratios))


if __name__ == "__main__":
    main()
