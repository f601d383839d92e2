"""Choosing a model by what it measured: recommendations under a goal, side by
side comparisons, and aliases (one name for one model at a time). The rules are in
``choosing`` and ``usecases.ModelService``; these resolvers turn arguments into them."""

from __future__ import annotations

from typing import cast

import strawberry
from strawberry.experimental import pydantic as strawberry_pydantic

from modelci.core import choosing, domain
from modelci.core.errors import validated
from modelci.core.identity import Scope
from modelci.core.usecases import MAX_CANDIDATES, MAX_COMPARED, MAX_OPTIONS, checked_count

from .context import HubInfo
from .pagination import MAX_PAGE_SIZE
from .permissions import needs
from .types import DynamicProfileResult, MLModel, Task

DEFAULT_OPTIONS = 10
MAX_ALIASES_LISTED = 1000

strawberry.enum(
    choosing.Shortfall,
    description="Why an option misses the goal: OVER_LATENCY (p99 above maxP99Latency), "
    "NO_P99 (under 100 samples, so no p99 to hold against the goal), UNDER_THROUGHPUT, "
    "UNSTABLE (its measurement never settled; allowUnstable admits it).",
)


@strawberry_pydantic.input(
    model=choosing.Goal,
    name="RecommendationGoalInput",
    description="What to choose for; a field left out leaves that dimension free. "
    "Latency is the inference latency's p99 in seconds, throughput inference items/s.",
)
class RecommendationGoalInput:
    max_p99_latency: strawberry.auto
    min_throughput: strawberry.auto
    device: strawberry.auto
    device_kind: strawberry.auto
    max_batch: strawberry.auto
    allow_unstable: strawberry.auto


@strawberry.type(
    description="One way to serve: a model (source or variant) on a device at a batch "
    "size, with the figures measured there."
)
class RecommendationOption:
    model: MLModel
    device_id: str
    device_name: str
    ip: str = strawberry.field(description="The host that measured it.")
    batch: int
    p50: float = strawberry.field(description="Inference latency p50, seconds.")
    p99: float | None = strawberry.field(
        description="Inference latency p99, seconds; null under 100 samples."
    )
    throughput: float = strawberry.field(description="Inference items per second.")
    stable: bool = strawberry.field(
        description="Whether its measurement settled: its last windows agreed."
    )
    on_frontier: bool = strawberry.field(
        description="No other option here is both faster (p99, or p95 without one) and "
        "higher-throughput: the Pareto frontier of latency and throughput."
    )
    shortfalls: list[choosing.Shortfall] = strawberry.field(
        description="Why it misses the goal; empty for a recommended option."
    )
    result: DynamicProfileResult = strawberry.field(description="Every figure measured.")


@strawberry.type(
    description="What meets a goal, best first (most throughput, then lowest latency), "
    "and why the rest lost."
)
class Recommendation:
    options: list[RecommendationOption] = strawberry.field(
        description="The options meeting the goal, best first (at most `first`)."
    )
    rejected: list[RecommendationOption] = strawberry.field(
        description="The options missing it, nearest first (at most `first`), each with "
        "its shortfalls."
    )
    closest: RecommendationOption | None = strawberry.field(
        description="When nothing meets the goal: the option that came nearest."
    )
    not_profiled: list[MLModel] = strawberry.field(
        description=f"Candidates with no result on the goal's device and batches (at most "
        f"{MAX_PAGE_SIZE})."
    )
    options_found: int
    rejected_found: int
    not_profiled_found: int
    candidates: int = strawberry.field(description="How many models were weighed.")
    truncated: bool = strawberry.field(
        description=f"More models matched than the {MAX_CANDIDATES} newest that were weighed."
    )


@strawberry.type(description="One (device, batch) across the compared models.")
class ComparisonRow:
    device_id: str
    device_name: str
    batch: int
    results: list[DynamicProfileResult | None] = strawberry.field(
        description="Each model's result here, in the order of `models`; null where it has "
        "none (of several hosts', the newest)."
    )


@strawberry.type(description="Models side by side: their dynamic results aligned by device.")
class Comparison:
    models: list[MLModel]
    rows: list[ComparisonRow]


@strawberry_pydantic.type(
    model=domain.ModelAlias, description="A name that points at one model at a time."
)
class ModelAlias:
    alias: strawberry.auto
    model_id: strawberry.ID
    update_time: strawberry.auto = strawberry.field(description="When it last moved.")

    @strawberry.field(description="The model it names.", graphql_type=MLModel | None)
    async def model(self, info: HubInfo) -> domain.MLModel | None:
        return await info.context.loaders.model.load(str(self.model_id))


def recommendation(found: choosing.Recommendation, first: int) -> Recommendation:
    return Recommendation(
        options=cast(list[RecommendationOption], found.options[:first]),
        rejected=cast(list[RecommendationOption], found.rejected[:first]),
        closest=cast(RecommendationOption | None, found.closest),
        not_profiled=cast(list[MLModel], found.not_profiled[:MAX_PAGE_SIZE]),
        options_found=len(found.options),
        rejected_found=len(found.rejected),
        not_profiled_found=len(found.not_profiled),
        candidates=found.candidates,
        truncated=found.truncated,
    )


@strawberry.type
class ChoiceQueries:
    @strawberry.field(
        description="Which models of a task (and architecture, dataset; converted variants "
        "included) to serve under a goal, from their dynamic results: every (model, "
        "device, batch) within the goal's device and batches, ranked by throughput among "
        "those meeting it (ties: lower latency), the Pareto frontier marked, the rest "
        f"with their shortfalls. Weighs the {MAX_CANDIDATES} newest matching models "
        "(`truncated` says when more matched); `first` is at most "
        f"{MAX_OPTIONS}.",
        metadata=needs(Scope.read),
    )
    async def recommend(
        self,
        info: HubInfo,
        task: Task,
        architecture: str | None = None,
        dataset: str | None = None,
        goal: RecommendationGoalInput | None = None,
        first: int = DEFAULT_OPTIONS,
    ) -> Recommendation:
        checked_count(first, "first", MAX_OPTIONS)
        wanted = validated(goal, "goal") if goal is not None else choosing.Goal()
        found = await info.context.model_service.recommend(task, architecture, dataset, wanted)
        return recommendation(found, first)

    @strawberry.field(
        description=f"Up to {MAX_COMPARED} models side by side, their dynamic results "
        "aligned by (device, batch).",
        metadata=needs(Scope.read),
    )
    async def compare_models(self, info: HubInfo, ids: list[strawberry.ID]) -> Comparison:
        models, rows = await info.context.model_service.compare([str(each) for each in ids])
        return Comparison(
            models=cast(list[MLModel], models),
            rows=cast(list[ComparisonRow], rows),
        )

    @strawberry.field(
        description=f"The aliases, by name (at most {MAX_ALIASES_LISTED}).",
        metadata=needs(Scope.read),
        graphql_type=list[ModelAlias],
    )
    async def model_aliases(self, info: HubInfo) -> list[domain.ModelAlias]:
        return await info.context.aliases.all(MAX_ALIASES_LISTED)


@strawberry.type
class ChoiceMutations:
    @strawberry.mutation(
        description="Point an alias at a model, creating it or moving it from the model it "
        "named, in one atomic write (how a team promotes a model: `resnet50-prod`). A name "
        "is 1 to 128 letters, digits, '.', '_' or '-', and never reads as a model id.",
        metadata=needs(Scope.write),
        graphql_type=ModelAlias,
    )
    async def set_model_alias(
        self, info: HubInfo, alias: str, model_id: strawberry.ID
    ) -> domain.ModelAlias:
        return await info.context.model_service.set_alias(alias, str(model_id))

    @strawberry.mutation(
        description="Remove an alias (the model stays); returns what it named.",
        metadata=needs(Scope.write),
        graphql_type=ModelAlias,
    )
    async def delete_model_alias(self, info: HubInfo, alias: str) -> domain.ModelAlias:
        return await info.context.model_service.delete_alias(alias)
