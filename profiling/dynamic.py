"""Dynamic profile: latency, throughput and memory per device and batch size.

Method (as Triton's perf_analyzer measures):
- Cold and warm apart: loading the model and the first inference at a batch size are
  timed on their own (initialization) and never enter the steady-state statistics;
  every (device, batch) is warmed up again.
- Warm-up: ``warmup_runs`` runs after the cold one, or fewer (not under two) once
  they have taken ``warmup_s`` (one past a deadline): a slow model is not warmed up
  for minutes.
- Timed runs in windows of at least ``window_s`` seconds and ``min_runs`` runs (a
  count floor, not a target: a 0.5 s inference makes a 2.5 s window, not a 25 s one);
  the estimate is stable when the last ``stable_windows`` windows agree within
  ``tolerance`` (max/min) on throughput and p50; after ``max_windows`` the result is
  published as unstable. Statistics come from the samples of those last windows.
- A time budget: told its ``deadline``, a measurement stops at the end of the window
  under way once the deadline has passed (after one window at least) and publishes
  what it has, unstable unless its last windows already agree.
- Percentiles by nearest rank on the sorted samples; p99 only from 100 samples up.
- Stages per run: batch formation (random host inputs), preprocess (that plus the
  host-to-device copy), inference (synchronised on GPUs), postprocess (device-to-host).
- Threads: ``intra_op_num_threads`` for onnxruntime and ``torch.set_num_threads`` are set
  explicitly and recorded.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

from modelci.schema.domain import (
    DynamicProfileResult,
    InfoTuple,
    Measurement,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    WeightFormat,
)

from .devices import GpuSampler, LocalDevice
from .tensors import InputSpec

P99_MIN_SAMPLES = 100


@dataclass(frozen=True)
class MeasurementSettings:
    window_s: float = 1.0
    min_runs: int = 5
    stable_windows: int = 3
    tolerance: float = 0.10
    max_windows: int = 10
    warmup_runs: int = 5
    warmup_s: float = 1.0
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


class Runner(Protocol):
    """One model loaded on one device."""

    runtime: str

    def prepare(self, host_inputs: list[np.ndarray]) -> Any:
        """Host inputs to the device (synchronised)."""
        ...

    def infer(self, device_inputs: Any) -> Any:
        """One inference, finished when this returns."""
        ...

    def fetch(self, device_outputs: Any) -> list[np.ndarray]:
        """Outputs back to the host."""
        ...

    def close(self) -> None: ...


class OutOfDeviceMemory(RuntimeError):
    pass


class MeasurementStopped(RuntimeError):
    """``should_stop`` said stop (the job was cancelled, the worker is stopping): the
    measurement is abandoned, never cut short into a result."""


OUT_OF_MEMORY_WORDS = (
    "out of memory",  # CUDA, cuDNN, cuBLAS
    "failed to allocate",  # onnxruntime
    "can't allocate memory",  # torch's CPU allocator
    "cannot allocate memory",  # ENOMEM as text
    "unable to allocate",  # numpy
    "bad_alloc",
)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return any(words in text for words in OUT_OF_MEMORY_WORDS)


# Runners


class OnnxRuntimeRunner:
    def __init__(self, path: Path, device: LocalDevice, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if device.kind == "CUDA":
            providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index})]
            self.ort_device, self.device_index = "cuda", device.index or 0
        else:
            providers = ["CPUExecutionProvider"]
            self.ort_device, self.device_index = "cpu", 0
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        if device.kind == "CUDA" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise RuntimeError("onnxruntime has no CUDA execution provider here")
        self.ort = ort
        self.input_names = [value.name for value in self.session.get_inputs()]
        self.output_names = [value.name for value in self.session.get_outputs()]
        self.runtime = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"

    def prepare(self, host_inputs: list[np.ndarray]) -> Any:
        binding = self.session.io_binding()
        for name, array in zip(self.input_names, host_inputs, strict=True):
            value = self.ort.OrtValue.ortvalue_from_numpy(array, self.ort_device, self.device_index)
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.ort_device, self.device_index)
        binding.synchronize_inputs()
        return binding

    def infer(self, device_inputs: Any) -> Any:
        self.session.run_with_iobinding(device_inputs)
        device_inputs.synchronize_outputs()
        return device_inputs

    def fetch(self, device_outputs: Any) -> list[np.ndarray]:
        return list(device_outputs.copy_outputs_to_cpu())

    def close(self) -> None:
        del self.session


class TorchRunner:
    def __init__(self, path: Path, model_format: WeightFormat, device: LocalDevice, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device("cuda", device.index or 0) if device.kind == "CUDA" else None
        if model_format is WeightFormat.TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location=self.device or "cpu")
        elif model_format is WeightFormat.TORCH_EXPORT:
            module = torch.export.load(str(path)).module()
            if self.device is not None:
                module = module.to(self.device)
        else:
            raise ValueError(f"no torch runner for {model_format.value}")
        # An exported program's module is already in inference form and refuses eval().
        self.module = module if model_format is WeightFormat.TORCH_EXPORT else module.eval()
        self.runtime = f"torch {torch.__version__} ({model_format.value})"

    def synchronize(self) -> None:
        if self.device is not None:
            self.torch.cuda.synchronize(self.device)

    def prepare(self, host_inputs: list[np.ndarray]) -> Any:
        tensors = [self.torch.from_numpy(array) for array in host_inputs]
        if self.device is not None:
            tensors = [tensor.to(self.device) for tensor in tensors]
            self.synchronize()
        return tensors

    def infer(self, device_inputs: Any) -> Any:
        with self.torch.inference_mode():
            outputs = self.module(*device_inputs)
        self.synchronize()
        return outputs

    def fetch(self, device_outputs: Any) -> list[np.ndarray]:
        from torch.utils._pytree import tree_leaves

        return [
            tensor.detach().cpu().numpy()
            for tensor in tree_leaves(device_outputs)
            if isinstance(tensor, self.torch.Tensor)
        ]

    def close(self) -> None:
        del self.module
        if self.device is not None:
            self.torch.cuda.empty_cache()


def load_runner(
    path: Path, model_format: WeightFormat, device: LocalDevice, threads: int
) -> tuple[Runner, float]:
    """The model loaded on the device, and how long loading took (seconds)."""
    started = time.perf_counter()
    runner: Runner
    if model_format is WeightFormat.ONNX:
        runner = OnnxRuntimeRunner(path, device, threads)
    else:
        runner = TorchRunner(path, model_format, device, threads)
    return runner, time.perf_counter() - started


# Statistics


def nearest_rank(sorted_samples: list[float], percentile: float) -> float:
    rank = max(1, math.ceil(percentile / 100 * len(sorted_samples)))
    return sorted_samples[rank - 1]


def distribution(samples: list[float]) -> InfoTuple:
    ordered = sorted(samples)
    return InfoTuple(
        avg=statistics.fmean(ordered),
        p50=nearest_rank(ordered, 50),
        p95=nearest_rank(ordered, 95),
        p99=nearest_rank(ordered, 99) if len(ordered) >= P99_MIN_SAMPLES else None,
    )


def single(sample: float) -> InfoTuple:
    return InfoTuple(avg=sample, p50=sample, p95=sample, p99=None)


def agree(values: list[float], tolerance: float) -> bool:
    return min(values) > 0 and max(values) / min(values) - 1 <= tolerance


@dataclass
class Window:
    formation: list[float] = field(default_factory=list)
    preprocess: list[float] = field(default_factory=list)
    inference: list[float] = field(default_factory=list)
    postprocess: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def throughput(self, batch: int) -> float:
        return batch * len(self.inference) / sum(self.inference)

    def p50(self) -> float:
        return nearest_rank(sorted(self.inference), 50)


# Measuring


@dataclass
class Measured:
    """One (device, batch) measured: the published result and how it was reached."""

    result: DynamicProfileResult
    windows: list[Window]
    cut_by_deadline: bool  # stopped at the deadline before it was stable or out of windows
    longest_run_s: float  # the slowest single run, cold one included

    @property
    def longest_window_s(self) -> float:
        return max(window.wall_s for window in self.windows)


def measure(
    runner: Runner,
    specs: list[InputSpec],
    batch: int,
    device: LocalDevice,
    ip: str,
    load_s: float,
    settings: MeasurementSettings,
    should_stop: Callable[[], bool] = lambda: False,
    deadline: float | None = None,
) -> DynamicProfileResult:
    """The published figures of one (device, batch); see ``measure_batch``."""
    return measure_batch(
        runner, specs, batch, device, ip, load_s, settings, should_stop, deadline
    ).result


def measure_batch(
    runner: Runner,
    specs: list[InputSpec],
    batch: int,
    device: LocalDevice,
    ip: str,
    load_s: float,
    settings: MeasurementSettings,
    should_stop: Callable[[], bool] = lambda: False,
    deadline: float | None = None,
) -> Measured:
    """Measure one (device, batch) by the stop rule of this module's docstring.

    ``deadline`` (``time.monotonic()`` seconds): past it, warm-up ends (after one run)
    and so does the window under way; the result is published from what there is."""
    if settings.max_windows < 1 or settings.min_runs < 1:
        raise ValueError("max_windows and min_runs must be at least 1")
    rng = np.random.default_rng(batch)
    longest_run_s = 0.0

    def past_deadline() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def run_once(window: Window | None) -> None:
        nonlocal longest_run_s
        started = time.perf_counter()
        host = [spec.random(batch, rng) for spec in specs]
        formed = time.perf_counter()
        device_inputs = runner.prepare(host)
        prepared = time.perf_counter()
        outputs = runner.infer(device_inputs)
        inferred = time.perf_counter()
        runner.fetch(outputs)
        fetched = time.perf_counter()
        longest_run_s = max(longest_run_s, fetched - started)
        if window is not None:
            window.formation.append(formed - started)
            window.preprocess.append(prepared - started)
            window.inference.append(inferred - prepared)
            window.postprocess.append(fetched - inferred)

    try:
        first_started = time.perf_counter()
        run_once(None)  # cold: the first inference at this batch size
        first_inference_s = time.perf_counter() - first_started
        warmup_started = time.perf_counter()
        warmed = 0
        while warmed < settings.warmup_runs:
            if should_stop():
                raise MeasurementStopped("stopped during warm-up")
            spent = time.perf_counter() - warmup_started
            if (warmed >= 2 and spent >= settings.warmup_s) or (warmed >= 1 and past_deadline()):
                break
            run_once(None)
            warmed += 1

        process = psutil.Process()
        sampler = GpuSampler(device) if device.kind == "CUDA" else None
        windows: list[Window] = []
        cpu_before = process.cpu_times()
        timed_started = time.perf_counter()
        peak_rss = process.memory_info().rss
        stable = cut = False
        if sampler is not None:
            sampler.start()
        try:
            while len(windows) < settings.max_windows:
                window = Window()
                window_started = time.perf_counter()
                while (
                    len(window.inference) < settings.min_runs
                    or time.perf_counter() - window_started < settings.window_s
                ):
                    if should_stop():
                        raise MeasurementStopped("stopped during a timed window")
                    run_once(window)
                window.wall_s = time.perf_counter() - window_started
                windows.append(window)
                peak_rss = max(peak_rss, process.memory_info().rss)
                recent = windows[-settings.stable_windows :]
                if len(recent) == settings.stable_windows and (
                    agree([w.throughput(batch) for w in recent], settings.tolerance)
                    and agree([w.p50() for w in recent], settings.tolerance)
                ):
                    stable = True
                    break
                if past_deadline() and len(windows) < settings.max_windows:
                    cut = True
                    break
        finally:
            gpu = sampler.stop() if sampler is not None else None
    except Exception as error:
        if is_out_of_memory(error):
            raise OutOfDeviceMemory(str(error) or type(error).__name__) from error
        raise

    timed_s = time.perf_counter() - timed_started
    cpu_after = process.cpu_times()
    used = windows[-settings.stable_windows :]

    def samples(stage: str) -> list[float]:
        return [sample for window in used for sample in getattr(window, stage)]

    inference = samples("inference")
    ordered = sorted(inference)
    quartile_1, quartile_3 = nearest_rank(ordered, 25), nearest_rank(ordered, 75)
    median = nearest_rank(ordered, 50)

    if gpu is not None:
        memory = ProfileMemory(
            total_memory=device.total_memory,
            memory_usage=gpu.peak_memory_used,
            utilization=gpu.mean_utilization,
        )
    else:
        busy_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        memory = ProfileMemory(
            total_memory=device.total_memory,
            memory_usage=peak_rss,
            utilization=min(1.0, busy_s / (timed_s * settings.threads)),
        )
    result = DynamicProfileResult(
        ip=ip,
        device_id=device.device_id,
        device_name=device.name,
        batch=batch,
        memory=memory,
        latency=ProfileLatency(
            initialization_latency=single(load_s + first_inference_s),
            preprocess_latency=distribution(samples("preprocess")),
            inference_latency=distribution(inference),
            postprocess_latency=distribution(samples("postprocess")),
        ),
        throughput=ProfileThroughput(
            batch_formation_throughput=batch / statistics.fmean(samples("formation")),
            preprocess_throughput=batch / statistics.fmean(samples("preprocess")),
            inference_throughput=batch / statistics.fmean(inference),
            postprocess_throughput=batch / statistics.fmean(samples("postprocess")),
        ),
        measurement=Measurement(
            runtime=runner.runtime,
            intra_op_threads=settings.threads,
            samples=len(inference),
            windows=len(windows),
            stable=stable,
            iqr_over_median=(quartile_3 - quartile_1) / median if median > 0 else 0.0,
        ),
    )
    return Measured(result, windows, cut, longest_run_s)
