"""Profiler fidelity on one device: the profiler's inference p50 against
``torch.utils.benchmark`` (which synchronises CUDA around its blocks), same TorchScript
model, batch size and threads, measured in alternation, median over rounds.

    python deploy/gpu/gpu_fidelity.py [--device cuda:0] [--rounds 3] [--batch 1 --batch 32]

benchmarks/profiler_fidelity.py does this on the CPU (and for ONNX Runtime); this is its
counterpart for a GPU. The profiler synchronises after every run and times each one;
the bare loop synchronises once a block, so on a GPU the ratio also holds the cost of a
synchronisation per run. Prints a line per batch and the ratios on its last line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils import benchmark

from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, WeightFormat
from modelci.profiling.devices import discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner, measure

SIZE = 64  # 3×64×64 images: a few hundred microseconds a batch on a GPU


def network() -> nn.Module:
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


def bare_p50(path: Path, device: str, batch: int, threads: int, seconds: float) -> float:
    torch.set_num_threads(threads)
    model = torch.jit.load(str(path), map_location=device).eval()
    data = torch.randn(batch, 3, SIZE, SIZE, device=device)
    timer = benchmark.Timer(
        stmt="with torch.inference_mode(): model(data)",
        globals={"model": model, "data": data, "torch": torch},
        num_threads=threads,
    )
    return float(timer.blocked_autorange(min_run_time=seconds).median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window-seconds", type=float, default=0.5)
    args = parser.parse_args()
    batches = args.batch or [1, 32]

    found = {device.device_id: device for device in discover_devices()[0]}
    if args.device not in found:
        sys.exit(f"no device {args.device} here: {sorted(found)}")
    device = found[args.device]
    settings = MeasurementSettings(window_s=args.window_seconds, threads=args.threads)
    spec = InputSpec("input", (-1, 3, SIZE, SIZE), DataType.TYPE_FP32)
    torch_device = f"cuda:{device.index or 0}" if device.kind == "CUDA" else "cpu"
    name = torch.cuda.get_device_name(torch_device) if device.kind == "CUDA" else device.name
    print(f"{device.device_id} ({name}), torch {torch.__version__}, {args.threads} thread(s)")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.pt"
        torch.jit.trace(network(), torch.randn(2, 3, SIZE, SIZE)).save(str(path))
        for batch in batches:
            pairs = []
            for _ in range(args.rounds):
                runner, load_s = load_runner(path, WeightFormat.TORCHSCRIPT, device, args.threads)
                try:
                    result = measure(runner, [spec], batch, device, "127.0.0.1", load_s, settings)
                finally:
                    runner.close()
                ours = result.latency.inference_latency.p50
                bare = bare_p50(path, torch_device, batch, args.threads, 3 * args.window_seconds)
                pairs.append((ours, bare))
            ours = statistics.median(pair[0] for pair in pairs)
            bare = statistics.median(pair[1] for pair in pairs)
            ratios.append(ours / bare)
            print(
                f"batch {batch}: profiler p50 {ours * 1e3:.4f} ms, "
                f"torch.utils.benchmark {bare * 1e3:.4f} ms, ratio {ours / bare:.3f}"
            )
    print(
        f"{device.device_id} profiler/bare p50 ratios: "
        + ", ".join(f"batch {b} {r:.3f}" for b, r in zip(batches, ratios, strict=True))
    )


if __name__ == "__main__":
    main()
