"""The batch sweep on one device, under a time budget (as Model Analyzer's, with
perf_analyzer's stop rule for each batch: ``dynamic.py``).

Two kinds of sweep:
- adaptive: batch sizes 1, 2, 4, 8, … up to ``max_batch`` (and ``max_batch`` itself);
  the batch grows while it pays, and the sweep stops at the first of: throughput
  gaining less than ``min_gain`` (5 %) over the previous batch size (SATURATED), the
  latency over the user's limit (LATENCY_LIMIT), out of memory (OUT_OF_MEMORY), the
  budget (BUDGET), the largest batch (MAX_BATCH), a machine too busy to tell (BUSY,
  below);
- explicit: exactly the batch sizes asked for, in their order, until the list is done
  (LIST_DONE), unless the budget, memory or the latency limit stops it first.

The budget is wall time from the start of the step (model loading included). Before a
batch starts, its cost is estimated from the batch before (time per run scaled with the
batch: the upper bound once throughput has stopped growing; the mean run, as a busy
machine's long tail is time spent): cold run, warm-up and ``stable_windows`` windows
of a p99's runs between them. A batch that would not fit in what is left is not started
(BUDGET). A started batch gets a share of what is left (explicit: an equal share per
batch still to measure; adaptive: a third, since a sweep seldom pays past a few more
doublings), never less than its estimated cost; past its share, its measurement stops
at the end of the window under way once its windows hold the 100 runs of a p99 (past
the budget itself, whatever they hold) and is published, marked unstable unless it is
stable. So a sweep ends within its budget plus about one window.

The latency compared with the limit is the inference p99, or the p50 where fewer than
100 samples give no p99 (the reason says which).

A busy machine: a batch whose measurement is unstable, or contended (others took more
of the cores than it left free, ``dynamic.py``), is measured once more before anything
is decided from it, when the time allows, and the better of the two kept (stable
first, then the quieter). No sweep decision is drawn from figures other work may have
made: a throughput gain under ``min_gain``, or a latency over the limit, where either
batch compared is still unstable or contended, stops the sweep with BUSY (the machine
was too busy to measure) when contention was seen, and decides nothing (the climb goes
on) when it was not: noise, not saturation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial

from modelci.cage.tensors import InputSpec, batch_sizes_allowed
from modelci.core.domain import DEFAULT_PROFILE_BUDGET_S, DynamicProfileResult

from .devices import LocalDevice
from .dynamic import Measured, MeasurementSettings, OutOfDeviceMemory, Runner, measure_batch

# A job's budget when none is given: a ResNet-18 (TorchScript, 224×224) on a 2-core
# CPU is fully profiled well within it (BENCHMARKS.md), shared across the job's devices.
DEFAULT_BUDGET_S = DEFAULT_PROFILE_BUDGET_S  # the hub's default (MODELCI_PROFILE_BUDGET_S)
DEFAULT_MAX_BATCH = 256
MIN_THROUGHPUT_GAIN = 0.05
ADAPTIVE_SHARE = 3  # an adaptive sweep gives a batch at most 1/3 of the time left
ATTEMPTS = 2  # measurements of one batch at most: an unstable or contended one is retaken


class StopReason(Enum):
    """Why a device's sweep stopped where it did (machine-readable)."""

    SATURATED = "SATURATED"
    LATENCY_LIMIT = "LATENCY_LIMIT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BUDGET = "BUDGET"
    MAX_BATCH = "MAX_BATCH"
    LIST_DONE = "LIST_DONE"
    NOT_BATCHABLE = "NOT_BATCHABLE"  # the inputs allow no batch size: nothing measured
    BUSY = "BUSY"  # other work on the machine left figures unfit to decide on


@dataclass(frozen=True)
class SweepStop:
    code: StopReason
    reason: str  # in words, with the figures that decided it

    def as_message(self) -> dict[str, str]:
        return {"reason_code": self.code.value, "reason": self.reason}


@dataclass(frozen=True)
class SweepPlan:
    batches: tuple[int, ...]  # explicit: those, in order; adaptive: the ladder it may climb
    adaptive: bool
    budget_s: float = DEFAULT_BUDGET_S
    max_p99_latency_s: float | None = None
    min_gain: float = MIN_THROUGHPUT_GAIN
    notes: tuple[str, ...] = ()

    @property
    def last_reason(self) -> SweepStop:
        """The stop when every planned batch was measured."""
        if self.adaptive:
            return SweepStop(
                StopReason.MAX_BATCH, f"reached the largest batch size, {self.batches[-1]}"
            )
        return SweepStop(
            StopReason.LIST_DONE, f"measured every batch size asked for: {list(self.batches)}"
        )


def ladder(max_batch: int) -> list[int]:
    """1, 2, 4, … up to ``max_batch``, which ends it even when not a power of two."""
    sizes, size = [], 1
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


def plan_sweep(
    specs: list[InputSpec],
    batch_sizes: list[int] | None = None,
    adaptive: bool | None = None,
    budget_s: float | None = None,
    max_p99_latency_s: float | None = None,
    max_batch: int | None = None,
) -> SweepPlan:
    """The plan from a request's fields. Without batch sizes the sweep is adaptive;
    with them it is explicit unless ``adaptive`` is true (then it climbs those sizes,
    in their order, instead of the powers of two). ``max_batch`` caps either."""
    wanted = list(dict.fromkeys(batch_sizes or []))  # without repeats, in order
    if any(size < 1 for size in wanted):
        raise ValueError(f"batch sizes must be at least 1: {wanted}")
    adaptive = True if not wanted else bool(adaptive)
    notes: list[str] = []
    if adaptive and not wanted:
        wanted = ladder(max_batch or DEFAULT_MAX_BATCH)
    elif max_batch is not None:
        wanted = [size for size in wanted if size <= max_batch]
    allowed, note = batch_sizes_allowed(specs, wanted)
    if note:
        notes.append(note)
    if budget_s is not None and budget_s <= 0:
        raise ValueError(f"the time budget must be positive: {budget_s}")
    if max_p99_latency_s is not None and max_p99_latency_s <= 0:
        raise ValueError(f"the latency limit must be positive: {max_p99_latency_s}")
    return SweepPlan(
        batches=tuple(allowed),
        adaptive=adaptive,
        budget_s=DEFAULT_BUDGET_S if budget_s is None else budget_s,
        max_p99_latency_s=max_p99_latency_s,
        notes=tuple(notes),
    )


def share_of_budget(remaining_s: float, devices_left: int) -> float:
    """What the next device's sweep may spend of a job's remaining budget: an equal
    share of it, so time a device leaves unspent goes to the ones after it."""
    return max(0.0, remaining_s) / max(1, devices_left)


def estimated_cost_s(run_s: float, settings: MeasurementSettings) -> float:
    """A batch's least cost at ``run_s`` a run: cold run, warm-up, and enough windows
    to be judged stable."""
    warmup = min(settings.warmup_runs * run_s, max(settings.warmup_s, 2 * run_s))
    window = max(settings.window_s, settings.runs_per_window * run_s)
    return run_s + warmup + settings.stable_windows * window


@dataclass
class BatchRecord:
    batch: int
    result: DynamicProfileResult
    longest_window_s: float
    longest_run_s: float
    cut_by_deadline: bool
    seconds: float  # the batch's whole measurement, cold run and warm-up included


@dataclass
class SweepOutcome:
    stop: SweepStop
    stopped_at: int | None  # the batch that stopped it (OUT_OF_MEMORY: the one that ran out)
    records: list[BatchRecord] = field(default_factory=list)
    elapsed_s: float = 0.0  # from the sweep's start to its end

    @property
    def batches(self) -> list[int]:
        return [record.batch for record in self.records]


def nothing_to_sweep(plan: SweepPlan) -> SweepOutcome:
    """The outcome of a plan without batch sizes (the inputs allow none)."""
    reason = "; ".join(plan.notes) or "no batch size to measure"
    return SweepOutcome(SweepStop(StopReason.NOT_BATCHABLE, reason), None)


def tail_latency(result: DynamicProfileResult) -> tuple[float, str]:
    latency = result.latency.inference_latency
    if latency.p99 is not None:
        return latency.p99, "p99"
    return latency.p50, "p50 (too few samples for a p99)"


def sweep(
    runner: Runner,
    specs: list[InputSpec],
    device: LocalDevice,
    ip: str,
    load_s: float,
    settings: MeasurementSettings,
    plan: SweepPlan,
    started: float | None = None,
    on_result: Callable[[DynamicProfileResult, SweepStop | None], None] = lambda r, s: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SweepOutcome:
    """Sweep ``plan`` on the loaded ``runner``. ``started`` (``time.monotonic()``) is
    when the budget began (default: now). ``on_result`` gets each result as it is
    measured, with the stop when that batch is where the sweep stops."""
    sweep_started = time.monotonic()
    started = sweep_started if started is None else started
    deadline = started + plan.budget_s
    if not plan.batches:
        return nothing_to_sweep(plan)
    outcome = SweepOutcome(stop=plan.last_reason, stopped_at=None)

    def finish(stop: SweepStop, at: int | None) -> SweepOutcome:
        outcome.stop, outcome.stopped_at = stop, at
        outcome.elapsed_s = time.monotonic() - sweep_started
        return outcome

    def over_budget(previous: BatchRecord, batch: int) -> tuple[float, SweepStop | None]:
        """The least ``batch`` would cost, judged from ``previous``, and the stop when
        the budget has less than that left."""
        remaining = deadline - time.monotonic()
        # The mean run, not the median: on a busy machine the tail is the time spent.
        run_s = previous.result.latency.inference_latency.avg * batch / previous.batch
        minimum = estimated_cost_s(run_s, settings)
        if minimum <= remaining:
            return minimum, None
        return minimum, SweepStop(
            StopReason.BUDGET,
            f"batch {batch} would need about {minimum:.1f} s; "
            f"{max(0.0, remaining):.1f} s of the {plan.budget_s:.0f} s budget left",
        )

    previous: BatchRecord | None = None
    for position, batch in enumerate(plan.batches):
        now = time.monotonic()
        remaining = deadline - now
        minimum = 0.0
        if previous is not None:
            # Judged when the previous batch was published; checked again, as time passed.
            minimum, stop = over_budget(previous, batch)
            if stop is not None:
                return finish(stop, batch)
        left = len(plan.batches) - position
        sharing = min(left, ADAPTIVE_SHARE) if plan.adaptive else left
        share = remaining / sharing
        batch_deadline = min(deadline, now + max(share, minimum))
        measure = partial(
            measure_batch, runner, specs, batch, device, ip, load_s, settings, should_stop
        )
        try:
            measured, attempts = measured_with_retakes(
                measure, batch_deadline, deadline, sharing, settings
            )
        except OutOfDeviceMemory as error:
            return finish(
                SweepStop(StopReason.OUT_OF_MEMORY, f"batch {batch} ran out of memory ({error})"),
                batch,
            )
        if measured.result.measurement is not None:
            measured.result.measurement.attempts = attempts
        record = BatchRecord(
            batch,
            measured.result,
            measured.longest_window_s,
            measured.longest_run_s,
            measured.cut_by_deadline,
            time.monotonic() - now,
        )
        outcome.records.append(record)
        verdict = judge(plan, record, previous, position == len(plan.batches) - 1)
        if verdict is None and time.monotonic() >= deadline:
            verdict = SweepStop(
                StopReason.BUDGET,
                f"the {plan.budget_s:.0f} s budget was spent during batch {batch}",
            )
        if verdict is None:
            # The next batch would not fit: this result is where the sweep stops, and it
            # is published with its stop once, not published and then written again.
            _, verdict = over_budget(record, plan.batches[position + 1])
        on_result(measured.result, verdict)
        if verdict is not None:
            return finish(verdict, batch)
        previous = record
    return finish(plan.last_reason, plan.batches[-1])  # not reached: the last batch judges


def measured_with_retakes(
    measure: Callable[[float, float], Measured],
    batch_deadline: float,
    deadline: float,
    sharing: int,
    settings: MeasurementSettings,
) -> tuple[Measured, int]:
    """A batch measured (``measure(deadline, last_deadline)``), and taken again while it
    is not trustworthy, up to ATTEMPTS: the better measurement, and how many were taken.

    A retake is taken only if it costs no more than the share a batch gets of what is
    left (``sharing`` batches share it): it must not starve the batches after it. It is
    costed at the mean run, as a busy machine's runs have long tails that the median
    hides."""
    measured = measure(batch_deadline, deadline)
    attempts = 1
    while attempts < ATTEMPTS and not trustworthy(measured):
        cost = estimated_cost_s(measured.result.latency.inference_latency.avg, settings)
        retake_share = (deadline - time.monotonic()) / sharing
        if cost > retake_share:
            break
        again = measure(min(deadline, time.monotonic() + retake_share), deadline)
        attempts += 1
        measured = better(measured, again)
    return measured, attempts


def trustworthy(measured: Measured) -> bool:
    measurement = measured.result.measurement
    return measurement is None or (measurement.stable and measurement.contention is None)


def better(first: Measured, second: Measured) -> Measured:
    """Of two measurements of one batch: the stable one, else the quieter; the first's
    initialization latency is kept, as only its first run was cold."""

    def rank(measured: Measured) -> tuple[bool, bool, float]:
        measurement = measured.result.measurement
        if measurement is None:
            return (True, True, 0.0)
        return (
            measurement.stable,
            measurement.contention is None,
            -(measurement.busy_fraction or 0.0),
        )

    if rank(second) <= rank(first):
        return first
    cold = first.result.latency.initialization_latency
    second.result.latency.initialization_latency = cold
    second.longest_run_s = max(first.longest_run_s, second.longest_run_s)
    return second


def doubt(record: BatchRecord) -> str | None:
    """Why a batch's figures are not fit to decide on, in words; None: they are."""
    measurement = record.result.measurement
    if measurement is None or (measurement.stable and measurement.contention is None):
        return None
    busy = measurement.busy_fraction
    words = [
        f"batch {record.batch} was measured {measurement.attempts} time(s)",
        "its windows never agreed" if not measurement.stable else "",
        f"other processes took {busy:.0%} of the CPUs' time" if busy is not None else "",
    ]
    return ", ".join(word for word in words if word)


def busy_stop(what: str, records: list[BatchRecord]) -> SweepStop | None:
    """BUSY when contention was seen in ``records`` (the figures cannot be told from
    other work), else None: unstable but quiet decides nothing either way."""
    measurements = [record.result.measurement for record in records]
    if not any(m is not None and m.contention is not None for m in measurements):
        return None
    doubts = "; ".join(d for d in (doubt(record) for record in records) if d)
    return SweepStop(StopReason.BUSY, f"the machine was too busy to measure: {what}, but {doubts}")


def judge(
    plan: SweepPlan, record: BatchRecord, previous: BatchRecord | None, last: bool
) -> SweepStop | None:
    """Whether the sweep stops at this batch, and why."""
    batch, result = record.batch, record.result
    if plan.max_p99_latency_s is not None:
        latency, which = tail_latency(result)
        if latency > plan.max_p99_latency_s:
            # Latency only grows with the batch: over the limit unstable but quiet still
            # stops the climb; contended, the limit may be the other work's doing.
            busy = busy_stop(
                f"batch {batch}'s latency {which} {latency * 1e3:.3g} ms is over the "
                f"limit of {plan.max_p99_latency_s * 1e3:.3g} ms",
                [record],
            )
            if busy is not None:
                return busy
            return SweepStop(
                StopReason.LATENCY_LIMIT,
                f"batch {batch}: latency {which} {latency * 1e3:.3g} ms is over the limit "
                f"of {plan.max_p99_latency_s * 1e3:.3g} ms",
            )
    if plan.adaptive and previous is not None:
        now = result.throughput.inference_throughput
        before = previous.result.throughput.inference_throughput
        gain = now / before - 1
        if gain < plan.min_gain and (doubt(record) or doubt(previous)):
            return busy_stop(
                f"throughput at batch {batch} ({now:.1f}/s) gained {gain:+.1%} over batch "
                f"{previous.batch} ({before:.1f}/s)",
                [previous, record],
            ) or (plan.last_reason if last else None)
        if gain < plan.min_gain:
            return SweepStop(
                StopReason.SATURATED,
                f"throughput at batch {batch} ({now:.1f}/s) gained {gain:+.1%} over batch "
                f"{previous.batch} ({before:.1f}/s), under {plan.min_gain:.0%}: saturated",
            )
    if last:
        return plan.last_reason
    return None
