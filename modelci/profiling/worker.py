"""The profiling worker: claims jobs from a hub over GraphQL and reports results back.

It claims in lanes, each a loop of its own with its own heartbeat (``LANES``): the device
lane takes PROFILE jobs, one at a time, since timings are worth something only with the
devices to themselves; the light lane takes the rest (conversions) beside it, so that a
long profile never holds a short job behind it.

It talks to the server only as a client would, through the typed operations generated
from ``modelci/operations/worker.graphql`` (``hub.api``): ``claimProfilingJob`` under a lease,
``heartbeatProfilingJob`` from a background thread while it works, with a cheap look
at the job's status every second in between (so a cancellation stops the work within
about a second), ``registerStaticProfilingResult`` and
``updateDynamicProfilingResult(forceInsert: true)`` for the figures, each tied to the
job (``jobId``, ``worker``) so that the hub refuses them once the job is no longer
this worker's, ``recordProfilingSweep`` for how each device's batch sweep ended (under
the job's time budget, shared across its devices: each device gets what is left divided
by the devices left), and ``finishProfilingJob`` at the end. A worker that dies stops
renewing its lease, and the job goes to the next worker that asks; one that is told to
stop (SIGTERM, SIGINT, the stop event) stops at the next check and hands its job back
with ``releaseProfilingJob``, so another worker takes it over at once.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse

import httpx

from modelci.cage.formats import UnsupportedModel
from modelci.cage.runner import (
    MESSAGE,
    AnyMessage,
    CageError,
    CageMessageRefused,
    CageStopped,
    DynamicMessage,
    ErrorMessage,
    Limits,
    LogMessage,
    Message,
    NotProducedMessage,
    PlanMessage,
    StaticMessage,
    SweepEndMessage,
    VariantMessage,
    cage_kind,
    cage_memory_bytes,
    run_caged,
)
from modelci.client import (
    ConversionCheckInput,
    DeviceInput,
    DynamicProfileResultInput,
    JobKind,
    ModelHub,
    StaticProfileResultInput,
    SweepOutcomeInput,
    Upload,
    as_input,
)
from modelci.core.domain import DEFAULT_PROFILE_BUDGET_S
from modelci.core.errors import BadUserInput, Conflict, HubError
from modelci.graphql_client import (
    ClaimProfilingJobClaimProfilingJob,
    DeviceKind,
    Engine,
    JobStatus,
    ModelToProcessModel,
    WeightFormat,
)
from modelci.transport import CountingReader

from . import steps
from .devices import LocalDevice, discover_devices, local_ip
from .dynamic import FreeCores, MeasurementSettings, free_cores
from .sweep import StopReason, share_of_budget

logger = logging.getLogger("modelci.worker")

# A job as claimProfilingJob hands it over, and the model as modelToProcess reads it.
ClaimedJob = ClaimProfilingJobClaimProfilingJob
ModelToProcess = ModelToProcessModel

CHUNK_SIZE = 1024 * 1024

# How often the worker looks at its job's status between heartbeats.
STATUS_POLL_S = 1.0

# How long the worker watches the machine before a device's sweep to count its free cores.
FREE_CORES_SAMPLE_S = 0.5

# The lanes a worker claims in, each its own loop: the kinds of job each takes.
LANES: dict[str, tuple[JobKind, ...]] = {
    "device": (JobKind.PROFILE,),  # the devices to itself: one job at a time
    "light": (JobKind.CONVERT,),  # beside it
}


class JobStopped(Exception):
    """Work on the job stops: it was cancelled, it is no longer this worker's (lease
    lost), or the worker itself is stopping."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refused_for_the_job(error: HubError) -> bool:
    """A result write the hub refused because the job is no longer this worker's."""
    return isinstance(error, Conflict) and "jobStatus" in error.extensions


class ConversionFailed(Exception):
    """Some targets could not be produced or verified; retrying would not help."""


class CagedStepFailed(Exception):
    """A step failed in the cage: it crashed, broke a limit, or raised."""


class CageOutputRefused(Exception):
    """The cage said something it may not: a malformed message, a file outside its
    scratch folder, an engine the job did not ask for. What runs in the cage is the
    uploaded model's code; another attempt would say it again."""


# What each step in the cage may say (``Worker.caged``); a step not named here is checked
# by whoever runs it.
STEP_MESSAGES: dict[str, tuple[type[Message], ...]] = {
    "static": (LogMessage, ErrorMessage, StaticMessage),
    "convert": (LogMessage, ErrorMessage, VariantMessage, NotProducedMessage),
    "profile": (LogMessage, ErrorMessage, PlanMessage, DynamicMessage, SweepEndMessage),
}

# Errors that another attempt would meet again.
PERMANENT_ERRORS = (UnsupportedModel, ConversionFailed, CageOutputRefused)


@contextmanager
def opened_variant(scratch: Path, name: str, most_bytes: int) -> Iterator[Upload]:
    """The file a caged conversion named, as an upload read from the very descriptor
    checked (nothing can be swapped in between): a regular file directly in the step's
    scratch folder, reached through no link, of at most ``most_bytes``; anything else
    is CageOutputRefused. The name is the cage's word, and only that."""
    shown = repr(name[:100])
    if not name or name in (".", "..") or "/" in name or "\0" in name or Path(name).is_absolute():
        raise CageOutputRefused(
            f"the cage named {shown} as a variant file: not a file directly in its scratch folder"
        )
    folder = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        descriptor = os.open(name, flags, dir_fd=folder)
    except OSError as error:
        reason = "a symbolic link" if error.errno == errno.ELOOP else error.strerror
        raise CageOutputRefused(
            f"the cage named {shown} as a variant file, which cannot be read from its "
            f"scratch folder ({reason})"
        ) from None
    finally:
        os.close(folder)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            raise CageOutputRefused(
                f"the cage named {shown} as a variant file: not a regular file of its own"
            )
        if (
            status.st_dev != os.stat(scratch).st_dev
            or (scratch / name).resolve().parent != scratch.resolve()
        ):
            raise CageOutputRefused(f"the cage named {shown}: not in its scratch folder")
        if status.st_size > most_bytes:
            raise CageOutputRefused(
                f"the cage named {shown} as a variant file of {status.st_size} bytes, over "
                f"the {most_bytes} bytes a caged step may write"
            )
        file = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with file:
        yield Upload(name, CountingReader(file, status.st_size), "application/octet-stream")


class Heartbeat:
    """Renews a job's lease in the background and carries progress; notices cancellation
    (a status look every STATUS_POLL_S) and the worker's own stop."""

    def __init__(
        self,
        hub: ModelHub,
        job_id: str,
        worker: str,
        lease_s: float,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.hub, self.job_id, self.worker, self.lease_s = hub, job_id, worker, lease_s
        self.shutdown = shutdown or threading.Event()
        self.progress = 0.0
        self.messages: list[str] = []
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="heartbeat", daemon=True)

    def report(self, progress: float, message: str | None = None) -> None:
        with self.lock:
            self.progress = progress
            if message:
                self.messages.append(message)
                logger.info("job %s: %s", self.job_id, message)
        self.beat()

    def beat(self) -> None:
        with self.lock:
            message = "; ".join(self.messages) or None
            self.messages.clear()
            progress = self.progress
        try:
            job = self.hub.api.heartbeat_profiling_job(
                id=self.job_id,
                worker=self.worker,
                progress=progress,
                message=message,
                lease_seconds=self.lease_s,
            ).heartbeat_profiling_job
        except HubError as error:
            if isinstance(error, Conflict):
                self.lost.set()
            logger.warning("heartbeat for job %s refused: %s", self.job_id, error)
            return
        except httpx.HTTPError as error:
            logger.warning("heartbeat for job %s failed: %s", self.job_id, error)
            return
        if job.status is JobStatus.CANCELLED:
            self.cancelled.set()

    def look(self) -> None:
        """The job's status now: cancelled, or no longer this worker's."""
        try:
            job = self.hub.api.get_job_status(self.job_id).profiling_job
        except (HubError, httpx.HTTPError) as error:
            logger.warning("status of job %s unknown: %s", self.job_id, error)
            return
        if job.status is JobStatus.CANCELLED:
            self.cancelled.set()
        elif job.status is not JobStatus.RUNNING or job.worker != self.worker:
            self.lost.set()

    def run(self) -> None:
        beat_every = self.lease_s / 3
        last_beat = time.monotonic()
        while not self.stopping.wait(min(STATUS_POLL_S, beat_every)):
            if self.cancelled.is_set() or self.lost.is_set():
                continue  # the work stops at its next check; nothing more to learn
            if time.monotonic() - last_beat >= beat_every:
                last_beat = time.monotonic()
                self.beat()
            else:
                self.look()

    def reason(self) -> str | None:
        if self.cancelled.is_set():
            return "cancelled"
        if self.lost.is_set():
            return "lost"
        if self.shutdown.is_set():
            return "stopping"
        return None

    def should_stop(self) -> bool:
        return self.reason() is not None

    def check(self) -> None:
        reason = self.reason()
        if reason is not None:
            raise JobStopped(reason)

    def refused(self, error: HubError) -> JobStopped:
        """A write the hub refused for the job: stop working on it."""
        logger.info("job %s: %s", self.job_id, error)
        self.look()
        return JobStopped(self.reason() or "refused")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


@dataclass
class Worker:
    hub: ModelHub
    measurement: MeasurementSettings = field(default_factory=MeasurementSettings)
    lease_s: float = 60.0
    poll_s: float = 2.0
    allow_pickle: bool = False
    # Each lane runs a cage at once: their memory together fits the host.
    limits: Limits = field(
        default_factory=lambda: Limits(memory_bytes=cage_memory_bytes(len(LANES)))
    )
    name: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    lanes: tuple[str, ...] = tuple(LANES)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.devices, self.gpu_note = discover_devices()
        self.host = socket.gethostname()
        self.ip = local_ip(urlparse(self.hub.url).hostname or "127.0.0.1")

    def device_inputs(self) -> list[DeviceInput]:
        return [
            DeviceInput(
                host=self.host,
                ip=self.ip,
                device_id=device.device_id,
                name=device.name,
                kind=DeviceKind(device.kind),
                total_memory=device.total_memory,
            )
            for device in self.devices
        ]

    def claim(self, kinds: tuple[JobKind, ...] = tuple(JobKind)) -> ClaimedJob | None:
        """The next job of ``kinds``, or None."""
        return self.hub.api.claim_profiling_job(
            worker=self.name,
            devices=self.device_inputs(),
            lease_seconds=self.lease_s,
            kinds=list(kinds),
        ).claim_profiling_job

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Claim and run jobs in each lane until ``stop`` is set; a job under way then stops
        at its next check and is handed back. The first lane runs in this thread (which
        gets the signals), the others in threads of their own."""
        if stop is not None:
            self.stop = stop
        unknown = sorted(set(self.lanes) - set(LANES))
        if unknown or not self.lanes:
            raise ValueError(f"lanes: {', '.join(LANES)}, not {', '.join(unknown) or 'none'}")
        logger.info(
            "worker %s serving %s on %s (lanes: %s)",
            self.name,
            self.hub.url,
            self.devices,
            ", ".join(self.lanes),
        )
        logger.info("uploaded models run in the cage: %s", cage_kind())
        first, *others = self.lanes
        threads = [
            threading.Thread(target=self.run_lane, args=(lane,), name=lane, daemon=True)
            for lane in others
        ]
        for thread in threads:
            thread.start()
        try:
            self.run_lane(first)  # until the stop event is set
        except KeyboardInterrupt:  # stopped at once: the other lanes' threads die with it
            self.stop.set()
            raise
        for thread in threads:
            thread.join()
        logger.info("worker %s stopped", self.name)

    def run_lane(self, lane: str) -> None:
        kinds = LANES[lane]
        while not self.stop.is_set():
            try:
                job = self.claim(kinds)
            except (httpx.HTTPError, HubError) as error:
                logger.warning("cannot reach the hub at %s: %s", self.hub.url, error)
                job = None
            if job is None:
                self.stop.wait(self.poll_s)
                continue
            self.run_job(job)

    def run_job(self, job: ClaimedJob) -> None:
        job_id = job.id
        with Heartbeat(self.hub, job_id, self.name, self.lease_s, self.stop) as heartbeat:
            try:
                if job.kind is JobKind.CONVERT:
                    summary = self.convert(job, heartbeat)
                else:
                    summary = self.profile(job, heartbeat)
            except JobStopped as stopped:
                if stopped.reason == "stopping":
                    self.release(job_id)
                else:
                    logger.info("job %s: stopped (%s)", job_id, stopped.reason)
                return
            except Exception as error:
                logger.exception("job %s failed", job_id)
                retryable = not isinstance(error, PERMANENT_ERRORS)
                self.finish(job_id, error=f"{type(error).__name__}: {error}", retryable=retryable)
                return
        self.finish(job_id, message=summary)

    def release(self, job_id: str) -> None:
        """Hand the job back: queued again at once for another worker."""
        try:
            self.hub.api.release_profiling_job(id=job_id, worker=self.name, reason="stopping")
        except httpx.TransportError:
            # Expected when the hub stops with its workers (a terminal's Ctrl+C reaches
            # both): a hub re-queues its own workers' jobs as it stops, so nothing is lost.
            logger.info(
                "job %s: the hub did not answer the hand-back; the hub that started this "
                "worker queues it again as it stops, any other when its lease runs out",
                job_id,
            )
            return
        except (HubError, httpx.HTTPError) as error:
            logger.warning("handing back job %s failed: %s", job_id, error)
            return
        logger.info("job %s: handed back", job_id)

    def finish(
        self,
        job_id: str,
        error: str | None = None,
        message: str | None = None,
        retryable: bool = True,
    ) -> None:
        try:
            self.hub.api.finish_profiling_job(
                id=job_id,
                worker=self.name,
                error=error,
                message=message,
                retryable=retryable,
            )
        except HubError as refused:
            logger.warning("finishing job %s refused: %s", job_id, refused)

    def fetch_model(self, model_id: str, workdir: Path) -> tuple[ModelToProcess, Path]:
        """The model's metadata and its weight file (never loaded here: see ``caged``)."""
        model = self.hub.api.model_to_process(model_id).model
        path = workdir / "weight"
        self.hub.download_weight(model.id, path)
        return model, path

    def caged(
        self,
        request: dict[str, Any],
        path: Path,
        scratch: Path,
        heartbeat: Heartbeat,
        limits: Limits,
        cuda: bool = False,
    ) -> Iterator[AnyMessage]:
        """One step of the job in the cage (``modelci.cage.runner``), writing into ``scratch``:
        its messages (each checked there), logs reported.

        The cage is killed, with its process group, the moment the job is cancelled or
        the worker stops; a cage that breaks a limit or dies fails the step, and one
        that says what it may not fails it for good."""
        step = request["step"]
        request = {**request, "allow_pickle": self.allow_pickle}
        try:
            for checked in run_caged(
                steps.__name__, request, path, scratch, limits, heartbeat.should_stop, cuda
            ):
                message = MESSAGE.validate_python(checked)
                if not isinstance(message, STEP_MESSAGES.get(step, (Message,))):
                    raise CageOutputRefused(
                        f"the {step} step sent a {message.type} message, which it may not"
                    )
                if isinstance(message, LogMessage):
                    heartbeat.report(heartbeat.progress, message.message)
                elif isinstance(message, ErrorMessage):
                    failure = UnsupportedModel if message.permanent else CagedStepFailed
                    raise failure(message.message)
                else:
                    yield message
        except CageStopped:
            heartbeat.check()  # raises JobStopped with the reason
            raise
        except CageMessageRefused as error:
            raise CageOutputRefused(str(error)) from None
        except CageError as error:
            raise CagedStepFailed(str(error)) from None

    def convert(self, job: ClaimedJob, heartbeat: Heartbeat) -> str:
        with tempfile.TemporaryDirectory(prefix="modelci-job-") as folder:
            model, path = self.fetch_model(job.model_id, Path(folder))
            heartbeat.report(0.05, f"converting in the cage ({cage_kind()})")
            wanted = [target.value for target in job.targets]
            request = {
                "step": "convert",
                "inputs": cage_inputs(model),
                "outputs": [output.name for output in model.outputs],
                "targets": wanted,
            }
            # A reason and the targets it kept from being registered (one reason often
            # holds for all: a model that does not run on its declared inputs).
            failures: dict[str, list[str]] = {}
            produced, registered, unavailable, existing = [], [], [], []
            targets = max(1, len(job.targets))
            # Compiling to AOTInductor runs the host's C++ compiler: that step alone may
            # start processes in its cage, and only from a torch.export program (a graph:
            # nothing of the model's runs when it is loaded).
            compiles = "AOTINDUCTOR" in wanted and model.weight.format is WeightFormat.TORCH_EXPORT
            limits = replace(self.limits, may_start_processes=compiles)
            scratch = scratch_folder("convert", path)
            for done, outcome in enumerate(
                self.caged(request, path, scratch, heartbeat, limits), start=1
            ):
                heartbeat.check()
                progress = 0.1 + 0.9 * min(1.0, done / targets)
                if not isinstance(outcome, VariantMessage | NotProducedMessage):
                    continue  # not said by a convert step: refused in caged
                engine = Engine(outcome.engine.value)
                name = engine.value
                if engine not in job.targets:
                    raise CageOutputRefused(
                        f"the cage reported a {name} variant, which is not among the job's "
                        f"targets ({', '.join(wanted)})"
                    )
                if isinstance(outcome, NotProducedMessage):
                    if not outcome.skipped:
                        failures.setdefault(outcome.reason, []).append(name)
                    else:
                        unavailable.append(outcome.reason)
                    heartbeat.report(
                        progress,
                        outcome.reason
                        if outcome.skipped
                        else f"{name} not registered: {outcome.reason}",
                    )
                    continue
                try:
                    check = as_input(ConversionCheckInput, outcome.check, "conversion")
                    with opened_variant(scratch, outcome.file, self.limits.file_bytes) as upload:
                        variant = self.hub.api.register_converted_model(
                            source_id=model.id,
                            engine=engine,
                            weight=upload,
                            conversion=check,
                            profile=job.profile_variants,
                            job_id=job.id,
                            worker=self.name,
                        ).register_converted_model.id
                except BadUserInput as error:
                    # The hub refused the variant itself (its engine, its bytes): the
                    # same bytes would be refused again.
                    raise ConversionFailed(f"{name}: the hub refused it: {error.message}") from None
                except Conflict as error:
                    if refused_for_the_job(error):
                        raise heartbeat.refused(error) from None
                    variant_id = error.extensions.get("variantId")
                    if variant_id is None:  # another model holds the variant's key
                        reason = (
                            f"{error.message}, which is not a variant of this model; register "
                            "this one with another version to convert it"
                        )
                        failures.setdefault(reason, []).append(name)
                        heartbeat.report(progress, f"{name} not registered: {error.message}")
                        continue
                    queued = ", profiling queued" if error.extensions.get("profilingQueued") else ""
                    existing.append(f"{name} ({variant_id}{queued})")
                    heartbeat.report(progress, error.message)
                    continue
                produced.append(name)
                registered.append(f"{name} registered as {variant}")
                heartbeat.report(
                    progress,
                    f"{name} variant {variant} registered "
                    f"(max relative difference {outcome.check.max_rel_diff:.1e})",
                )
        if failures:
            failed = "; ".join(
                f"{', '.join(engines)}: {reason}" for reason, engines in failures.items()
            )
            kept = registered + [f"{each} already registered" for each in existing]
            if kept:  # said first: what the job did is not lost in what it could not do
                raise ConversionFailed(f"partly done: {', '.join(kept)}; not registered: {failed}")
            raise ConversionFailed(failed)
        summary = f"variants registered: {', '.join(produced) or 'none'}"
        if existing:
            summary += f"; already registered: {', '.join(existing)}"
        return "; ".join([summary, *unavailable])

    def profile(self, job: ClaimedJob, heartbeat: Heartbeat) -> str:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="modelci-job-") as folder:
            model, path = self.fetch_model(job.model_id, Path(folder))
            heartbeat.report(0.05, f"profiling in the cage ({cage_kind()})")
            static = {"step": "static", "inputs": cage_inputs(model)}
            scratch = scratch_folder("static", path)
            for message in self.caged(static, path, scratch, heartbeat, self.limits):
                if not isinstance(message, StaticMessage):
                    continue  # not said by a static step: refused in caged
                figures = message.result
                heartbeat.check()
                static_result = as_input(StaticProfileResultInput, figures, "result")
                self.write(
                    partial(
                        self.hub.api.report_static_profiling_result,
                        model_id=model.id,
                        result=static_result,
                        job_id=heartbeat.job_id,
                        worker=self.name,
                    ),
                    heartbeat,
                )
                heartbeat.report(
                    0.1,
                    f"static profile: {figures['parameters']} parameters, {figures['macs']} MACs",
                )
            heartbeat.check()

            devices = [d for d in self.devices if not job.devices or d.device_id in job.devices]
            if self.gpu_note:
                heartbeat.report(0.1, self.gpu_note)
            budget = job.budget_seconds or DEFAULT_PROFILE_BUDGET_S
            stops = []
            for index, device in enumerate(devices):
                # The budget runs from the job's start: download and static step included.
                share = share_of_budget(budget - (time.monotonic() - started), len(devices) - index)
                span = (0.1 + 0.9 * index / len(devices), 0.1 + 0.9 * (index + 1) / len(devices))
                outcome = self.sweep_device(job, model, path, device, heartbeat, share, span)
                self.write(
                    partial(
                        self.hub.api.record_profiling_sweep,
                        id=heartbeat.job_id,
                        worker=self.name,
                        sweep=outcome,
                    ),
                    heartbeat,
                )
                heartbeat.check()
                stops.append(
                    f"{device.device_id}: batch sizes {outcome.batches or 'none'}, "
                    f"stopped: {outcome.reason_code.value}"
                )
        return f"profiled under a {budget:g} s budget; " + "; ".join(stops)

    def sweep_device(
        self,
        job: ClaimedJob,
        model: ModelToProcess,
        path: Path,
        device: LocalDevice,
        heartbeat: Heartbeat,
        share_s: float,
        span: tuple[float, float],
    ) -> SweepOutcomeInput:
        """One device's batch sweep in the cage, within ``share_s`` of the job's budget,
        each result reported as it comes (progress within ``span``); how it ended."""
        if share_s <= 0:
            return sweep_outcome(
                device,
                [],
                StopReason.BUDGET.value,
                "the job's budget was spent before this device's turn",
            )
        measurement = self.measurement
        if isinstance(measurement.threads, FreeCores):
            # Not asked for: the cores free now, as other work may have come or gone since
            # the worker started (recorded with every result as intraOpThreads).
            measurement = replace(measurement, threads=free_cores(FREE_CORES_SAMPLE_S))
            heartbeat.report(
                heartbeat.progress,
                f"{device.device_id}: {measurement.threads} intra-op thread(s), "
                "the cores free of other work now",
            )
        request = {
            "step": "profile",
            "inputs": cage_inputs(model),
            "batch_sizes": job.batch_sizes,
            "budget_s": share_s,
            "max_batch": job.max_batch,
            "max_p99_latency_s": job.max_p99_latency,
            "device": asdict(device),
            "ip": self.ip,
            "measurement": asdict(measurement),
        }
        cuda = device.kind == "CUDA"
        limits = replace(self.limits, memory_bytes=None) if cuda else self.limits
        # The sweep ends within its budget plus about one window: the cage's wall limit
        # only catches a step that hangs, so it never cuts a long budget short.
        limits = replace(limits, wall_s=max(limits.wall_s, share_s * 1.5 + 300))
        # Loading an AOTInductor package, torch compiles small probe programs to compare
        # this CPU with the one the package was built for: that step may start processes.
        # Told by the file the hub inspected, not by the engine a user declared.
        compiled = model.weight.format is WeightFormat.AOTI_PACKAGE
        limits = replace(limits, may_start_processes=compiled)
        batches: list[int] = job.batch_sizes or [1]
        began = time.monotonic()
        last: dict[str, Any] | None = None  # the last result reported, unless it has its stop

        def report(figures: dict[str, Any], sweep_stop: str | None) -> None:
            result = as_input(DynamicProfileResultInput, stopped_at(figures, sweep_stop), "result")
            self.write(
                partial(
                    self.hub.api.report_dynamic_profiling_result,
                    model_id=model.id,
                    result=result,
                    job_id=heartbeat.job_id,
                    worker=self.name,
                ),
                heartbeat,
            )

        scratch = scratch_folder("profile", path)
        for message in self.caged(request, path, scratch, heartbeat, limits, cuda):
            heartbeat.check()
            if isinstance(message, PlanMessage):
                batches = message.batches or batches
                continue
            if isinstance(message, SweepEndMessage):
                if last is not None and last.get("measurement"):
                    # Stopped in the next batch (it ran out of memory) or, rarely, just
                    # before it (the budget ran short while this result was written):
                    # the last result measured is where the sweep stopped.
                    report(last, message.reason_code)
                return sweep_outcome(device, message.batches, message.reason_code, message.reason)
            if not isinstance(message, DynamicMessage):
                continue  # not said by a profile step: refused in caged
            stop = message.sweep_stop
            report(message.result, stop.reason_code if stop else None)
            last = None if stop else message.result
            # Done: as far through the batches or through the device's time, whichever is
            # further (an adaptive sweep seldom climbs its whole ladder).
            position = batches.index(message.batch) + 1 if message.batch in batches else 0
            done = max(position / len(batches), (time.monotonic() - began) / share_s)
            low, high = span
            heartbeat.report(
                max(heartbeat.progress, low + (high - low) * min(done, 0.95)),
                f"{device.device_id} batch {message.batch} done",
            )
        raise CagedStepFailed(f"the sweep on {device.device_id} ended without saying why")

    def write(self, operation: Callable[[], object], heartbeat: Heartbeat) -> None:
        """A result write for the heartbeat's job (the operation names it: jobId,
        worker); refused by the hub once the job is not this worker's any more, which
        stops the work."""
        try:
            operation()
        except HubError as error:
            if refused_for_the_job(error):
                raise heartbeat.refused(error) from None
            raise


def scratch_folder(step: str, weight: Path) -> Path:
    """A fresh folder for one caged step to write into, beside the job's weight file."""
    return Path(tempfile.mkdtemp(prefix=f"{step}-", dir=weight.parent))


def cage_inputs(model: ModelToProcess) -> list[dict[str, Any]]:
    """The model's declared inputs, as the cage's request carries them (JSON)."""
    return [shape.model_dump(by_alias=True, mode="json") for shape in model.inputs]


def stopped_at(figures: dict[str, Any], sweep_stop: str | None) -> dict[str, Any]:
    """A dynamic result from the cage, marked as where the sweep stopped (``sweep_stop``,
    a reason code) when it has a measurement to mark."""
    if sweep_stop is None or not figures.get("measurement"):
        return figures
    return {**figures, "measurement": {**figures["measurement"], "sweep_stop": sweep_stop}}


def sweep_outcome(
    device: LocalDevice, batches: list[int], reason_code: str, reason: str
) -> SweepOutcomeInput:
    """How a device's sweep ended, as the hub records it."""
    outcome = {
        "deviceId": device.device_id,
        "batches": batches,
        "reasonCode": reason_code,
        "reason": reason,
    }
    return as_input(SweepOutcomeInput, outcome, "sweep")


def main(
    server: str,
    token: str | None = None,
    lease_s: float = 60.0,
    poll_s: float = 2.0,
    measurement: MeasurementSettings | None = None,
    allow_pickle: bool = False,
    name: str | None = None,
    lanes: tuple[str, ...] = tuple(LANES),
) -> None:
    """Run a worker until SIGTERM or SIGINT; a second signal stops it at once."""
    worker = Worker(
        ModelHub(server, token),
        measurement=measurement or MeasurementSettings(),
        lease_s=lease_s,
        poll_s=poll_s,
        allow_pickle=allow_pickle,
        lanes=lanes,
    )
    if name:
        worker.name = name

    def stop(signum: int, frame: FrameType | None) -> None:
        if worker.stop.is_set():
            raise KeyboardInterrupt
        logger.info(
            "worker %s: %s, stopping (its job is handed back)",
            worker.name,
            signal.Signals(signum).name,
        )
        worker.stop.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, stop) for sig in handled} if in_main_thread else {}
    try:
        worker.run_forever()
    except KeyboardInterrupt:
        logger.info("worker %s stopped at once", worker.name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
