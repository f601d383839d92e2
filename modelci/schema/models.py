"""Queries and mutations on models and their profiling results (ML-Model-CI's ModelService).

The resolvers turn arguments into domain values and hand them to ``usecases.ModelService``,
where registering, updating and deleting are spelled out."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, cast

import strawberry
from strawberry.file_uploads import Upload

from modelci.core import domain
from modelci.core.errors import BadUserInput, validated
from modelci.core.identity import Scope
from modelci.core.ports import UploadedWeight

from .context import HubInfo
from .jobs import FencingJob, FencingWorker
from .pagination import MAX_PAGE_SIZE, Connection, connection, page_request
from .permissions import needs
from .types import (
    ConversionCheckInput,
    DynamicProfileResultInput,
    Engine,
    Framework,
    MLModel,
    ModelInput,
    ModelStatus,
    ModelUpdateInput,
    ProfileFilterInput,
    StaticProfileResultInput,
    Task,
)
from .where import ModelWhereInput, model_where, profile_filter

MODEL_CURSOR = "model"


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
                validated(item, f"input.{field.name}.{index}")
                if hasattr(item, "to_pydantic")
                else item
                for index, item in enumerate(value)
            ]
        elif hasattr(value, "to_pydantic"):
            value = validated(value, f"input.{field.name}")
        changes[field.name] = value
    return changes


@strawberry.type
class ModelQueries:
    @strawberry.field(
        description="One model, by id or by an alias that names it (give exactly one).",
        metadata=needs(Scope.read),
        graphql_type=MLModel,
    )
    async def model(
        self, info: HubInfo, id: strawberry.ID | None = None, alias: str | None = None
    ) -> domain.MLModel:
        if (id is None) == (alias is None):
            raise BadUserInput("give exactly one of id and alias", field="id")
        if alias is not None:
            return await info.context.model_service.named(alias)
        return await info.context.registry.get(str(id))

    @strawberry.field(
        description=f"Models matching every given filter, newest first; "
        f"`first` (after a cursor) or `last` (before one) is at most {MAX_PAGE_SIZE}.",
        metadata=needs(Scope.read),
        graphql_type=Connection[MLModel],
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
        profile: Annotated[
            ProfileFilterInput | None,
            strawberry.argument(
                description="Only models with a dynamic result that meets every condition here."
            ),
        ] = None,
        where: Annotated[
            ModelWhereInput | None,
            strawberry.argument(
                description="A search (tags, metrics, params, patterns, times, and/or/not), "
                "as well as every other filter given."
            ),
        ] = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[domain.MLModel]:
        page = page_request(MODEL_CURSOR, first, after, last, before)
        wanted = domain.ModelFilter(
            architecture=architecture,
            task=task,
            framework=framework,
            engine=engine,
            version=version,
            dataset=dataset,
            status=status,
            profile=profile_filter(profile),
            where=None if where is None else model_where(where),
        )
        found = await info.context.registry.find(wanted, page)
        return connection(MODEL_CURSOR, found)


@strawberry.type
class ModelMutations:
    @strawberry.mutation(
        description="Register a model with its weight file (multipart upload). "
        "A model is unique by (architecture, framework, engine, version, task, dataset); "
        "`convert` queues conversion of a PyTorch model into TorchScript and ONNX variants "
        "(see convertModel), `profile` a profiling job (see profilingJobs).",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def register_model(
        self,
        info: HubInfo,
        input: ModelInput,
        weight: Upload,
        convert: bool = True,
        profile: bool = False,
    ) -> domain.MLModel:
        fields = validated(input, "input")
        return await info.context.model_service.register(
            fields,
            cast(UploadedWeight, weight),
            convert=convert,
            profile=profile,
            owner=info.context.owner,
        )

    @strawberry.mutation(
        description="For workers: register a converted variant of a model, verified against "
        "it; it takes the source's metadata with its own engine and status CONVERTED.",
        metadata=needs(Scope.worker),
        graphql_type=MLModel,
    )
    async def register_converted_model(
        self,
        info: HubInfo,
        source_id: strawberry.ID,
        engine: Engine,
        weight: Upload,
        conversion: ConversionCheckInput,
        profile: bool = False,
        job_id: FencingJob = None,
        worker: FencingWorker = None,
    ) -> domain.MLModel:
        check = validated(conversion, "conversion")
        return await info.context.model_service.register_converted(
            source_id,
            engine,
            cast(UploadedWeight, weight),
            check,
            profile=profile,
            job_id=job_id,
            worker=worker,
            claimant=info.context.claimant,
        )

    @strawberry.mutation(
        description="Change the given fields. A new weight replaces the stored bytes only "
        "while nothing was made from them: once the model has a profile or a converted "
        "variant, or a job is running on it, its weight is fixed (CONFLICT): register a new "
        "version instead. A converted variant's weight is never replaced.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def update_model(
        self,
        info: HubInfo,
        id: strawberry.ID,
        input: ModelUpdateInput,
        weight: Upload | None = None,
    ) -> domain.MLModel:
        changes = update_changes(input)
        source = cast(UploadedWeight | None, weight)
        return await info.context.model_service.update(
            id, changes, source, owner=info.context.owner
        )

    @strawberry.mutation(
        description="Delete a model, its weight bytes and its pending jobs; returns what was "
        "deleted. A model with converted variants, or one an alias names, needs "
        "`cascade: true`, which deletes the variants too and removes the aliases of every "
        "model deleted.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def delete_model(
        self, info: HubInfo, id: strawberry.ID, cascade: bool = False
    ) -> domain.MLModel:
        return await info.context.model_service.delete(id, cascade)

    @strawberry.mutation(
        description="Add or replace the model's static profile.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def register_static_profiling_result(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        result: StaticProfileResultInput,
        job_id: FencingJob = None,
        worker: FencingWorker = None,
    ) -> domain.MLModel:
        static = validated(result, "result")
        return await info.context.model_service.set_static_result(
            model_id, static, job_id, worker, info.context.claimant
        )

    @strawberry.mutation(
        description="Append a dynamic result; "
        "one with the same (ip, deviceId, batch) is a CONFLICT.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def register_dynamic_profiling_result(
        self, info: HubInfo, model_id: strawberry.ID, result: DynamicProfileResultInput
    ) -> domain.MLModel:
        dynamic = validated(result, "result")
        return await info.context.model_service.add_dynamic_result(model_id, dynamic)

    @strawberry.mutation(
        description="Replace the dynamic result with the same (ip, deviceId, batch); "
        "NOT_FOUND when there is none, unless forceInsert.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def update_dynamic_profiling_result(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        result: DynamicProfileResultInput,
        force_insert: bool = False,
        job_id: FencingJob = None,
        worker: FencingWorker = None,
    ) -> domain.MLModel:
        dynamic = validated(result, "result")
        return await info.context.model_service.replace_dynamic_result(
            model_id, dynamic, force_insert, job_id, worker, info.context.claimant
        )

    @strawberry.mutation(
        description="Delete the dynamic results of a device, of one batch size when given.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def delete_dynamic_profiling_result(
        self,
        info: HubInfo,
        model_id: strawberry.ID,
        ip: str,
        device_id: str,
        batch: int | None = None,
    ) -> domain.MLModel:
        return await info.context.model_service.delete_dynamic_results(
            model_id, ip, device_id, batch
        )

    @strawberry.mutation(
        description="Set one tag of the model (adding it, or replacing its value) in one "
        f"write; a model has at most {domain.MAX_TAGS} tags, names "
        f"{domain.METADATA_NAME_RULE}, values up to {domain.MAX_METADATA_VALUE} characters.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def set_model_tag(
        self, info: HubInfo, id: strawberry.ID, name: str, value: str
    ) -> domain.MLModel:
        return await info.context.model_service.set_tag(id, name, value)

    @strawberry.mutation(
        description="Remove one tag of the model; NOT_FOUND when it has no tag of that name.",
        metadata=needs(Scope.write),
        graphql_type=MLModel,
    )
    async def delete_model_tag(self, info: HubInfo, id: strawberry.ID, name: str) -> domain.MLModel:
        return await info.context.model_service.delete_tag(id, name)
