"""Devices this machine can profile on: the CPU always, CUDA GPUs through NVML.

NVML (``import pynvml``, from the ``nvidia-ml-py`` package) identifies the GPUs and
samples their memory and utilisation. Without a driver ``nvmlInit`` fails; the
machine then has no GPUs, and the reason is said, never papered over.
"""

from __future__ import annotations

import platform
import socket
import statistics
import threading
from dataclasses import dataclass, field

import psutil

GPU_SAMPLE_INTERVAL_S = 1.0


@dataclass(frozen=True)
class LocalDevice:
    device_id: str  # "cpu", "cuda:0", …
    name: str
    kind: str  # "CPU" or "CUDA"
    total_memory: int
    index: int | None = None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def discover_devices() -> tuple[list[LocalDevice], str | None]:
    """Devices here, and a note when GPUs are absent (and why)."""
    cpu = LocalDevice("cpu", cpu_name(), "CPU", psutil.virtual_memory().total)
    gpus, note = cuda_devices()
    return [cpu, *gpus], note


def cuda_devices() -> tuple[list[LocalDevice], str | None]:
    try:
        import pynvml
    except ImportError:
        return [], "GPUs absent: nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return [], f"GPUs absent: NVML could not start ({error})"
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            devices.append(
                LocalDevice(
                    f"cuda:{index}",
                    name.decode() if isinstance(name, bytes) else str(name),
                    "CUDA",
                    total,
                    index,
                )
            )
    finally:
        pynvml.nvmlShutdown()
    if not devices:
        return [], "GPUs absent: NVML found no device"
    return devices, None


def local_ip(towards_host: str) -> str:
    """This machine's address on the route to ``towards_host`` (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((towards_host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


@dataclass
class GpuReadings:
    peak_memory_used: int
    mean_utilization: float


@dataclass
class GpuSampler:
    """Samples one GPU's memory (max) and utilisation (mean) about once a second."""

    device: LocalDevice
    memory_used: list[int] = field(default_factory=list)
    utilization: list[float] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(self.device.index or 0)
        self.sample()
        self.thread = threading.Thread(target=self.run, name="gpu-sampler", daemon=True)
        self.thread.start()

    def sample(self) -> None:
        import pynvml

        self.memory_used.append(int(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used))
        rates = pynvml.nvmlDeviceGetUtilizationRates(self.handle)
        self.utilization.append(float(rates.gpu) / 100)

    def run(self) -> None:
        while not self.stopping.wait(GPU_SAMPLE_INTERVAL_S):
            self.sample()

    def stop(self) -> GpuReadings:
        import pynvml

        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        self.sample()
        pynvml.nvmlShutdown()
        return GpuReadings(max(self.memory_used), statistics.fmean(self.utilization))
