"""The default profile of a ResNet-18 (built in code, TorchScript) on this machine's CPU.

Part 1 goes the way a worker's profiling step goes: the model file through the cage
(``cage.run_caged`` → ``caged.run_profile`` → ``sweep.sweep``) with the worker's
default measurement settings (threads: the CPUs available, unless ``--threads``), no
batch sizes (the adaptive sweep) and the default time budget. Printed: the step's wall
time (cage start, model load and sweep), the batches covered, why the sweep stopped,
and each batch's figures with their stability.

Part 2, fidelity: the batch-1 inference p50 against
``torch.utils.benchmark.Timer.blocked_autorange`` on the same file, thread count and
input size, in the same run: the cage's batch-1 p50 against the Timer just before and
just after the profile (their mean), then ``--rounds`` rounds alternating the
profiler's own ``measure()`` (in this process, the worker's settings) with the Timer,
so that both see the same machine; the median ratio of the rounds. Goal: within ±5 %.

On a machine whose cores other work is using, every figure moves with that work (the
load average is printed): with 2 threads on 2 busy cores, a parallel region waits for
both threads to be scheduled, and latencies grow several-fold.

    python benchmarks/resnet_profile.py [--side 224] [--budget 120] [--threads N] [--quick]

``--quick`` (CI's smoke size): 64×64 images, a 20 s budget, batches up to 8, one round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from networks import ResNet18

from modelci.cage.runner import Limits, cage_kind, run_caged
from modelci.cage.tensors import InputSpec
from modelci.core.domain import DataType, WeightFormat
from modelci.profiling import steps
from modelci.profiling.devices import LocalDevice, discover_devices
from modelci.profiling.dynamic import MeasurementSettings, load_runner, measure
from modelci.profiling.sweep import DEFAULT_BUDGET_S


def bare_p50(path: Path, side: int, threads: int, seconds: float) -> float:
    """torch.utils.benchmark's median time of one batch-1 inference, in seconds."""
    torch.set_num_threads(threads)
    module = torch.jit.load(str(path)).eval()
    data = torch.randn(1, 3, side, side)
    with torch.inference_mode():
        for _ in range(5):  # TorchScript's profiling executor optimises on early runs
            module(data)
    timer = benchmark.Timer(
        stmt="with torch.inference_mode(): module(data)",
        globals={"module": module, "data": data, "torch": torch},
        num_threads=threads,
    )
    return float(timer.blocked_autorange(min_run_time=seconds).median)


def profiler_p50(
    path: Path, side: int, cpu: LocalDevice, settings: MeasurementSettings
) -> tuple[float, bool]:
    """The profiler's batch-1 inference p50 (``measure()``, in this process) and
    whether it was stable."""
    runner, load_s = load_runner(path, WeightFormat.TORCHSCRIPT, cpu, settings.threads)
    try:
        spec = InputSpec("input", (-1, 3, side, side), DataType.TYPE_FP32)
        result = measure(runner, [spec], 1, cpu, "127.0.0.1", load_s, settings)
    finally:
        runner.close()
    assert result.measurement is not None
    return result.latency.inference_latency.p50, result.measurement.stable


def profile_in_the_cage(
    path: Path,
    scratch: Path,
    side: int,
    cpu: LocalDevice,
    settings: MeasurementSettings,
    **plan: Any,
) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "step": "profile",
        "inputs": [{"name": "input", "shape": [-1, 3, side, side], "dtype": "TYPE_FP32"}],
        "batch_sizes": [],
        "ip": "127.0.0.1",
        "device": asdict(cpu),
        "measurement": asdict(settings),
        **{key: value for key, value in plan.items() if value is not None},
    }
    return list(run_caged(steps.__name__, request, path, scratch, Limits(), lambda: False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=224, help="image side (3×side×side)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="default: the worker's")
    parser.add_argument("--timer-seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke size, for CI")
    args = parser.parse_args()
    if args.quick:
        args.side, args.budget, args.max_batch = 64, 20.0, 8
        args.timer_seconds, args.rounds = 1.0, 1

    settings = MeasurementSettings()  # the worker's defaults
    if args.threads:
        settings = replace(settings, threads=args.threads)
    threads = settings.threads
    cpu = discover_devices()[0][0]
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        net = ResNet18().eval()
        parameters = sum(p.numel() for p in net.parameters())
        path = Path(folder) / "resnet18.pt"
        torch.jit.trace(net, torch.randn(1, 3, args.side, args.side)).save(str(path))
        scratch = Path(folder) / "scratch"
        scratch.mkdir()
        print(
            f"ResNet-18, {parameters:,} parameters, TorchScript, input 3×{args.side}×{args.side}; "
            f"{threads} thread(s) on {cpu.name} ({os.cpu_count()} CPUs); "
            f"budget {args.budget:.0f} s; cage: {cage_kind()}"
        )
        load_before = os.getloadavg()[0]
        before = bare_p50(path, args.side, threads, args.timer_seconds)
        started = time.monotonic()
        messages = profile_in_the_cage(
            path,
            scratch,
            args.side,
            cpu,
            settings,
            budget_s=args.budget,
            max_batch=args.max_batch,
        )
        wall_s = time.monotonic() - started
        after = bare_p50(path, args.side, threads, args.timer_seconds)
        load_after = os.getloadavg()[0]

        rounds: list[tuple[float, float, bool]] = []
        for _ in range(args.rounds):
            ours, stable = profiler_p50(path, args.side, cpu, settings)
            theirs = bare_p50(path, args.side, threads, args.timer_seconds)
            rounds.append((ours, theirs, stable))
        load_end = os.getloadavg()[0]

    errors = [message for message in messages if message["type"] == "error"]
    if errors:
        raise SystemExit(f"the profile failed: {errors}")
    results = [message["result"] for message in messages if message["type"] == "dynamic"]
    (end,) = [message for message in messages if message["type"] == "sweep_end"]
    print(
        f"1. profile step: {wall_s:.1f} s wall (cage start, model load, sweep; "
        f"{end['elapsed_s']} s from the step's start); load average {load_before:.1f} "
        f"before, {load_after:.1f} after"
    )
    print(f"   batches covered: {end['batches']}")
    print(f"   stopped: {end['reason_code']} ({end['reason']})")
    print(
        f"   {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'items/s':>9} {'stable':>6} "
        f"{'windows':>7} {'samples':>7} {'IQR/med':>7}"
    )
    for result in results:
        latency, measurement = result["latency"]["inference_latency"], result["measurement"]
        p99 = "-" if latency["p99"] is None else f"{latency['p99'] * 1e3:.2f}"
        print(
            f"   {result['batch']:>5} {latency['p50'] * 1e3:>9.2f} {p99:>9} "
            f"{result['throughput']['inference_throughput']:>9.1f} "
            f"{'yes' if measurement['stable'] else 'NO':>6} {measurement['windows']:>7} "
            f"{measurement['samples']:>7} {measurement['iqr_over_median']:>7.3f}"
        )
    batch_1 = [result for result in results if result["batch"] == 1]
    if batch_1:
        ours = batch_1[0]["latency"]["inference_latency"]["p50"]
        print(
            f"2. batch-1 p50: cage {ours * 1e3:.2f} ms; torch.utils.benchmark "
            f"{before * 1e3:.2f} ms before, {after * 1e3:.2f} ms after; "
            f"ratio {ours / ((before + after) / 2):.3f}"
        )
    for index, (ours, theirs, stable) in enumerate(rounds, start=1):
        print(
            f"   round {index}: measure() {ours * 1e3:.2f} ms "
            f"({'stable' if stable else 'UNSTABLE'}), torch.utils.benchmark "
            f"{theirs * 1e3:.2f} ms, ratio {ours / theirs:.3f}"
        )
    if rounds:
        ratio = statistics.median(ours / theirs for ours, theirs, _ in rounds)
        print(
            f"   median ratio profiler/benchmark over {len(rounds)} round(s): {ratio:.3f} "
            f"(goal 0.95-1.05); load average at the end {load_end:.1f}"
        )


if __name__ == "__main__":
    main()
