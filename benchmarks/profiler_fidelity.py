"""Profiler fidelity: the profiler's inference p50 against independent bare loops.

Same model, batch size and thread count, measured in alternation in one run:
- ONNX: ``measure()`` (IOBinding, stability windows) vs a ``run_with_iobinding`` loop
  on inputs and outputs bound once (the same work, timed independently) and vs a
  plain ``session.run`` loop (which also binds inputs and allocates outputs each call);
- TorchScript: ``measure()`` vs ``torch.utils.benchmark.Timer.blocked_autorange``.
Prints each p50 in ms (median over rounds) and the ratio profiler / bare; goal ±5 %.

    python benchmarks/profiler_fidelity.py [--rounds 3] [--batch 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.utils import benchmark

from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, WeightFormat
from modelci.profiling.devices import discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner, measure


def network() -> nn.Module:
    """A few milliseconds per batch on one core: long enough to time, short enough to repeat."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    ).eval()


def bare_onnx_p50(path: Path, batch: int, threads: int, seconds: float, bound: bool) -> float:
    """`session.run` in a loop, or (``bound``) `run_with_iobinding` on inputs and outputs
    bound once: the work the profiler times as inference, timed independently."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(0).standard_normal((batch, 3, 32, 32), np.float32)}
    binding = session.io_binding()
    binding.bind_cpu_input("input", feed["input"])
    binding.bind_output(session.get_outputs()[0].name, "cpu")

    def once() -> None:
        if bound:
            session.run_with_iobinding(binding)
        else:
            session.run(None, feed)

    for _ in range(10):
        once()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 100:
        started = time.perf_counter()
        once()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bare_torch_p50(path: Path, batch: int, threads: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    module = torch.jit.load(str(path)).eval()
    data = torch.randn(batch, 3, 32, 32)
    timer = benchmark.Timer(
        stmt="with torch.inference_mode(): module(data)",
        globals={"module": module, "data": data, "torch": torch},
        num_threads=threads,
    )
    return float(timer.blocked_autorange(min_run_time=seconds).median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window-seconds", type=float, default=1.0)
    args = parser.parse_args()

    settings = MeasurementSettings(window_s=args.window_seconds, threads=args.threads)
    spec = InputSpec("input", (-1, 3, 32, 32), DataType.TYPE_FP32)
    cpu = discover_devices()[0][0]
    with tempfile.TemporaryDirectory() as folder:
        net, example = network(), torch.randn(2, 3, 32, 32)
        onnx_path, script_path = Path(folder) / "net.onnx", Path(folder) / "net.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (example,),
                str(onnx_path),
                dynamo=False,
                input_names=["input"],
                dynamic_axes={"input": {0: "batch"}},
            )
            torch.jit.trace(net, example).save(str(script_path))

        pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
        seconds = 3 * args.window_seconds
        for _ in range(args.rounds):
            for runtime, path, model_format in (
                ("onnxruntime", onnx_path, WeightFormat.ONNX),
                ("torch", script_path, WeightFormat.TORCHSCRIPT),
            ):
                runner, load_s = load_runner(path, model_format, cpu, args.threads)
                result = measure(runner, [spec], args.batch, cpu, "127.0.0.1", load_s, settings)
                runner.close()
                ours = result.latency.inference_latency.p50
                if runtime == "torch":
                    theirs = bare_torch_p50(path, args.batch, args.threads, seconds)
                    pairs["torch"].append((ours, theirs))
                    continue
                for name, bound in (("onnxruntime, bound", True), ("onnxruntime, run", False)):
                    theirs = bare_onnx_p50(path, args.batch, args.threads, seconds, bound)
                    pairs[name].append((ours, theirs))

    summary = []
    for name, values in pairs.items():
        ours = statistics.median(v[0] for v in values)
        theirs = statistics.median(v[1] for v in values)
        print(f"{name:>18}: profiler p50 {ours * 1e3:.3f} ms, bare loop p50 {theirs * 1e3:.3f} ms")
        summary.append(f"{name} profiler/bare {ours / theirs:.3f}")
    print(
        f"ratios (batch {args.batch}, {args.threads} thread(s), median of {args.rounds}): "
        + ", ".join(summary)
    )


if __name__ == "__main__":
    sys.exit(main())
