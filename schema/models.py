"""Queries and mutations on models and their profiling results (the seed's ModelService)."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar, cast

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.file_uploads import Upload
from strawberry.types import Info

from . import domain
from .context import HubContext, WeightSource
from .errors import BadUserInput, invalid_input
from .types import (
    DynamicProfileResultInput,
    Engine,
    Framework,
    MLModel,
    ModelConnection,
    ModelEdge,
    ModelInput,
    ModelStatus,
    ModelUpdateInput,
    PageInfo,
    StaticProfileResultInput,
    Task,
    decode_cursor,
    encode_cursor,
)

HubInfo = Info[HubContext, None]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

PydanticModel = TypeVar("PydanticModel", bound=BaseModel)
PydanticModel_co = TypeVar("PydanticModel_co", bound=BaseModel, covariant=True)


class PydanticInput(Protocol[PydanticModel_co]):
    def to_pydantic(self, **kwargs: Any) -> PydanticModel_co: ...


def validated(value: PydanticInput[PydanticModel], argument: str) -> PydanticModel:
    """The domain object behind a GraphQL input, or BAD_USER_INPUT naming the fields."""
    try:
        return value.to_pydantic()
    except ValidationError as error:
        raise invalid_input(error, argument) from None


def update_changes(update: ModelUpdateInput) -> dict[str, Any]:
    """The fields a client gave in an update, as domain values; absent fields are left out."""
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(update):
        given = getattr(update, field.name)
        if given is None:
            continue
        value = given.value
        if value is None:
            raise BadUserInput(
                f"input.{field.name}: may be left out but not set to null", field=field.name
            )
        if isinstance(value, list):
            value = [
                validated(item, f"input.{field.name}") if hasattr(item, "to_pydantic") else item
                for item in value
            ]
        changes[field.name] = value
    return changes


def connection(page_models: list[domain.MLModel], has_next_page: bool) -> ModelConnection:
    edges = [
        ModelEdge(cursor=encode_cursor(model.id), node=model)  # type: ignore[arg-type]
        for model in page_models
    ]
    return ModelConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next_page, end_cursor=edges[-1].cursor if edges else None
        ),
    )


@strawberry.type
class ModelQueries:
    @strawberry.field(description="One model by id.")
    async def model(self, info: HubInfo, id: strawberry.ID) -> MLModel:
        return await info.context.registry.get(id)  # type: ignore[return-value]

    @strawberry.field(
        description=f"Models matching every given filter, newest first; "
        f"`first` is at most {MAX_PAGE_SIZE}."
    )
    async def models(
        self,
        info: HubInfo,
        architecture: str | None = None,
        task: Task | None = None,
        framework: Framework | None = None,
        engine: Engine | None = None,
        version: int | None = None,
        dataset: str | None = None,
        status: ModelStatus | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> ModelConnection:
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise BadUserInput(f"first: must be between 1 and {MAX_PAGE_SIZE}", field="first")
        where = domain.ModelFilter(
            architecture=architecture,
            task=task,
            framework=framework,
            engine=engine,
            version=version,
            dataset=dataset,
            status=status,
        )
        after_id = decode_cursor(after) if after is not None else None
        page = await info.context.registry.find(where, first, after_id)
        return connection(page.models, page.has_next_page)


@strawberry.type
class ModelMutations:
    @strawberry.mutation(
        description="Register a model with its weight file (multipart upload). "
        "A model is unique by (architecture, framework, engine, version, task, dataset)."
    )
    async def register_model(self, info: HubInfo, input: ModelInput, weight: Upload) -> MLModel:
        fields = validated(input, "input")
        source = cast(WeightSource, weight)
        return await info.context.registry.register(fields, source)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Change the given fields; an optional new weight replaces the stored bytes."
    )
    async def update_model(
        self,
        info: HubInfo,
        id: strawberry.ID,
        input: ModelUpdateInput,
        weight: Upload | None = None,
    ) -> MLModel:
        changes = update_changes(input)
        source = cast(WeightSource | None, weight)
        return await info.context.registry.update(id, changes, source)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Delete a model and its weight bytes; returns what was deleted."
    )
    async def delete_model(self, info: HubInfo, id: strawberry.ID) -> MLModel:
        return await info.context.registry.delete(id)  # type: ignore[return-value]

    @strawberry.mutation(description="Add or replace the model's static profile.")
    async def register_static_profiling_result(
        self, info: HubInfo, model_id: strawberry.ID, result: StaticProfileResultInput
    ) -> MLModel:
        static = validated(result, "result")
        return await info.context.registry.set_static_result(model_id, static)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Append a dynamic result; "
        "one with the same (ip, deviceId, batch) is a CONFLICT."
    )
    async def register_dynamic_profiling_result(
        self, info: HubInfo, model_id: strawberry.ID, result: DynamicProfileResultInput
    ) -> MLModel:
        dynamic = validated(result, "result")
        return await info.context.registry.add_dynamic_result(model_id, dynamic)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Replace the dynamic result with the same (ip, deviceId, batch); "
        "NOT_FOUND when there is none, unless forceInsert."
    )
    async def update_dynamic_profiling_result(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        result: DynamicProfileResultInput,
        force_insert: bool = False,
    ) -> MLModel:
        dynamic = validated(result, "result")
        return await info.context.registry.replace_dynamic_result(  # type: ignore[return-value]
            model_id, dynamic, force_insert
        )

    @strawberry.mutation(
        description="Delete the dynamic results of a device, of one batch size when given."
    )
    async def delete_dynamic_profiling_result(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        ip: str,
        device_id: str,
        batch: int | None = None,
    ) -> MLModel:
        return await info.context.registry.delete_dynamic_results(  # type: ignore[return-value]
            model_id, ip, device_id, batch
        )
