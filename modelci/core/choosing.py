"""Choosing a model by what it measured: which dynamic results meet a goal,
how they rank, which lie on the latency/throughput frontier, and why the others lost.

Pure rules over domain values: the registry finds the candidates, this decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pydantic import ConfigDict, Field

from .domain import DeviceKind, Domain, DynamicProfileResult, MLModel, device_kind_of


class Shortfall(Enum):
    """Why an option does not meet the goal."""

    OVER_LATENCY = "OVER_LATENCY"
    NO_P99 = "NO_P99"  # under 100 samples: no p99 to hold against the goal
    UNDER_THROUGHPUT = "UNDER_THROUGHPUT"
    UNSTABLE = "UNSTABLE"


class Goal(Domain):
    """What a user asks for; ``None`` leaves a dimension free. Latency is the inference
    latency's p99 in seconds, throughput inference items per second."""

    model_config = ConfigDict(frozen=True)

    max_p99_latency: float | None = Field(
        default=None, gt=0, description="Inference latency p99 at most this, in seconds."
    )
    min_throughput: float | None = Field(
        default=None, ge=0, description="Inference throughput at least this, in items/s."
    )
    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Only this device: an id (cpu, cuda:0) or a name (NVIDIA A100 …).",
    )
    device_kind: DeviceKind | None = Field(default=None, description="Only this kind.")
    max_batch: int | None = Field(default=None, ge=1, description="Batches up to this.")
    allow_unstable: bool = Field(
        default=False, description="Admit results whose measurement never settled."
    )

    def covers_device(self, result: DynamicProfileResult) -> bool:
        if self.device is not None and self.device not in (result.device_id, result.device_name):
            return False
        return self.device_kind is None or device_kind_of(result.device_id) is self.device_kind

    def covers(self, result: DynamicProfileResult) -> bool:
        """Whether the goal is about this result at all (device and batch in scope)."""
        within = self.max_batch is None or result.batch <= self.max_batch
        return within and self.covers_device(result)


@dataclass
class Option:
    """One way to serve: a model on a device at a batch size, with its measured figures."""

    model: MLModel
    result: DynamicProfileResult
    shortfalls: list[Shortfall] = field(default_factory=list)
    on_frontier: bool = False

    @property
    def device_id(self) -> str:
        return self.result.device_id

    @property
    def device_name(self) -> str:
        return self.result.device_name

    @property
    def ip(self) -> str:
        return self.result.ip

    @property
    def batch(self) -> int:
        return self.result.batch

    @property
    def p50(self) -> float:
        return self.result.latency.inference_latency.p50

    @property
    def p99(self) -> float | None:
        return self.result.latency.inference_latency.p99

    @property
    def latency(self) -> float:
        """The tail latency to rank by: p99, or p95 where too few samples gave no p99."""
        figures = self.result.latency.inference_latency
        return figures.p99 if figures.p99 is not None else figures.p95

    @property
    def throughput(self) -> float:
        return self.result.throughput.inference_throughput

    @property
    def stable(self) -> bool:
        measurement = self.result.measurement
        return measurement is None or measurement.stable  # results registered by hand

    @property
    def meets_goal(self) -> bool:
        return not self.shortfalls

    def distance(self, goal: Goal) -> float:
        """How far the option is from the goal (0 when it meets it): relative excess of
        latency plus relative lack of throughput, one for instability."""
        miss = 0.0
        if goal.max_p99_latency is not None:
            miss += max(0.0, self.latency / goal.max_p99_latency - 1)
        if goal.min_throughput:
            miss += max(0.0, 1 - self.throughput / goal.min_throughput)
        if not self.stable and not goal.allow_unstable:
            miss += 1.0
        return miss


@dataclass
class Recommendation:
    """Options meeting the goal, best first; the others with their shortfalls, nearest
    first; candidates never profiled where the goal asks. ``candidates``: how many models
    were weighed; ``truncated``: more matched than were read."""

    options: list[Option]
    rejected: list[Option]
    not_profiled: list[MLModel]
    candidates: int = 0
    truncated: bool = False

    @property
    def closest(self) -> Option | None:
        """When nothing meets the goal: the option that came nearest."""
        return self.rejected[0] if not self.options and self.rejected else None


def shortfalls(option: Option, goal: Goal) -> list[Shortfall]:
    found = []
    if goal.max_p99_latency is not None:
        if option.p99 is None:
            found.append(Shortfall.NO_P99)
        elif option.p99 > goal.max_p99_latency:
            found.append(Shortfall.OVER_LATENCY)
    if goal.min_throughput is not None and option.throughput < goal.min_throughput:
        found.append(Shortfall.UNDER_THROUGHPUT)
    if not option.stable and not goal.allow_unstable:
        found.append(Shortfall.UNSTABLE)
    return found


def mark_frontier(options: list[Option]) -> None:
    """Flag the Pareto frontier: options no other beats on both latency (lower) and
    throughput (higher), one at least strictly. Sorted by latency, an option is on the
    frontier when its throughput exceeds that of every faster option."""
    ordered = sorted(options, key=lambda option: (option.latency, -option.throughput))
    best: Option | None = None  # the fastest option with the most throughput so far
    for option in ordered:
        # Two options with the same figures do not beat each other: both are on it.
        same = best is not None and (option.latency, option.throughput) == (
            best.latency,
            best.throughput,
        )
        option.on_frontier = best is None or option.throughput > best.throughput or same
        if best is None or option.throughput > best.throughput:
            best = option


def recommend(candidates: list[MLModel], goal: Goal) -> Recommendation:
    """Every (model, device, batch) of the candidates within the goal's scope, ranked:
    most throughput first among those that meet the goal, ties by lower latency."""
    options: list[Option] = []
    not_profiled = []
    for model in candidates:
        results = [r for r in model.profile_result.dynamic_results if goal.covers(r)]
        if not results:
            not_profiled.append(model)
        options += [Option(model, result) for result in results]
    for option in options:
        option.shortfalls = shortfalls(option, goal)
    mark_frontier(options)
    met = sorted(
        (option for option in options if option.meets_goal),
        key=lambda option: (-option.throughput, option.latency, option.model.id),
    )
    missed = sorted(
        (option for option in options if not option.meets_goal),
        key=lambda option: (option.distance(goal), -option.throughput, option.model.id),
    )
    return Recommendation(met, missed, not_profiled, candidates=len(candidates))


@dataclass
class ComparisonRow:
    """One (device, batch): each compared model's result there, None where it has none.
    A device is its id and name together: ``cuda:0`` on two hosts may be two GPUs."""

    device_id: str
    device_name: str
    batch: int
    results: list[DynamicProfileResult | None]


def compare(models: list[MLModel]) -> list[ComparisonRow]:
    """The models' dynamic results aligned by (device, batch), in device then batch order
    (results from several hosts for one device: the newest)."""
    rows: dict[tuple[str, str, int], ComparisonRow] = {}
    for index, model in enumerate(models):
        for result in sorted(model.profile_result.dynamic_results, key=lambda r: r.create_time):
            key = (result.device_id, result.device_name, result.batch)
            if key not in rows:
                rows[key] = ComparisonRow(
                    result.device_id, result.device_name, result.batch, [None] * len(models)
                )
            rows[key].results[index] = result
    return [rows[key] for key in sorted(rows)]
