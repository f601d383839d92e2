"""Dynamic profile: latency, throughput and memory per device and batch size.

Method (as Triton's perf_analyzer measures):
- Cold and warm apart: loading the model and the first inference at a batch size are
  timed on their own (initialization) and never enter the steady-state statistics;
  every (device, batch) is warmed up again.
- Warm-up: ``warmup_runs`` runs after the cold one, or fewer (not under two) once
  they have taken ``warmup_s`` (one past a deadline): a slow model is not warmed up
  for minutes.
- Timed runs in windows of at least ``window_s`` seconds and ``runs_per_window`` runs:
  ``min_runs``, or more where that many windows would hold fewer than the 100 samples a
  p99 needs (a slow model gets longer windows, not a result without a p99);
  the estimate is stable when the last ``stable_windows`` windows agree within
  ``tolerance`` (max/min) on throughput and p50; after ``max_windows`` the result is
  published as unstable. Statistics come from the samples of those last windows.
- A time budget: told its ``deadline``, a measurement stops at the end of the window
  under way once the deadline has passed and its windows hold the samples of a p99 (or,
  whatever it holds, past ``last_deadline``, after one window at least) and publishes
  what it has, unstable unless its last windows already agree; a p99 it could not pay
  for is null with the reason (``p99_missing``).
- Contention: around every window, the time the measuring CPUs spent (``/proc/stat``,
  host-wide even inside the cage) is compared with this process's own CPU time; the
  rest is other work (steal included). The result records that share
  (``busy_fraction``) and, where the others took more than the cores this measurement
  leaves free, says so (``contention``): figures a busy machine slowed are flagged, not
  passed off as the model's.
- Percentiles by nearest rank on the sorted samples; p99 only from 100 samples up.
- Stages per run: batch formation (random host inputs), preprocess (that plus the
  host-to-device copy), inference (synchronised on GPUs), postprocess (device-to-host).
- Threads: ``intra_op_num_threads`` for onnxruntime and ``torch.set_num_threads`` are set
  explicitly and recorded. Unless asked for, they are the cores free of other work
  (``free_cores``), chosen again for each device when its sweep starts.
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

from modelci.cage.tensors import InputSpec
from modelci.core.domain import (
    DynamicProfileResult,
    InfoTuple,
    Measurement,
    ProfileLatency,
    ProfileMemory,
    ProfileThroughput,
    WeightFormat,
)

from .devices import GpuReadings, GpuSampler, LocalDevice

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
    threads: int = field(default_factory=lambda: free_cores())

    @property
    def runs_per_window(self) -> int:
        """Enough runs a window that the windows the statistics come from hold a p99."""
        return max(self.min_runs, math.ceil(P99_MIN_SAMPLES / self.stable_windows))


class FreeCores(int):
    """A thread count taken from the cores free, not asked for: the worker chooses it
    again for each device when that device's sweep starts, as other work comes and goes."""


def free_cores(sample_s: float = 0.0) -> FreeCores:
    """The intra-op threads to use by default: the cores this process may run on, less
    those other work keeps busy, at least one (threads fighting other work for a core
    make latency swing from run to run). Busy: over ``sample_s`` seconds of /proc/stat
    where given (what is busy now), else the 1-minute load average, host-wide."""
    cores = len(os.sched_getaffinity(0))
    others: float | None = None
    if sample_s > 0:
        activity = Activity()
        time.sleep(sample_s)  # the span others' CPU time is read over
        seen = activity.others_since_mark()
        if seen is not None and seen[1] > 0:
            others = seen[0] / seen[1] * cores
    if others is None:
        try:
            load = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return FreeCores(cores)
        # The load is the whole host's: the share of it falling on our cores.
        others = load * cores / (os.cpu_count() or cores)
    return FreeCores(max(1, min(cores, cores - round(others))))


# Other work beyond the cores a measurement leaves free, in cores, that flags it as
# contended: below this, what others took is noise the windows already absorb.
CONTENDED_CORES = 0.25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(cpus: set[int]) -> tuple[int, int] | None:
    """(all ticks, busy ticks) of ``cpus`` from /proc/stat, or None where unreadable.
    Busy is everything but idle and iowait: steal counts, as it is time taken from us."""
    try:
        text = Path("/proc/stat").read_text()
    except OSError:
        return None
    total = busy = 0
    seen = False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user)
        values = [int(value) for value in rest.split()[:8]]
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
        seen = True
    return (total, busy) if seen else None


@dataclass
class Activity:
    """Other work on this process's CPUs from one moment to the next."""

    cpus: set[int] = field(default_factory=lambda: set(os.sched_getaffinity(0)))
    ticks: tuple[int, int] | None = None
    own_s: float = 0.0

    def __post_init__(self) -> None:
        self.process = psutil.Process()
        self.mark()

    def own(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def mark(self) -> None:
        self.ticks, self.own_s = cpu_ticks(self.cpus), self.own()

    def others_since_mark(self) -> tuple[float, float] | None:
        """(others' CPU seconds, all CPU seconds) on our CPUs since the last mark; marks
        again. None where /proc/stat cannot be read."""
        before, own_before = self.ticks, self.own_s
        self.mark()
        if before is None or self.ticks is None:
            return None
        total = (self.ticks[0] - before[0]) / CLOCK_TICKS
        busy = (self.ticks[1] - before[1]) / CLOCK_TICKS
        return max(0.0, busy - (self.own_s - own_before)), total


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
        elif model_format is WeightFormat.AOTI_PACKAGE:
            if self.device is not None:
                raise ValueError("this AOTInductor package was compiled for the CPU")
            from .conversion import load_aotinductor

            module = load_aotinductor(path)
        else:
            raise ValueError(f"no torch runner for {model_format.value}")
        # An exported program's module is already in inference form and refuses eval();
        # a compiled package has no modes.
        inference_form = (WeightFormat.TORCH_EXPORT, WeightFormat.AOTI_PACKAGE)
        self.module = module if model_format in inference_form else module.eval()
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
    others_s: float | None = None  # other work's CPU seconds on our CPUs meanwhile
    cpu_s: float | None = None  # all CPU seconds of our CPUs meanwhile

    def throughput(self, batch: int) -> float:
        return batch * len(self.inference) / sum(self.inference)

    def p50(self) -> float:
        return nearest_rank(sorted(self.inference), 50)


def contention_of(
    windows: list[Window], threads: int, cores: int
) -> tuple[float | None, str | None]:
    """The share of the CPUs' time others took over ``windows``, and the flag when it
    was more than the cores the measurement's ``threads`` leave free."""
    known = [w for w in windows if w.others_s is not None and w.cpu_s]
    cpu_s = sum(w.cpu_s or 0.0 for w in known)
    if not known or cpu_s <= 0:
        return None, None
    fraction = min(1.0, sum(w.others_s or 0.0 for w in known) / cpu_s)
    others_cores = fraction * cores
    free = max(0, cores - threads)
    if others_cores <= free + CONTENDED_CORES:
        return fraction, None
    return fraction, (
        f"the machine was busy: other processes kept {others_cores:.1f} of the {cores} "
        f"cores busy ({fraction:.0%} of their time) while this ran {threads} thread(s), "
        f"which leaves {free} free; the figures may be slower than on a quiet machine"
    )


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
    last_deadline: float | None = None,
) -> Measured:
    """Measure one (device, batch) by the stop rule of this module's docstring.

    ``deadline`` (``time.monotonic()`` seconds): past it, warm-up ends (after one run)
    and so does the window under way once the windows hold a p99's samples; past
    ``last_deadline`` (default: ``deadline``) it ends whatever they hold. The result is
    published from what there is."""
    if settings.max_windows < 1 or settings.min_runs < 1:
        raise ValueError("max_windows and min_runs must be at least 1")
    last_deadline = deadline if last_deadline is None else max(last_deadline, deadline or 0)
    deadlines = Deadlines(deadline, last_deadline)
    runs = Runs(runner, specs, batch)
    try:
        first_inference_s = warm_up(runs, settings, should_stop, deadlines)
        timed = timed_windows(runs, device, settings, should_stop, deadlines)
    except Exception as error:
        if is_out_of_memory(error):
            raise OutOfDeviceMemory(str(error) or type(error).__name__) from error
        raise
    result = figures(runs, device, ip, load_s + first_inference_s, timed, settings)
    return Measured(result, timed.windows, timed.cut, runs.longest_run_s)


@dataclass(frozen=True)
class Deadlines:
    """When a measurement wraps up (``time.monotonic()`` seconds; None: never): past
    ``deadline`` once its windows hold a p99's samples, past ``last_deadline`` whatever
    they hold."""

    deadline: float | None
    last_deadline: float | None

    def passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def last_passed(self) -> bool:
        return self.last_deadline is not None and time.monotonic() >= self.last_deadline


class Runs:
    """Runs of the model at one batch size, on fresh random inputs, each stage timed."""

    def __init__(self, runner: Runner, specs: list[InputSpec], batch: int) -> None:
        self.runner, self.specs, self.batch = runner, specs, batch
        self.rng = np.random.default_rng(batch)
        self.longest_run_s = 0.0

    def run_once(self, window: Window | None = None) -> None:
        """One run; its stages' times go into ``window`` where given."""
        started = time.perf_counter()
        host = [spec.random(self.batch, self.rng) for spec in self.specs]
        formed = time.perf_counter()
        device_inputs = self.runner.prepare(host)
        prepared = time.perf_counter()
        outputs = self.runner.infer(device_inputs)
        inferred = time.perf_counter()
        self.runner.fetch(outputs)
        fetched = time.perf_counter()
        self.longest_run_s = max(self.longest_run_s, fetched - started)
        if window is not None:
            window.formation.append(formed - started)
            window.preprocess.append(prepared - started)
            window.inference.append(inferred - prepared)
            window.postprocess.append(fetched - inferred)


def warm_up(
    runs: Runs,
    settings: MeasurementSettings,
    should_stop: Callable[[], bool],
    deadlines: Deadlines,
) -> float:
    """The cold run (the first inference at this batch size) and the warm-up runs after
    it, none of them timed into the statistics: ``warmup_runs``, or fewer (not under two)
    once they took ``warmup_s``, or (after one) once the deadline passed. The cold run's
    seconds."""
    first_started = time.perf_counter()
    runs.run_once()
    first_inference_s = time.perf_counter() - first_started
    warmup_started = time.perf_counter()
    warmed = 0
    while warmed < settings.warmup_runs:
        if should_stop():
            raise MeasurementStopped("stopped during warm-up")
        spent = time.perf_counter() - warmup_started
        if (warmed >= 2 and spent >= settings.warmup_s) or (warmed >= 1 and deadlines.passed()):
            break
        runs.run_once()
        warmed += 1
    return first_inference_s


@dataclass
class TimedWindows:
    """The timed windows of a measurement, and what the machine did meanwhile."""

    windows: list[Window]
    stable: bool  # the last ``stable_windows`` agreed
    cut: bool  # ended at a deadline with windows still allowed
    cpus: int  # the CPUs this process may run on
    timed_s: float  # wall seconds, all windows together
    busy_s: float  # this process's CPU seconds meanwhile
    peak_rss: int
    gpu: GpuReadings | None  # on a GPU: its memory and utilization meanwhile


def timed_windows(
    runs: Runs,
    device: LocalDevice,
    settings: MeasurementSettings,
    should_stop: Callable[[], bool],
    deadlines: Deadlines,
) -> TimedWindows:
    """Timed windows until the last ``stable_windows`` agree, ``max_windows`` were
    taken, or the deadlines end them."""
    process = psutil.Process()
    sampler = GpuSampler(device) if device.kind == "CUDA" else None
    windows: list[Window] = []
    activity = Activity()
    cpu_before = process.cpu_times()
    timed_started = time.perf_counter()
    peak_rss = process.memory_info().rss
    stable = cut = False
    if sampler is not None:
        sampler.start()
    try:
        while len(windows) < settings.max_windows:
            windows.append(timed_window(runs, settings, activity, should_stop))
            peak_rss = max(peak_rss, process.memory_info().rss)
            if windows_agree(windows, runs.batch, settings):
                stable = True
                break
            if deadline_ends(windows, settings, deadlines):
                cut = True
                break
    finally:
        gpu = sampler.stop() if sampler is not None else None
    timed_s = time.perf_counter() - timed_started
    cpu_after = process.cpu_times()
    busy_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return TimedWindows(windows, stable, cut, len(activity.cpus), timed_s, busy_s, peak_rss, gpu)


def timed_window(
    runs: Runs,
    settings: MeasurementSettings,
    activity: Activity,
    should_stop: Callable[[], bool],
) -> Window:
    """One window: at least ``runs_per_window`` runs and ``window_s`` seconds, with
    the CPU time other work took meanwhile."""
    window = Window()
    window_started = time.perf_counter()
    activity.mark()
    while (
        len(window.inference) < settings.runs_per_window
        or time.perf_counter() - window_started < settings.window_s
    ):
        if should_stop():
            raise MeasurementStopped("stopped during a timed window")
        runs.run_once(window)
    window.wall_s = time.perf_counter() - window_started
    others = activity.others_since_mark()
    if others is not None:
        window.others_s, window.cpu_s = others
    return window


def windows_agree(windows: list[Window], batch: int, settings: MeasurementSettings) -> bool:
    """The last ``stable_windows`` agree within ``tolerance`` on throughput and p50."""
    recent = windows[-settings.stable_windows :]
    return len(recent) == settings.stable_windows and (
        agree([w.throughput(batch) for w in recent], settings.tolerance)
        and agree([w.p50() for w in recent], settings.tolerance)
    )


def deadline_ends(
    windows: list[Window], settings: MeasurementSettings, deadlines: Deadlines
) -> bool:
    """The deadline ends the windows before ``max_windows``: past it once the last
    windows hold a p99's samples, past the last deadline whatever they hold."""
    recent = windows[-settings.stable_windows :]
    holds_p99 = sum(len(w.inference) for w in recent) >= P99_MIN_SAMPLES
    return ((deadlines.passed() and holds_p99) or deadlines.last_passed()) and len(
        windows
    ) < settings.max_windows


def figures(
    runs: Runs,
    device: LocalDevice,
    ip: str,
    initialization_s: float,
    timed: TimedWindows,
    settings: MeasurementSettings,
) -> DynamicProfileResult:
    """The published result: statistics from the samples of the last ``stable_windows``
    windows, with how they were measured."""
    batch = runs.batch
    used = timed.windows[-settings.stable_windows :]

    def samples(stage: str) -> list[float]:
        return [sample for window in used for sample in getattr(window, stage)]

    inference = samples("inference")
    ordered = sorted(inference)
    quartile_1, quartile_3 = nearest_rank(ordered, 25), nearest_rank(ordered, 75)
    median = nearest_rank(ordered, 50)
    busy_fraction, contention = contention_of(used, settings.threads, timed.cpus)
    p99_missing = None
    if len(inference) < P99_MIN_SAMPLES:
        why = (
            "this batch's share of the job's budget ran out first (a larger budget pays for it)"
            if timed.cut
            else f"the worker allows {settings.max_windows} window(s) of "
            f"{settings.runs_per_window} runs, fewer than that"
        )
        p99_missing = f"{len(inference)} timed runs: a p99 needs {P99_MIN_SAMPLES}; {why}"

    if timed.gpu is not None:
        memory = ProfileMemory(
            total_memory=device.total_memory,
            memory_usage=timed.gpu.peak_memory_used,
            utilization=timed.gpu.mean_utilization,
        )
    else:
        memory = ProfileMemory(
            total_memory=device.total_memory,
            memory_usage=timed.peak_rss,
            utilization=min(1.0, timed.busy_s / (timed.timed_s * settings.threads)),
        )
    return DynamicProfileResult(
        ip=ip,
        device_id=device.device_id,
        device_name=device.name,
        batch=batch,
        memory=memory,
        latency=ProfileLatency(
            initialization_latency=single(initialization_s),
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
            runtime=runs.runner.runtime,
            intra_op_threads=settings.threads,
            samples=len(inference),
            windows=len(timed.windows),
            stable=timed.stable,
            iqr_over_median=(quartile_3 - quartile_1) / median if median > 0 else 0.0,
            busy_fraction=busy_fraction,
            contention=contention,
            p99_missing=p99_missing,
        ),
    )
